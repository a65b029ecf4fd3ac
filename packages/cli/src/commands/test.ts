import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Output } from '../output.js';
import { toolFiles } from '../project.js';
import { CliError } from './cli-error.js';

const CONFIG = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'testing', 'vitest.config.js');

/**
 * `toolplane test`: the project's `tools/**\/*.test.ts` (and `test/`) with vitest, each tool run in
 * a real sandbox in this machine's processes (`runTool` of `@toolplane/cli/testing`). No Redis.
 */
export async function test(root: string, out: Output, filters: string[]): Promise<void> {
  toolFiles(root); // a clear error when this is no tools project
  const vitest = join(dirname(createRequire(import.meta.url).resolve('vitest/package.json')), 'vitest.mjs');
  out.progress(`testing the tools of ${root} in the sandbox …`);
  const code = await new Promise<number>((done) => {
    const child = spawn(process.execPath, [vitest, 'run', '--root', root, '--config', CONFIG, ...filters], { stdio: 'inherit', cwd: root });
    child.on('exit', (c, signal) => done(c ?? (signal ? 1 : 0)));
  });
  if (code !== 0) throw new CliError('TESTS_FAILED', 'some tool tests failed (see above); `toolplane test NAME` runs only the files matching NAME', code);
}
