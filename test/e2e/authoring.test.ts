import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@toolplane/queue/testing';
import { afterAll, beforeAll, expect, inject, test } from 'vitest';
import { ROOT, api, eventually, startPlanner, startWorker, uniquePrefix, type ServiceProcess } from '../support/services.js';

// What a new tool author does, from `toolplane init` to a rollback, against a real planner and
// worker, with the CLI run as its own process the way a shell runs it.
const ADMIN_KEY = 'authoring-admin-key-0123456789';
const BIN = join(ROOT, 'packages', 'cli', 'bin', 'toolplane.js');
/** The bin restarts itself with this flag when it is missing; passing it saves a Node start per command. */
const NODE_FLAGS = ['--no-node-snapshot'];
const env = { REDIS_URL: inject('redisUrl'), TOOLPLANE_PREFIX: uniquePrefix() };
let planner: ServiceProcess;
let worker: ServiceProcess;
let dir: string;
let project: string;

beforeAll(async () => {
  [planner, worker] = await Promise.all([startPlanner({ ...env, TOOLPLANE_ADMIN_KEY: ADMIN_KEY }), startWorker(env)]);
  dir = mkdtempSync(join(tmpdir(), 'toolplane-authoring-'));
  project = join(dir, 'my-tools');
});
afterAll(async () => {
  await Promise.all([planner?.kill(), worker?.kill()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

type Run = { code: number | null; stdout: string; stderr: string };

function cliEnv(): NodeJS.ProcessEnv {
  // No TOOLPLANE_* of the machine running the tests leaks in; HOME and PATH keep npm working.
  const { TOOLPLANE_URL: _u, TOOLPLANE_KEY: _k, ...rest } = process.env;
  return { ...rest, TOOLPLANE_URL: planner.url, TOOLPLANE_KEY: ADMIN_KEY, NO_COLOR: '1' };
}

function run(cmd: string, args: string[], cwd: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** `toolplane …` in the project, as its `npx toolplane` would run it. */
const tp = (...args: string[]) => run(process.execPath, [...NODE_FLAGS, join(project, 'node_modules', '.bin', 'toolplane'), ...args], project);

const tool = (mark: string) => `import { defineTool } from '@toolplane/sdk';
import slugify from 'slugify';
import * as z from 'zod';

export default defineTool({
  name: 'slug',
  description: 'Makes the URL of a post from its title',
  parameters: z.object({ title: z.string(), base: z.string() }),
  run: ({ title, base }, ctx) => {
    if (title === 'boom') throw new Error('no posts about explosions');
    const slug = slugify(title, { lower: true, strict: true });
    const url = new URL(slug, base);
    const id = crypto.randomUUID();
    ctx.log('made', url.href);
    return { mark: '${mark}', url: url.href, bytes: new TextEncoder().encode(title).length, uuid: /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(id) };
  },
});
`;
/** The line of the `throw` above, 1-based, as the source map must report it. */
const THROW_LINE = 10;

const registered = async () => (await api(planner.url, 'GET', '/v1/tools/slug', undefined, { authorization: `Bearer ${ADMIN_KEY}` })).body as { version: number; code: string };

test('init, npm install, deploy, call, dev (edit and a refused build), versions, rollback, calls, rm, test', async () => {
  // 1. A project from zero, and a real npm package in it.
  const init = await run(process.execPath, [BIN, 'init', 'my-tools'], dir);
  expect(init.code, init.stderr).toBe(0);
  expect(init.stdout).toContain('tools/hello.ts');
  const install = await run('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', 'slugify@1'], project);
  expect(install.code, install.stderr).toBe(0);
  // The project's own tests, in the local sandbox (no Redis), while the rest goes on.
  const localTests = tp('test');

  // 2. A tool using it with URL, TextEncoder and crypto.randomUUID; deploy registers it once.
  writeFileSync(join(project, 'tools', 'slug.ts'), tool('v1'));
  const deployed = await tp('deploy');
  expect(deployed.code, deployed.stderr).toBe(0);
  expect(deployed.stdout).toMatch(/^hello@1 +deployed/m);
  expect(deployed.stdout).toMatch(/^slug@1 +deployed +[\d.]+ KiB +tools\/slug\.ts$/m);
  const again = await tp('deploy', '--json');
  expect(JSON.parse(again.stdout)).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'slug', version: 1, changed: false })]));

  // 3. `call` prints the result; a failed call exits 1 with its code and the TypeScript line.
  const called = await tp('call', 'slug', 'title=Hällo Wörld!', 'base=https://blog.example/posts/');
  expect(called.code, called.stderr).toBe(0);
  expect(JSON.parse(called.stdout)).toEqual({ mark: 'v1', url: 'https://blog.example/posts/hallo-world', bytes: 14, uuid: true });
  // The call's log lines stream to stderr (GET /v1/calls/{id}/events) while stdout holds only the result.
  expect(called.stderr).toContain('│ made https://blog.example/posts/hallo-world');
  const boom = await tp('call', 'slug', '--args', '{"title":"boom","base":"https://blog.example/"}');
  expect(boom.code).toBe(1);
  expect(boom.stderr).toContain('error TOOL_ERROR: ');
  expect(boom.stderr).toContain('no posts about explosions');
  expect(boom.stderr).toContain(`tools/slug.ts:${THROW_LINE}:`);
  const badArgs = await tp('call', 'slug', 'title=x');
  expect(badArgs.code).toBe(1);
  expect(badArgs.stderr).toContain('error INVALID_ARGUMENTS');

  // 4. `dev`: a save is registered, a call's logs are printed, a build error keeps the last good version.
  const dev = spawn(process.execPath, [...NODE_FLAGS, join(project, 'node_modules', '.bin', 'toolplane'), 'dev'], { cwd: project, env: cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    const out = collect(dev);
    await out.waitFor(() => out.stdout().includes('slug@1'), 'the first registration');
    writeFileSync(join(project, 'tools', 'slug.ts'), tool('v2'));
    const v2 = await eventually(async () => ((await registered()).version === 2 ? true : undefined), 20_000, 50);
    expect(v2).toBe(true);
    const edited = await tp('call', 'slug', 'title=Dev loop', 'base=https://blog.example/');
    expect(JSON.parse(edited.stdout)).toMatchObject({ mark: 'v2', url: 'https://blog.example/dev-loop' });
    await out.waitFor(() => out.stdout().includes('made https://blog.example/dev-loop'), 'the log line of the call');
    await out.waitFor(() => /\[slug@2\] \S+ succeeded/.test(out.stdout()), 'how the call ended');
    expect(out.stdout()).toMatch(/^\[slug@2\] \S+ │ made https:\/\/blog\.example\/dev-loop$/m);
    expect(out.stdout().split('made https://blog.example/dev-loop').length).toBe(2); // once, not again at the end

    // An author reaching for the file system (used, so TypeScript does not drop the import).
    writeFileSync(join(project, 'tools', 'slug.ts'), `import { readFileSync } from 'node:fs';\n${tool('v3').replace("'v3'", "readFileSync('/etc/hostname', 'utf8')")}`);
    await out.waitFor(() => out.stderr().includes("'node:fs' is a Node built-in"), 'the refused build');
    expect(out.stderr()).toMatch(/tools\/slug\.ts:1:\d+: 'node:fs' is a Node built-in/);
    expect(out.stderr()).toContain('slug@2 stays current');
    expect((await registered()).version).toBe(2);
  } finally {
    dev.kill('SIGTERM');
    await new Promise((r) => dev.once('exit', r));
  }
  // `deploy` refuses the same file, naming the import, and registers nothing.
  const refused = await tp('deploy');
  expect(refused.code).toBe(1);
  expect(refused.stderr).toMatch(/error BUILD_FAILED: tools\/slug\.ts:1:\d+: 'node:fs' is a Node built-in/);
  expect(refused.stderr).toContain('nothing was deployed');
  expect((await registered()).version).toBe(2);

  // 5. versions and rollback: v1's code serves again, as v3.
  const versions = await tp('versions', 'slug', '--json');
  expect((JSON.parse(versions.stdout) as Array<{ version: number }>).map((v) => v.version)).toEqual([2, 1]);
  const rolled = await tp('rollback', 'slug', '--to', '1');
  expect(rolled.code, rolled.stderr).toBe(0);
  expect(rolled.stdout).toContain('slug@3  serves the code of v1');
  const old = await tp('call', 'slug', 'title=Back again', 'base=https://blog.example/');
  expect(JSON.parse(old.stdout)).toMatchObject({ mark: 'v1', url: 'https://blog.example/back-again' });

  // 6. calls lists them with status and timings; rm removes the tool.
  const calls = await tp('calls', 'slug', '--json');
  const listed = JSON.parse(calls.stdout) as Array<{ status: string; version: number; timings: { runMs: number | null } }>;
  expect(listed.map((c) => `${c.version}:${c.status}`)).toEqual(['3:succeeded', '2:succeeded', '1:failed', '1:succeeded']);
  expect(listed.every((c) => typeof c.timings.runMs === 'number')).toBe(true);
  const table = await tp('calls', 'slug');
  expect(table.stdout.split('\n')[0]).toMatch(/^ID +VERSION +STATUS +ATTEMPTS +QUEUED +RUN +CREATED +ERROR$/);
  expect((await tp('rm', 'slug')).stdout).toContain('removed slug');
  const gone = await tp('call', 'slug', 'title=x', 'base=https://blog.example/');
  expect(gone.code).toBe(1);
  expect(gone.stderr).toContain('error TOOL_NOT_FOUND');

  // 7. An example from examples/ deploys as it is; a tool that needs approval says how to give it.
  const refundDir = join(ROOT, 'examples', 'refund-payment');
  const refundDeploy = await run(process.execPath, [...NODE_FLAGS, BIN, 'deploy'], refundDir);
  expect(refundDeploy.stdout, refundDeploy.stderr).toMatch(/^refund_payment@1 +deployed/m);
  const waiting = await run(process.execPath, [...NODE_FLAGS, BIN, 'call', 'refund_payment', 'paymentIntent=pi_1', 'reason=duplicate'], refundDir);
  expect(waiting.code).toBe(3);
  expect(waiting.stderr).toMatch(/error AWAITING_APPROVAL: call \S+ waits for approval: POST \/v1\/calls\/\S+\/approve/);

  const tested = await localTests;
  expect(tested.code, tested.stdout + tested.stderr).toBe(0);
  expect(tested.stdout).toMatch(/1 passed/);
  expect(readFileSync(join(project, 'package.json'), 'utf8')).toContain('"slugify"');
}, 120_000);

test('without a planner, the CLI says where it looked and what to do', async () => {
  const closed = await freePort();
  const res = await run(process.execPath, [BIN, 'versions', 'x', '--url', `http://127.0.0.1:${closed}`], dir);
  expect(res.code).toBe(1);
  expect(res.stderr).toContain(`error UNREACHABLE: no planner answers at http://127.0.0.1:${closed} (ECONNREFUSED): start one with \`make up\`, or point TOOLPLANE_URL / --url at yours`);
  const wrongKey = await run(process.execPath, [BIN, 'versions', 'x', '--key', 'tp_nope_nope'], dir);
  expect(wrongKey.stderr).toMatch(/error UNAUTHORIZED: .*TOOLPLANE_KEY/);
});

function collect(child: ChildProcess) {
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return {
    stdout: () => stdout,
    stderr: () => stderr,
    /** Waits for `done`; on a timeout, the failure shows what the process printed. */
    waitFor: (done: () => boolean, what: string) =>
      eventually(async () => (done() ? true : undefined), 30_000, 50).catch(() => {
        throw new Error(`toolplane dev did not print ${what}; it printed:\n${stdout}\n--- stderr ---\n${stderr}`);
      }),
  };
}
