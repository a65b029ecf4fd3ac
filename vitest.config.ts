import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['packages/*/src/**/*.test.ts', 'services/*/src/**/*.test.ts', 'test/**/*.test.ts', 'examples/*/tools/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    // isolated-vm needs --no-node-snapshot; it must be an exec arg of the pool, NODE_OPTIONS is refused.
    pool: 'forks',
    execArgv: ['--no-node-snapshot'],
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
