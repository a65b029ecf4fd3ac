import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, test } from 'vitest';

// The command line as a shell runs it: wrong input ends with a stable code, a message that says
// what to do next, and exit 2 (usage) or 1 (failure), before anything is sent anywhere.
const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'toolplane.js');
const dir = mkdtempSync(join(tmpdir(), 'toolplane-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function tp(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // Nothing listens here: a command that reached the network would fail differently.
    const child = spawn(process.execPath, [BIN, ...args], { cwd: dir, env: { PATH: process.env.PATH ?? '', TOOLPLANE_URL: 'http://127.0.0.1:1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

test('usage errors exit 2 with a stable code and the way out', async () => {
  writeFileSync(join(dir, 'taken.txt'), 'x');
  const [none, unknown, badArgs, pair, noTo, badWait, notEmpty, help] = await Promise.all([
    tp(),
    tp('frob'),
    tp('call', 'add', '--args', '[1,2]'),
    tp('call', 'add', 'oops'),
    tp('rollback', 'add'),
    tp('call', 'add', '--wait', 'soon'),
    tp('init', '.'),
    tp('--help'),
  ]);
  expect(none).toMatchObject({ code: 2, stdout: expect.stringContaining('usage: toolplane <command>') });
  expect(unknown).toMatchObject({ code: 2, stderr: expect.stringContaining("error USAGE: unknown command 'frob'") });
  expect(badArgs).toMatchObject({ code: 2, stderr: expect.stringContaining("error INVALID_ARGUMENTS: --args must be a JSON object, e.g. --args '{\"a\":1}'") });
  expect(pair).toMatchObject({ code: 2, stderr: expect.stringContaining("error INVALID_ARGUMENTS: 'oops' is not key=value") });
  expect(noTo).toMatchObject({ code: 2, stderr: expect.stringContaining('error USAGE: say which version: toolplane rollback add --to N (see `toolplane versions add`)') });
  expect(badWait).toMatchObject({ code: 2, stderr: expect.stringContaining("error USAGE: --wait takes a positive whole number, got 'soon'") });
  expect(notEmpty).toMatchObject({ code: 2, stderr: expect.stringContaining('is not empty: pick a new directory, or pass --force') });
  expect(help).toMatchObject({ code: 0, stdout: expect.stringContaining('rollback NAME --to N') });
  const asJson = await tp('call', 'add', 'oops', '--json');
  expect(asJson.code).toBe(2);
  expect(JSON.parse(asJson.stderr)).toEqual({ error: { code: 'INVALID_ARGUMENTS', message: expect.stringContaining("'oops' is not key=value") } });
});

test('building outside a project says how to make one', async () => {
  const res = await tp('deploy');
  expect(res.code).toBe(1);
  expect(res.stderr).toContain(`error BUILD_FAILED: no tools/ directory in ${dir}: run this in a project made by \`toolplane init\`, or pass --cwd`);
});
