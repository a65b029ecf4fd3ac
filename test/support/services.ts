import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach } from 'vitest';
import { freePort } from '@toolplane/queue/testing';

/** The repository root. */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export type ServiceProcess = {
  url: string;
  port: number;
  proc: ChildProcess;
  output: () => string;
  /** Sends a signal and waits for the exit. */
  kill(signal?: NodeJS.Signals): Promise<number | null>;
};

/** A key prefix of its own, so suites sharing one Redis never see each other's tools or calls. */
export function uniquePrefix(): string {
  return `t${randomBytes(5).toString('hex')}`;
}

/**
 * Whether process `pid` holds the socket listening on `port`, from Linux's /proc (true where /proc
 * cannot tell). A free port found for one test file can be taken by another file's service before
 * this one binds it: then that service answers this one's health checks.
 */
function listensOn(pid: number, port: number): boolean {
  const suffix = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const inodes = new Set<string>();
  let readable = false;
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    readable = true;
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st … inode; 0A is LISTEN.
      const f = line.trim().split(/\s+/);
      if (f[1]?.endsWith(suffix) && f[3] === '0A' && f[9]) inodes.add(f[9]);
    }
  }
  if (!readable) return true;
  try {
    return readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        return inodes.has(/^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1] ?? '');
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}

async function waitHealthy(url: string, port: number, proc: ChildProcess, output: () => string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`process exited with ${proc.exitCode}:\n${output()}`);
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok && listensOn(proc.pid!, port)) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`service at ${url} not healthy after ${timeoutMs}ms:\n${output()}`);
}

async function startService(service: 'planner' | 'worker', env: Record<string, string>, portVar: string): Promise<ServiceProcess> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startServiceOn(await freePort(), service, env, portVar);
    } catch (err: unknown) {
      // Another test file's service took the port first: try another.
      if (attempt >= 5 || !(err instanceof Error && err.message.includes('EADDRINUSE'))) throw err;
    }
  }
}

/**
 * The services this test file started, and whether a test stopped each itself. Those still running
 * when the file's tests are over are killed, so a test that failed before its teardown (or a start
 * that never got healthy) leaves no planner or worker behind spinning on a Redis that is gone.
 * (Sandbox hosts exit with their worker.) After the file's own `afterAll` hooks (registered on
 * import, this one runs last), and again at exit: vitest may end a test file's process without
 * its `exit` event.
 */
const fileServices = new Map<ServiceProcess, { name: string; stopped: boolean }>();
const isRunning = (proc: ChildProcess) => proc.exitCode === null && proc.signalCode === null;
const killLeftovers = () => {
  for (const svc of fileServices.keys()) if (isRunning(svc.proc)) svc.proc.kill('SIGKILL');
};
afterAll(killLeftovers);
process.once('exit', killLeftovers);

// After a failed test: the tail of the output of each service of the file that no test stopped, and
// whether it still runs. CI shows the test log only, and a service that crashed or stalled says why
// there. Registered when a test file imports this module, so it covers all of that file's tests.
afterEach((ctx) => {
  if (ctx.task.result?.state !== 'fail') return;
  for (const [svc, { name, stopped }] of fileServices) {
    if (stopped) continue;
    const { exitCode, signalCode, pid } = svc.proc;
    const state = isRunning(svc.proc) ? `running (pid ${pid})` : `exited (code ${exitCode}, signal ${signalCode})`;
    console.error(`--- ${name} at ${svc.url}: ${state}; the last of its output ---\n${svc.output().slice(-6_000)}`);
  }
});

async function startServiceOn(port: number, service: 'planner' | 'worker', env: Record<string, string>, portVar: string): Promise<ServiceProcess> {
  let out = '';
  const proc = spawn(process.execPath, ['--no-node-snapshot', join(ROOT, 'services', service, 'dist', 'main.js')], {
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'warn', ...env, [portVar]: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  proc.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  const url = `http://127.0.0.1:${port}`;
  const svc: ServiceProcess = {
    url,
    port,
    proc,
    output: () => out,
    kill: (signal = 'SIGTERM') =>
      new Promise((resolve) => {
        fileServices.get(svc)!.stopped = true;
        if (!isRunning(proc)) return resolve(proc.exitCode);
        proc.once('exit', (code) => resolve(code));
        proc.kill(signal);
      }),
  };
  fileServices.set(svc, { name: service, stopped: false });
  try {
    await waitHealthy(url, port, proc, svc.output);
  } catch (err: unknown) {
    // Its start failed with its output in the error: not shown again after the test.
    fileServices.get(svc)!.stopped = true;
    proc.kill('SIGKILL');
    throw err;
  }
  return svc;
}

/** A planner process; without a `TOOLPLANE_ADMIN_KEY` from the caller it runs with `TOOLPLANE_AUTH=off`. */
export function startPlanner(env: { REDIS_URL: string; TOOLPLANE_PREFIX: string } & Record<string, string>) {
  // The history store: an SQLite file per prefix in the temp dir (not the checkout's .data/) unless the test names one.
  const history = { HISTORY_URL: `sqlite:${join(tmpdir(), `toolplane-history-${env.TOOLPLANE_PREFIX}.sqlite`)}` };
  return startService('planner', { HOST: '127.0.0.1', ...history, ...(env.TOOLPLANE_ADMIN_KEY ? {} : { TOOLPLANE_AUTH: 'off' }), ...env }, 'PORT');
}

export function startWorker(env: { REDIS_URL: string; TOOLPLANE_PREFIX: string } & Record<string, string>) {
  // Test downstreams listen on 127.0.0.1, a range tools may reach only when the operator opens it.
  return startService('worker', { TOOL_DISCOVERY_INTERVAL_MS: '500', TOOLPLANE_ALLOW_PRIVATE_NETWORKS: '127.0.0.1', ...env }, 'WORKER_METRICS_PORT');
}

/** JSON over HTTP with the status kept. */
export async function api(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(base + path, {
    method,
    headers: { 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  let json: any;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = text;
  }
  return { status: res.status, body: json, headers: res.headers };
}

export const ADD_TOOL = {
  description: 'Adds two numbers',
  parameters: {
    type: 'object',
    properties: { a: { type: 'number' }, b: { type: 'number' } },
    required: ['a', 'b'],
  },
  code: 'export default async function (args, ctx) { return args.a + args.b }',
};

/** Polls `check` until it returns a value other than `undefined`, or fails after `timeoutMs`. */
export async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs}ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Waits until every call has finished; returns their records in the order of `ids`. */
export async function waitForCalls(base: string, ids: string[], timeoutMs = 60_000): Promise<any[]> {
  const done = new Map<string, any>();
  await eventually(async () => {
    const pending = ids.filter((id) => !done.has(id));
    await Promise.all(
      pending.slice(0, 100).map(async (id) => {
        const r = await api(base, 'GET', `/v1/calls/${id}`);
        if (['succeeded', 'failed', 'cancelled'].includes(r.body?.status)) done.set(id, r.body);
      }),
    );
    return done.size === ids.length ? true : undefined;
  }, timeoutMs, 200);
  return ids.map((id) => done.get(id));
}

/** Sums a counter over every series whose labels contain `labels`, across several /metrics texts. */
export function sumMetric(texts: string[], name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const text of texts) {
    for (const line of text.split('\n')) {
      if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
      if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) total += Number(line.split(' ').at(-1));
    }
  }
  return total;
}

/** Largest number of timestamps inside any half-open window `[t, t + windowMs)`. */
export function maxInWindow(timestamps: number[], windowMs: number): number {
  const ts = [...timestamps].sort((a, b) => a - b);
  let max = 0;
  let lo = 0;
  for (let hi = 0; hi < ts.length; hi++) {
    while (ts[hi]! - ts[lo]! >= windowMs) lo++;
    max = Math.max(max, hi - lo + 1);
  }
  return max;
}
