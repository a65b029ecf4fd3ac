import { defineConfig } from 'vitest/config';

/** The configuration `toolplane test` runs a project's tests with (the project's root is passed as `--root`). */
export default defineConfig({
  test: {
    include: ['tools/**/*.test.{ts,mts,js,mjs}', 'test/**/*.test.{ts,mts,js,mjs}'],
    // isolated-vm needs --no-node-snapshot in the process that creates isolates.
    pool: 'forks',
    execArgv: ['--no-node-snapshot'],
    testTimeout: 30_000,
  },
});
