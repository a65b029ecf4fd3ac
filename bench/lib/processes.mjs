// Child processes of the bench: Toolplane workers, the planner and the raw BullMQ worker.
// Every child is tracked so that an error or Ctrl-C never leaves one running.
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '@toolplane/queue/testing';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const children = new Set();

function killAll() {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    killAll();
    process.exit(130);
  });
}

/**
 * Spawns `node --no-node-snapshot <script>` with only the environment given (plus PATH), keeping
 * the last 20 kB of its output for error messages.
 */
export function spawnNode(script, env, nodeArgs = []) {
  let out = '';
  const proc = spawn(process.execPath, ['--no-node-snapshot', ...nodeArgs, script], {
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const keep = (d) => (out = (out + d.toString()).slice(-20_000));
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  children.add(proc);
  proc.once('exit', () => children.delete(proc));
  return {
    proc,
    pid: proc.pid,
    output: () => out,
    exited: () => proc.exitCode !== null || proc.signalCode !== null,
    /** SIGTERM (graceful: lets a `--cpu-prof` process write its profile), SIGKILL after `graceMs`. */
    stop(graceMs = 15_000) {
      return new Promise((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
        const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
        proc.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        proc.kill('SIGTERM');
      });
    },
  };
}

/**
 * A real Toolplane worker process, configured as the brief and production do: metrics server on,
 * logging at warn. `profileFile` turns on `--cpu-prof` (written when the process exits); `env` adds
 * settings, `nodeArgs` flags of node.
 */
export function startToolplaneWorker({ redisUrl, prefix, concurrency, profileFile, env = {}, nodeArgs: extraArgs = [] }) {
  const profileArgs = profileFile ? ['--cpu-prof', `--cpu-prof-dir=${dirname(profileFile)}`, `--cpu-prof-name=${profileFile.split('/').at(-1)}`] : [];
  const nodeArgs = [...extraArgs, ...profileArgs];
  return spawnNode(
    join(ROOT, 'services', 'worker', 'dist', 'main.js'),
    { REDIS_URL: redisUrl, TOOLPLANE_PREFIX: prefix, WORKER_METRICS_PORT: '0', WORKER_CONCURRENCY: String(concurrency), ...env },
    nodeArgs,
  );
}

/** The raw BullMQ worker (bench/bullmq-worker.mjs): same process boundary, no-op processor. */
export function startBullmqWorker({ redisUrl, prefix, queueName, concurrency }) {
  return spawnNode(join(ROOT, 'bench', 'bullmq-worker.mjs'), {
    REDIS_URL: redisUrl,
    BENCH_PREFIX: prefix,
    BENCH_QUEUE: queueName,
    WORKER_CONCURRENCY: String(concurrency),
  });
}

/**
 * A real planner process on a free port, on 127.0.0.1 with auth off (the bench measures the queue
 * path, not key checks); resolves once `/healthz` answers.
 */
export async function startPlanner({ redisUrl, prefix, nodeArgs = [] }) {
  const port = await freePort();
  const p = spawnNode(join(ROOT, 'services', 'planner', 'dist', 'main.js'), {
    REDIS_URL: redisUrl,
    TOOLPLANE_PREFIX: prefix,
    PORT: String(port),
    HOST: '127.0.0.1',
    TOOLPLANE_AUTH: 'off',
    // The hand-built stack it is compared with has no per-key limit; the default 1,000/s would cap the sync figure.
    API_RATE_LIMIT_PER_S: '0',
  }, nodeArgs);
  const url = `http://127.0.0.1:${port}`;
  await waitHealthy(p, url, 'planner');
  return { ...p, url };
}

/** Resolves once `proc` answers `GET {url}/healthz`; fails with its output if it exits or takes over 30 s. */
export async function waitHealthy(proc, url, what) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exited()) throw new Error(`${what} exited:\n${proc.output()}`);
    try {
      if ((await fetch(`${url}/healthz`)).ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${what} not healthy after 30 s:\n${proc.output()}`);
    await sleep(50);
  }
}

/** Waits until `count` worker connections consume `queue` (BullMQ names its blocking connections). */
export async function waitForConsumers(queue, count, procs, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const p of procs) if (p.exited()) throw new Error(`worker exited:\n${p.output()}`);
    if ((await consumers(queue)) >= count) return;
    if (Date.now() > deadline) throw new Error(`${count} workers not consuming ${queue.name} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

/**
 * Workers consuming `queue`: raw BullMQ workers hold a connection per queue; Toolplane workers one
 * scheduler connection per process whatever the number of tools, named after the key prefix.
 */
async function consumers(queue) {
  const raw = await queue.getWorkersCount();
  if (raw > 0) return raw;
  const client = await queue.getBackend().client;
  const nodes = typeof client.nodes === 'function' ? client.nodes('master') : [client];
  const lists = await Promise.all(nodes.map(async (node) => String(await node.client('LIST'))));
  return lists.join('\n').split('\n').filter((line) => line.includes(` name=toolplane-scheduler:${queue.opts.prefix} `)).length;
}

/**
 * CPU time (user + system) a process and everything it started have used, in µs; `null` off Linux.
 * Ticks are 10 ms. A Toolplane worker runs tool code in sandbox host processes (and their esbuild
 * service): their time is the worker's as much as its own, live children counted directly and
 * ended ones through the worker's `cutime`/`cstime`.
 */
export function cpuTimeUs(pid) {
  const ticks = treeTicks(pid);
  return ticks === null ? null : ticks * 10_000;
}

function treeTicks(pid) {
  const stat = procStat(pid);
  if (!stat) return null;
  let total = stat.utime + stat.stime + stat.cutime + stat.cstime;
  for (const child of childrenOf(pid)) total += treeTicks(child) ?? 0;
  return total;
}

function procStat(pid) {
  try {
    // Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th,
    // cutime and cstime (waited-for children) the 14th and 15th.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { utime: Number(f[11]), stime: Number(f[12]), cutime: Number(f[13]), cstime: Number(f[14]) };
  } catch {
    return null;
  }
}

function childrenOf(pid) {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((tid) =>
      readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean).map(Number),
    );
  } catch {
    return [];
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The inspector address a process started with `--inspect=127.0.0.1:0` printed, once it has. */
export async function inspectorUrl(proc, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const url = /ws:\/\/127\.0\.0\.1:\d+\/[\w-]+/.exec(proc.output())?.[0];
    if (url) return url;
    if (proc.exited() || Date.now() > deadline) throw new Error(`no inspector address:\n${proc.output()}`);
    await sleep(50);
  }
}

/**
 * Bytes of heap a process still uses right after a full collection, through its inspector: what it
 * keeps alive, without the garbage that makes its resident memory swing by ~100 MB.
 */
export async function heapAfterGc(url) {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error(`inspector ${url} unreachable`));
  });
  const replies = new Map();
  ws.onmessage = (e) => {
    const m = JSON.parse(String(e.data));
    replies.get(m.id)?.(m);
  };
  let id = 0;
  const call = (method, params) =>
    new Promise((resolve) => {
      replies.set(++id, resolve);
      ws.send(JSON.stringify({ id, method, params }));
    });
  try {
    await call('HeapProfiler.collectGarbage');
    const reply = await call('Runtime.evaluate', { expression: 'process.memoryUsage().heapUsed', returnByValue: true });
    return reply.result.result.value;
  } finally {
    ws.close();
  }
}
