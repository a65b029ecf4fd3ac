// make soak: the worker engine under a steady mixed load for minutes, with one of its two workers
// killed and replaced again and again (the other lives through the run), then checked for what must hold over time: every accepted call ends, with
// the right result; no process or Redis connection is left behind by a killed worker; memory stops
// growing once warm. Figures go to stdout and to bench/results/soak.json (SOAK_OUT).
//
// SOAK_MINUTES (default 10), SOAK_RATE calls/s (default 100), SOAK_KILL_EVERY_S (default 60);
// SOAK_SMOKE=1: 25 s, a kill every 8 s, the memory check left out (too short to tell growth from warm-up).
// The planner and the steady worker run with an inspector on loopback: each sample reads their heap
// after a full collection through it.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createRedisConnection, closeRedis } from '@toolplane/queue';
import { startRedisServer } from '@toolplane/queue/testing';
import { ROOT, heapAfterGc, inspectorUrl, sleep, startPlanner, startToolplaneWorker } from './lib/processes.mjs';

const SMOKE = process.env.SOAK_SMOKE === '1';
const num = (name, fallback) => (process.env[name] ? Number(process.env[name]) : fallback);
const cfg = {
  seconds: SMOKE ? 25 : num('SOAK_MINUTES', 10) * 60,
  rate: num('SOAK_RATE', SMOKE ? 60 : 100),
  killEveryS: num('SOAK_KILL_EVERY_S', SMOKE ? 8 : 60),
  concurrency: 16,
  sampleEveryS: SMOKE ? 5 : 15,
};
const OUT = process.env.SOAK_OUT ?? join(ROOT, 'bench', 'results', 'soak.json');
/** A call must end this long after the load stops: the longest retry backoff and deadline below, plus stalled recovery. */
const SETTLE_MS = 60_000;
/** Short locks, so a killed worker's calls go back to wait within seconds (the fault tests check the defaults). */
const WORKER_ENV = { WORKER_LOCK_DURATION_MS: '4000', WORKER_STALLED_INTERVAL_MS: '2000' };

/** The mix: each tool's share of the calls, its spec, and what a call of it must end as. */
const TOOLS = {
  'soak-add': {
    share: 0.45,
    spec: { code: 'export default (a) => a.a + a.b' },
    args: (i) => ({ a: i, b: 1 }),
    expect: (args) => ({ status: 'succeeded', result: args.a + args.b }),
  },
  'soak-slow': {
    share: 0.15,
    spec: {
      code: 'export default async (a, ctx) => { ctx.progress(0.5, "half"); await new Promise((r) => setTimeout(r, a.ms)); return a.ms }',
      limits: { timeoutMs: 3000, memoryMb: 32 },
    },
    args: (i) => ({ a: 0, b: 0, ms: 20 + (i % 10) * 30 }),
    expect: (args) => ({ status: 'succeeded', result: args.ms }),
  },
  // One call in three fails its first attempt (retryable) and succeeds on the next.
  'soak-flaky': {
    share: 0.15,
    spec: {
      code: 'export default (a, ctx) => { if (a.a % 3 === 0 && ctx.attempt === 1) throw new Error("first attempt fails"); return a.a }',
      retries: { attempts: 3, backoffMs: 50 },
    },
    args: (i) => ({ a: i, b: 0 }),
    expect: (args) => ({ status: 'succeeded', result: args.a }),
  },
  // Rate limited below what it is sent: calls wait their turn, none is refused.
  'soak-limited': {
    share: 0.1,
    spec: { code: 'export default (a) => a.a', rateLimit: { max: 15, perMs: 1000 } },
    args: (i) => ({ a: i, b: 0 }),
    expect: (args) => ({ status: 'succeeded', result: args.a }),
  },
  // Always fails: its breaker opens and held calls end at their trial or their deadline.
  'soak-broken': {
    share: 0.05,
    spec: { code: 'export default () => { throw new Error("always") }', retries: { attempts: 1, backoffMs: 50 }, breaker: { volumeThreshold: 5, resetTimeoutMs: 2000 } },
    args: (i) => ({ a: i, b: 0 }),
    deadlineMs: 10_000,
    expect: () => ({ status: 'failed', codes: ['TOOL_ERROR', 'DEADLINE_EXCEEDED'] }),
  },
};
const PARAMETERS = { type: 'object', properties: { a: { type: 'number' }, b: { type: 'number' }, ms: { type: 'number' } }, required: ['a', 'b'] };
/** Shares of the calls that are submitted with `wait: true`, cancelled after submitting, or sent twice with one idempotency key. */
const WAIT_SHARE = 0.1;
/** Of the slow tool's calls: the share followed over `GET /v1/calls/{id}/events` (half of them dropped early), and waited for by a client that hangs up. */
const WATCH_SHARE = 0.3;
const ABANDON_SHARE = 0.1;
const CANCEL_SHARE = 0.05;
const REPEAT_SHARE = 0.05;
/** Worker deaths may leave a call that ran on two killed workers `POISONED` (stalled twice): allowed, and counted. */
const POISONED = 'POISONED';

const log = (...a) => console.log(...a);

const redisServer = await startRedisServer();
const redis = createRedisConnection(redisServer.url, 'worker');
const prefix = `soak${randomBytes(3).toString('hex')}`;
// Inspectors on loopback: the memory check reads what the planner and the steady worker keep alive.
const INSPECT = ['--inspect=127.0.0.1:0'];
const planner = await startPlanner({ redisUrl: redisServer.url, prefix, nodeArgs: INSPECT });
/** Every worker started; `steady` lives through the run, `churn` is killed and replaced. */
const workers = [];
const startWorker = (nodeArgs = []) => {
  const w = startToolplaneWorker({ redisUrl: redisServer.url, prefix, concurrency: cfg.concurrency, env: WORKER_ENV, nodeArgs });
  workers.push(w);
  return w;
};
const steady = startWorker(INSPECT);
let churn = startWorker();
const inspectors = { planner: await inspectorUrl(planner), steady: await inspectorUrl(steady) };

const api = async (method, path, body) => {
  const res = await fetch(`${planner.url}/v1${path}`, {
    method,
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
};

for (const [name, t] of Object.entries(TOOLS)) {
  const res = await api('PUT', `/tools/${name}`, { description: `soak: ${name}`, parameters: PARAMETERS, ...t.spec });
  if (res.status >= 300) throw new Error(`registering ${name}: ${res.status} ${JSON.stringify(res.body)}`);
}

/** Every accepted call: id → what it must end as. */
const accepted = new Map();
const problems = [];
const counts = { submitted: 0, refused: 0, waited: 0, cancelled: 0, repeats: 0, watched: 0, abandoned: 0, kills: 0 };

const pickTool = (r) => {
  let acc = 0;
  const names = Object.keys(TOOLS);
  for (const name of names) {
    acc += TOOLS[name].share;
    if (r < acc) return name;
  }
  return names[0];
};

async function submitOne(i) {
  const tool = pickTool(Math.random());
  const t = TOOLS[tool];
  const args = t.args(i);
  const kind = Math.random();
  const body = { tool, arguments: args, ...(t.deadlineMs ? { deadlineMs: t.deadlineMs } : {}) };
  if (kind < WAIT_SHARE && tool === 'soak-add') {
    // Sync: the answer itself must be the finished call.
    counts.waited++;
    const res = await api('POST', '/calls', { ...body, wait: true });
    // A finished call; whether it ended right is checked with all the others at the end.
    if (res.status !== 200 || !['succeeded', 'failed'].includes(res.body?.status)) problems.push(`wait answer ${res.status} ${JSON.stringify(res.body)}`);
    if (res.body?.id) accepted.set(res.body.id, { tool, want: t.expect(args) });
    return;
  }
  if (tool === 'soak-slow' && kind < ABANDON_SHARE) {
    // A client that hangs up mid-wait: the call goes on and must end like any other.
    counts.abandoned++;
    const id = await abandonedWait(body);
    if (id) accepted.set(id, { tool, want: t.expect(args) });
    return;
  }
  if (kind < WAIT_SHARE + REPEAT_SHARE) {
    counts.repeats++;
    const key = `soak-${i}-${randomBytes(4).toString('hex')}`;
    const [a, b] = await Promise.all([api('POST', '/calls', { ...body, idempotencyKey: key }), api('POST', '/calls', { ...body, idempotencyKey: key })]);
    if (a.body?.id !== b.body?.id) problems.push(`one idempotency key gave two calls: ${a.body?.id} ${b.body?.id}`);
    if (a.body?.id) accepted.set(a.body.id, { tool, want: t.expect(args) });
    return;
  }
  const res = await api('POST', '/calls', body);
  if (res.status !== 202) {
    counts.refused++;
    problems.push(`submit ${tool}: ${res.status} ${JSON.stringify(res.body)}`);
    return;
  }
  counts.submitted++;
  if (kind < WAIT_SHARE + REPEAT_SHARE + CANCEL_SHARE) {
    counts.cancelled++;
    // Cancelled at once: it may still have finished first, so either outcome of it is right.
    await api('POST', `/calls/${res.body.id}/cancel`);
    accepted.set(res.body.id, { tool, want: { ...t.expect(args), orCancelled: true } });
    return;
  }
  accepted.set(res.body.id, { tool, want: t.expect(args) });
  if (tool === 'soak-slow' && Math.random() < WATCH_SHARE) {
    counts.watched++;
    await watch(res.body.id, Math.random() < 0.5);
  }
}

/** Submits with `wait: true` and hangs up before the answer; the call's id comes from the audit trail. */
async function abandonedWait(body) {
  const key = `soak-abandoned-${randomBytes(6).toString('hex')}`;
  await fetch(`${planner.url}/v1/calls`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, idempotencyKey: key, wait: true }),
    signal: AbortSignal.timeout(15),
  }).catch(() => {});
  // The same key again answers with the same call, without waiting.
  const again = await api('POST', '/calls', { ...body, idempotencyKey: key });
  return again.body?.id;
}

/**
 * Follows a call's event stream: to its final `status` event (which must come), or dropped after
 * 30 ms. Either way the planner must let go of everything the stream held.
 */
async function watch(id, dropEarly) {
  const res = await fetch(`${planner.url}/v1/calls/${id}/events`, { signal: dropEarly ? AbortSignal.timeout(30) : AbortSignal.timeout(SETTLE_MS) }).catch(() => undefined);
  if (!res) return;
  let text = '';
  try {
    for await (const chunk of res.body) text += Buffer.from(chunk).toString();
  } catch {
    if (!dropEarly) problems.push(`event stream of ${id} broke: ${text.slice(-200)}`);
    return;
  }
  const last = text.trim().split('\n\n').at(-1) ?? '';
  if (!/^event: status\ndata: \{.*"status":"(succeeded|failed|cancelled)"/m.test(last)) problems.push(`event stream of ${id} ended without a final status: ${last.slice(0, 200)}`);
}

/** Resident memory in MB of a process and its children (a worker's sandbox hosts). */
function rssMb(pid) {
  let kb = 0;
  try {
    kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
  for (const child of childrenOf(pid)) kb += rssMb(child) * 1024;
  return kb / 1024;
}

function childrenOf(pid) {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * Sandbox hosts of this soak's workers (noted at every sample and before every kill) still running
 * without a live worker as their parent: a killed worker must take its hosts with it.
 */
const knownHosts = new Set();
function noteHosts() {
  for (const w of workers) if (!w.exited()) for (const c of childrenOf(w.pid)) knownHosts.add(c);
}
function orphanHosts() {
  const live = new Set(workers.filter((w) => !w.exited()).map((w) => w.pid));
  return [...knownHosts].filter((pid) => {
    try {
      return !live.has(Number(/PPid:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]));
    } catch {
      return false;
    }
  });
}

/**
 * What Redis holds at the end, by kind of key (call ids and numbers folded), largest first: a kind
 * that grows with every call and outlives the hot retention shows here.
 */
async function keyCensus(top = 12) {
  const kinds = new Map();
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'COUNT', 1000);
    cursor = next;
    const sizes = await Promise.all(keys.map((k) => redis.memory('USAGE', k)));
    keys.forEach((k, j) => {
      const kind = k.replace(/[0-9a-z]{26}/g, '<id>').replace(/\d{6,}/g, '<n>');
      const e = kinds.get(kind) ?? { kind, keys: 0, bytes: 0 };
      e.keys++;
      e.bytes += sizes[j] ?? 0;
      kinds.set(kind, e);
    });
  } while (cursor !== '0');
  return [...kinds.values()].sort((a, b) => b.bytes - a.bytes).slice(0, top);
}

/** Redis's client count once it has not changed for a second (connections opening or closing settle first). */
async function steadyClients() {
  let last = -1;
  for (let tries = 0, same = 0; tries < 50 && same < 3; tries++) {
    const now = await clients();
    same = now === last ? same + 1 : 0;
    last = now;
    await sleep(300);
  }
  return last;
}

async function clients() {
  return Number(/^connected_clients:(\d+)/m.exec(await redis.info('clients'))?.[1] ?? NaN);
}

async function sample(t0) {
  const info = await redis.info();
  const field = (name) => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(info)?.[1] ?? NaN);
  noteHosts();
  return {
    s: Math.round((performance.now() - t0) / 1000),
    accepted: accepted.size,
    plannerMb: Math.round(rssMb(planner.pid)),
    steadyWorkerMb: Math.round(rssMb(steady.pid)),
    plannerHeapMb: Math.round((await heapAfterGc(inspectors.planner)) / 1024 / 1024),
    steadyWorkerHeapMb: Math.round((await heapAfterGc(inspectors.steady)) / 1024 / 1024),
    redisMb: Math.round(field('used_memory') / 1024 / 1024),
    redisClients: field('connected_clients'),
  };
}

// Load, kills and samples until the time is up.
log(`soak: ${cfg.seconds} s at ${cfg.rate} calls/s, 2 workers, one of them killed and replaced every ${cfg.killEveryS} s`);
// One call answered (the planner opens its pub/sub connection on the first wait), then the baseline.
const first = await api('POST', '/calls', { tool: 'soak-add', arguments: { a: 1, b: 1 }, wait: true });
if (first.body?.result !== 2) throw new Error(`first call: ${first.status} ${JSON.stringify(first.body)}`);
const clientsAtStart = await steadyClients();
const t0 = performance.now();
const samples = [await sample(t0)];
log(JSON.stringify(samples[0]));
let i = 0;
let nextKill = t0 + cfg.killEveryS * 1000;
let nextSample = t0 + cfg.sampleEveryS * 1000;
const inFlight = new Set();
while (performance.now() - t0 < cfg.seconds * 1000) {
  const tickStart = performance.now();
  for (let k = 0; k < cfg.rate / 10; k++) {
    const p = submitOne(i++).catch((err) => problems.push(`submit: ${err.message}`));
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  }
  if (performance.now() >= nextKill) {
    nextKill += cfg.killEveryS * 1000;
    noteHosts();
    churn.proc.kill('SIGKILL');
    counts.kills++;
    churn = startWorker();
  }
  if (performance.now() >= nextSample) {
    nextSample += cfg.sampleEveryS * 1000;
    const s = await sample(t0);
    samples.push(s);
    log(JSON.stringify(s));
  }
  await sleep(Math.max(0, 100 - (performance.now() - tickStart)));
}
await Promise.all(inFlight);
const loadSeconds = (performance.now() - t0) / 1000;

// Every accepted call must end, as its tool says it must.
const outcome = { succeeded: 0, failed: 0, cancelled: 0, poisoned: 0, wrong: 0, unfinished: 0 };
const settleBy = Date.now() + SETTLE_MS;
let pending = [...accepted.keys()];
while (pending.length > 0) {
  const still = [];
  for (let j = 0; j < pending.length; j += 32) {
    const batch = pending.slice(j, j + 32);
    const records = await Promise.all(batch.map((id) => api('GET', `/calls/${id}`)));
    records.forEach((res, k) => {
      const id = batch[k];
      const rec = res.body;
      if (res.status !== 200 || rec.status === 'queued' || rec.status === 'running') return void still.push(id);
      const { tool, want } = accepted.get(id);
      if (rec.status === 'failed' && rec.error?.code === POISONED) return void outcome.poisoned++;
      if (rec.status === 'cancelled' && want.orCancelled) return void outcome.cancelled++;
      const right =
        rec.status === want.status &&
        (want.status === 'succeeded' ? JSON.stringify(rec.result) === JSON.stringify(want.result) : want.codes.includes(rec.error?.code));
      if (right) outcome[rec.status]++;
      else {
        outcome.wrong++;
        if (problems.length < 50) problems.push(`${tool} call ${id} ended ${rec.status} ${JSON.stringify(rec.result ?? rec.error)}, expected ${JSON.stringify(want)}`);
      }
    });
  }
  pending = still;
  if (pending.length === 0 || Date.now() > settleBy) break;
  await sleep(1000);
}
outcome.unfinished = pending.length;
for (const id of pending.slice(0, 10)) problems.push(`call ${id} (${accepted.get(id).tool}) did not end within ${SETTLE_MS / 1000} s of the load's end`);

const clientsAtEnd = await steadyClients();
const census = await keyCensus();
const end = await sample(t0);
samples.push(end);
const orphans = orphanHosts();
if (orphans.length > 0) problems.push(`sandbox hosts outlived their killed workers: ${orphans.join(', ')}`);
// The planner's connections plus four per live worker and this script's own: a killed worker's are gone.
if (clientsAtEnd > clientsAtStart) problems.push(`Redis clients grew from ${clientsAtStart} to ${clientsAtEnd} over ${counts.kills} worker kills`);
// What the planner and the steady worker keep alive after a full collection, the mean of the run's
// last third against that of its middle third (both warm): a leak climbs, caches level off.
const mean = (from, to, key) => {
  const xs = samples.filter((x) => x.s >= from && x.s < to).map((x) => x[key]);
  return xs.length === 0 ? NaN : Math.round(xs.reduce((a, b) => a + b, 0) / xs.length);
};
const third = cfg.seconds / 3;
const growth = {};
for (const key of ['plannerHeapMb', 'steadyWorkerHeapMb', 'plannerMb', 'steadyWorkerMb']) growth[key] = mean(2 * third, Infinity, key) - mean(third, 2 * third, key);
const MAX_HEAP_GROWTH_MB = 8;
if (!SMOKE) {
  if (growth.plannerHeapMb > MAX_HEAP_GROWTH_MB) problems.push(`the planner's heap after collection grew by ${growth.plannerHeapMb} MB from the middle third to the last`);
  if (growth.steadyWorkerHeapMb > MAX_HEAP_GROWTH_MB) problems.push(`the steady worker's heap after collection grew by ${growth.steadyWorkerHeapMb} MB from the middle third to the last`);
}

const result = {
  date: new Date().toISOString(),
  config: { ...cfg, smoke: SMOKE },
  load_seconds: Math.round(loadSeconds),
  calls: { accepted: accepted.size, per_s: Math.round(accepted.size / loadSeconds), ...counts },
  outcome,
  memory_growth_mb: growth,
  redis_bytes_per_accepted_call: Math.round(((end.redisMb - samples[0].redisMb) * 1024 * 1024) / Math.max(1, accepted.size)),
  orphan_hosts: orphans.length,
  redis_keys_by_kind: census,
  samples,
  problems,
  ok: problems.length === 0,
};
mkdirSync(dirname(OUT), { recursive: true });
writeFileSync(OUT, `${JSON.stringify(result, null, 1)}\n`);
log(`\ncalls: ${accepted.size} accepted (${result.calls.per_s}/s), ${counts.kills} workers killed`);
log(`outcome: ${Object.entries(outcome).map(([k, v]) => `${k} ${v}`).join(', ')}`);
const signed = (mb) => `${mb >= 0 ? '+' : ''}${mb} MB`;
log(`heap after collection, last third against middle third: planner ${signed(growth.plannerHeapMb)}, steady worker ${signed(growth.steadyWorkerHeapMb)} (resident: ${signed(growth.plannerMb)}, ${signed(growth.steadyWorkerMb)}); Redis clients ${clientsAtStart} → ${clientsAtEnd}; orphan hosts ${orphans.length}`);
log(`Redis at the end, largest kinds of key: ${census.slice(0, 6).map((c) => `${c.kind} ${c.keys} keys ${Math.round(c.bytes / 1024)} KiB`).join('; ')}`);
log(problems.length === 0 ? 'soak: OK' : `soak: ${problems.length} problems\n  ${problems.slice(0, 20).join('\n  ')}`);

await planner.stop();
await Promise.all(workers.map((w) => w.stop()));
await closeRedis(redis);
await redisServer.stop();
process.exit(problems.length === 0 ? 0 : 1);
