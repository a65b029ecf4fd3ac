// `make bench`: Toolplane against raw BullMQ on one real redis-server, with real worker processes.
// Prints a table and writes bench/results/latest.json. Phases, in order:
//   1. Redis ceiling     redis-benchmark against the same server, while it is idle
//   2. Throughput        20,000 calls, Toolplane and raw BullMQ interleaved (tp, bullmq, tp, …)
//   3. Latency           sequential calls: HTTP POST /v1/calls wait:true vs BullMQ add + waitUntilFinished
//   3a. Sync HTTP        64 connections of POST wait:true: Toolplane vs the hand-built express + BullMQ + isolated-vm stack (bench/handbuilt/)
//   3b. History          Redis bytes per hot call and archiver records/s into SQLite (bench/lib/history.mjs)
//   4. Scaling           Toolplane with 1, 2 and 4 worker processes, on one Redis and on a local 3-master cluster
//   5. Sandbox           packages/sandbox/bench/sandbox-bench.mjs, alone on the machine
//   6. Planning          bench/planning.mjs: plan mode vs ReAct, wall time and model calls (BENCH_MODEL_LATENCY_MS)
//   7. Console           bench/console-paint.mjs: first paint and data of the console pages with 10,000 calls in the trail
// Each figure is the median of BENCH_REPEATS (3) repeats, with min and max.
//
// Env: BENCH_SMOKE=1 (tiny run for the test suite), BENCH_REPEATS, BENCH_CALLS, BENCH_LATENCY_CALLS,
// BENCH_SCALING_CALLS, BENCH_HISTORY_CALLS, BENCH_CONCURRENCY, BENCH_PROFILE=1 (CPU profile of the throughput worker),
// BENCH_AOF=1 (Redis with appendfsync everysec, as `make up` runs it), BENCH_OUT (result file),
// BENCH_CLUSTER=0 skips the cluster curve; BENCH_CLUSTER_URL=redis-cluster://… uses a cluster of yours.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { Queue, QueueEvents } from 'bullmq';
import { createCalls, ToolRegistry, closeRedis, createKeys, createRedisConnection } from '@toolplane/queue';
import { startRedisServer } from '@toolplane/queue/testing';
import { ROOT, sleep, spawnNode, startBullmqWorker, startPlanner, startToolplaneWorker, waitForConsumers } from './lib/processes.mjs';
import { historyBench } from './lib/history.mjs';
import { measureSyncHttp, startHandBuilt } from './lib/sync-http.mjs';
import { summarizeProfile } from './lib/profile.mjs';
import { scalingCurve, startLocalCluster } from './lib/scaling.mjs';
import { percentile, round, summarize, summarizeKeys } from './lib/stats.mjs';
import { planningBench, planningRows } from './planning.mjs';
import { consolePaintBench } from './console-paint.mjs';
import { BENCH_TOOL, BENCH_TOOL_SPEC, BULLMQ_JOB_OPTS, bullmqEnqueuer, measureThroughput, toolplaneEnqueuer } from './lib/throughput.mjs';

const SMOKE = process.env.BENCH_SMOKE === '1';
const num = (name, dflt) => (process.env[name] ? Number(process.env[name]) : dflt);
const cfg = {
  repeats: num('BENCH_REPEATS', SMOKE ? 1 : 3),
  calls: num('BENCH_CALLS', SMOKE ? 200 : 20_000),
  concurrency: num('BENCH_CONCURRENCY', 100),
  warmup: SMOKE ? 100 : 2_000,
  latencyCalls: num('BENCH_LATENCY_CALLS', SMOKE ? 20 : 500),
  scalingCalls: num('BENCH_SCALING_CALLS', SMOKE ? 100 : 5_000),
  historyCalls: num('BENCH_HISTORY_CALLS', SMOKE ? 200 : 10_000),
  scalingPoints: SMOKE ? [1, 2] : [1, 2, 4],
  redisBenchRequests: SMOKE ? 2_000 : 100_000,
  profile: process.env.BENCH_PROFILE === '1',
  aof: process.env.BENCH_AOF === '1',
  out: process.env.BENCH_OUT ?? join(ROOT, 'bench', 'results', 'latest.json'),
};
const THROUGHPUT_GOAL = 0.7;

/** Issue 14's goals, each with its value from this run and whether it is met. */
function issue14Goals({ ratio, throughputDetail, latencyDetail, syncDetail }) {
  const tp = throughputDetail.toolplane;
  const bull = throughputDetail.bullmq;
  const goal = (text, value, met) => ({ goal: text, value, met });
  return {
    throughput_ratio: goal(`≥ ${THROUGHPUT_GOAL} × raw BullMQ`, ratio, ratio >= THROUGHPUT_GOAL),
    worker_cpu_us_per_call: goal('≤ 100 µs (sandbox hosts included)', tp.worker_cpu_us_per_call.median, tp.worker_cpu_us_per_call.median <= 100),
    redis_commands_per_call: goal(`≤ BullMQ's + 5 (${round(bull.redis_commands_per_call.median + 5, 1)})`, tp.redis_commands_per_call.median, tp.redis_commands_per_call.median <= bull.redis_commands_per_call.median + 5),
    http_wait_p99_ms: goal(`≤ 3 × BullMQ add + wait p99 (${round(3 * latencyDetail.bullmq.p99.median)} ms)`, latencyDetail.toolplane_http.p99.median, latencyDetail.toolplane_http.p99.median <= 3 * latencyDetail.bullmq.p99.median),
    sync_http_64_ratio: goal('≥ 2 × the hand-built express + BullMQ + isolated-vm stack', syncDetail.ratio.median, syncDetail.ratio.median >= 2),
  };
}
const log = (msg) => process.stderr.write(`${msg}\n`);

async function main() {
  const started = Date.now();
  const machine = {
    cores: cpus().length,
    cpu_model: cpus()[0]?.model ?? 'unknown',
    node: process.version,
    memory_gb: round(totalmem() / 2 ** 30, 1),
    loadavg_1m_at_start: round(loadavg()[0]),
  };
  log(`bench: ${JSON.stringify(cfg)}\nmachine: ${JSON.stringify(machine)}`);

  const server = await startRedisServer({ aof: cfg.aof });
  const redis = createRedisConnection(server.url, 'worker');
  const stops = [];
  try {
    machine.redis = (/redis_version:(\S+)/.exec(await redis.info('server')) ?? [])[1];

    // 1. Redis ceiling, before anything else touches the server.
    log('\n[1/5] redis-benchmark');
    const redisRuns = [];
    for (let r = 0; r < cfg.repeats; r++) redisRuns.push(await redisBenchmark(server.port, cfg.redisBenchRequests));
    const redisDetail = summarizeKeys(redisRuns, Object.keys(redisRuns[0]), 0);

    // 2. Throughput: one Toolplane worker process and one raw BullMQ worker process on the same Redis.
    log('\n[2/5] throughput');
    const keys = createKeys(`bench${randomBytes(3).toString('hex')}`);
    const { tool } = await new ToolRegistry(redis, keys).put(BENCH_TOOL, BENCH_TOOL_SPEC);
    // The whole batch is enqueued ahead of the workers: no cap on calls in flight (the admission still runs).
    const calls = createCalls(redis, keys, { maxCallsInFlight: 0 });
    await calls.lifecycle.applyToolSettings(tool);
    const tpQueue = calls.queues.queue(BENCH_TOOL);
    const bullQueue = new Queue('bullmq-noop', { connection: redis, prefix: keys.bullPrefix });
    stops.push(() => bullQueue.close(), () => tpQueue.close());
    const profileFile = cfg.profile ? join(ROOT, 'bench', 'results', 'profiles', `worker-throughput-${Date.now()}.cpuprofile`) : undefined;
    let tpWorker = startToolplaneWorker({ redisUrl: server.url, prefix: keys.bullPrefix, concurrency: cfg.concurrency, profileFile });
    const bullWorker = startBullmqWorker({ redisUrl: server.url, prefix: keys.bullPrefix, queueName: bullQueue.name, concurrency: cfg.concurrency });
    stops.push(() => bullWorker.stop(), () => tpWorker.stop());
    await waitForConsumers(tpQueue, 1, [tpWorker]);
    await waitForConsumers(bullQueue, 1, [bullWorker]);

    const sides = {
      toolplane: { queue: tpQueue, enqueueChunk: toolplaneEnqueuer(calls.producer, tool), worker: () => tpWorker, runs: [] },
      bullmq: { queue: bullQueue, enqueueChunk: bullmqEnqueuer(bullQueue), worker: () => bullWorker, runs: [] },
    };
    for (const side of Object.values(sides)) await measureThroughput({ queue: side.queue, enqueueChunk: side.enqueueChunk, n: cfg.warmup });
    for (let r = 0; r < cfg.repeats; r++) {
      // Alternate who goes first, so a slow spell of the machine does not always hit the same side.
      const order = r % 2 === 0 ? ['toolplane', 'bullmq'] : ['bullmq', 'toolplane'];
      for (const name of order) {
        const side = sides[name];
        await sleep(300);
        const m = await measureThroughput({ queue: side.queue, enqueueChunk: side.enqueueChunk, n: cfg.calls, pids: [side.worker().pid], redis });
        side.runs.push(m);
        log(`  ${name.padEnd(9)} repeat ${r + 1}/${cfg.repeats}: ${Math.round(m.perS)} calls/s, worker ${Math.round(m.workerCpuUsPerCall)} µs CPU/call, redis ${Math.round(m.redisCpuUsPerCall)} µs CPU/call (busy ${Math.round(m.redisBusy * 100)}%)`);
      }
    }
    const ratios = sides.toolplane.runs.map((m, i) => m.perS / sides.bullmq.runs[i].perS);
    const throughputDetail = Object.fromEntries(
      Object.entries(sides).map(([name, side]) => [
        name,
        {
          calls_per_s: summarize(side.runs.map((m) => m.perS), 0),
          worker_cpu_us_per_call: summarize(side.runs.map((m) => m.workerCpuUsPerCall), 0),
          redis_cpu_us_per_call: summarize(side.runs.map((m) => m.redisCpuUsPerCall), 1),
          redis_commands_per_call: summarize(side.runs.map((m) => m.redisCommandsPerCall), 1),
          redis_busy_share: summarize(side.runs.map((m) => m.redisBusy)),
        },
      ]),
    );
    throughputDetail.ratio = summarize(ratios, 3);

    let profile;
    if (profileFile) {
      const processed = await tpQueue.getCompletedCount();
      await tpWorker.stop();
      if (existsSync(profileFile)) {
        profile = { file: profileFile.slice(ROOT.length + 1), calls: processed, ...summarizeProfile(profileFile, processed) };
      } else log(`  no profile written at ${profileFile}`);
      tpWorker = startToolplaneWorker({ redisUrl: server.url, prefix: keys.bullPrefix, concurrency: cfg.concurrency });
      await waitForConsumers(tpQueue, 1, [tpWorker]);
    }

    // 3. Latency: sequential single calls, each side warmed first, interleaved per repeat.
    log('\n[3/5] latency');
    const planner = await startPlanner({ redisUrl: server.url, prefix: keys.bullPrefix });
    stops.push(() => planner.stop());
    // QueueEvents duplicates the connection it is given (it blocks on XREAD): close both.
    const eventsConn = createRedisConnection(server.url, 'worker');
    const events = new QueueEvents(bullQueue.name, { connection: eventsConn, prefix: keys.bullPrefix });
    stops.push(() => closeRedis(eventsConn), () => events.close());
    await events.waitUntilReady();
    const httpCall = (i) => timedHttpCall(planner.url, i);
    const bullCall = (i) => timedBullmqCall(bullQueue, events, i);
    const latency = { toolplane_http: [], bullmq: [] };
    // Warmed with as many calls as a repeat measures, so each repeat is of a warm stack.
    await sequential(httpCall, cfg.latencyCalls);
    await sequential(bullCall, cfg.latencyCalls);
    for (let r = 0; r < cfg.repeats; r++) {
      for (const [name, call] of r % 2 === 0 ? [['toolplane_http', httpCall], ['bullmq', bullCall]] : [['bullmq', bullCall], ['toolplane_http', httpCall]]) {
        const ms = await sequential(call, cfg.latencyCalls);
        const p = { p50: percentile(ms, 50), p95: percentile(ms, 95), p99: percentile(ms, 99) };
        latency[name].push(p);
        log(`  ${name.padEnd(14)} repeat ${r + 1}/${cfg.repeats}: p50 ${p.p50.toFixed(2)} ms, p95 ${p.p95.toFixed(2)} ms, p99 ${p.p99.toFixed(2)} ms`);
      }
    }
    const latencyDetail = Object.fromEntries(Object.entries(latency).map(([k, v]) => [k, summarizeKeys(v, ['p50', 'p95', 'p99'])]));

    // 3a. Sync calls over HTTP, 64 connections: Toolplane against the hand-built stack (bench/handbuilt/).
    log('\n[sync http] 64 connections, Toolplane vs hand-built express + BullMQ + isolated-vm');
    const handBuilt = await startHandBuilt({ redisUrl: server.url, prefix: keys.bullPrefix, concurrency: cfg.concurrency });
    stops.push(() => handBuilt.stop());
    const syncCalls = SMOKE ? 100 : 3_000;
    await measureSyncHttp(planner.url, { calls: Math.min(500, syncCalls) });
    await measureSyncHttp(handBuilt.url, { calls: Math.min(500, syncCalls) });
    const sync = { toolplane: [], hand_built: [] };
    for (let r = 0; r < cfg.repeats; r++) {
      for (const [name, url] of r % 2 === 0 ? [['toolplane', planner.url], ['hand_built', handBuilt.url]] : [['hand_built', handBuilt.url], ['toolplane', planner.url]]) {
        const perS = await measureSyncHttp(url, { calls: syncCalls });
        sync[name].push(perS);
        log(`  ${name.padEnd(10)} repeat ${r + 1}/${cfg.repeats}: ${Math.round(perS)} calls/s`);
      }
    }
    const syncDetail = { toolplane: summarize(sync.toolplane, 0), hand_built: summarize(sync.hand_built, 0), ratio: summarize(sync.toolplane.map((v, i) => v / sync.hand_built[i]), 2) };
    for (const stop of stops.splice(0).reverse()) await stop();

    // 3b. History: Redis bytes per hot call, archiver throughput.
    log('\n[history] redis bytes per hot call, archiver');
    const history = await historyBench({ redisUrl: server.url, redis, calls: cfg.historyCalls, repeats: cfg.repeats, concurrency: cfg.concurrency, log });

    // 4. Scaling curve on the single Redis (and, on request, on a cluster: issue 8's hook).
    log('\n[4/5] scaling');
    const scalingOpts = { points: cfg.scalingPoints, calls: cfg.scalingCalls, repeats: cfg.repeats, concurrency: cfg.concurrency, warmup: SMOKE ? 50 : 1_000, log };
    const scaling = { single_redis: await scalingCurve(server.url, { ...scalingOpts, redisForCounters: redis }) };
    if (process.env.BENCH_CLUSTER !== '0' && !SMOKE) {
      // The second curve: a 3-master cluster started here, or one given by URL.
      try {
        const cluster = process.env.BENCH_CLUSTER_URL ? { url: process.env.BENCH_CLUSTER_URL, stop: async () => {} } : await startLocalCluster();
        try {
          log(`  on cluster ${cluster.url}`);
          scaling.cluster = await scalingCurve(cluster.url, scalingOpts);
        } finally {
          await cluster.stop();
        }
      } catch (err) {
        log(`  cluster curve skipped: ${err.message}`);
      }
    }
    await closeRedis(redis);
    await server.stop();

    // 5. Sandbox micro-benchmarks, with nothing else running.
    log('\n[5/5] sandbox');
    const sandbox = await sandboxBench();

    // 6. Planning: plan mode vs ReAct on a fan-out task, on its own Redis, planner and workers (bench/planning.mjs).
    log('\n[planning] plan vs react');
    const planning = await planningBench({ smoke: SMOKE, repeats: cfg.repeats, modelLatencyMs: num('BENCH_MODEL_LATENCY_MS', 500), log });

    // 7. Console: first paint and data of its pages with 10,000 calls in the trail (bench/console-paint.mjs).
    log('\n[console] first paint with 10,000 calls');
    const consolePaint = await consolePaintBench({ calls: SMOKE ? 200 : 10_000, repeats: SMOKE ? 1 : cfg.repeats, log });

    machine.loadavg_1m_at_end = round(loadavg()[0]);
    const tpMedian = throughputDetail.toolplane.calls_per_s.median;
    const bullMedian = throughputDetail.bullmq.calls_per_s.median;
    const ratio = throughputDetail.ratio.median;
    const result = {
      date: new Date().toISOString(),
      machine,
      config: { ...cfg, out: undefined, redis_aof: cfg.aof, duration_s: Math.round((Date.now() - started) / 1000) },
      throughput: { toolplane_calls_per_s: tpMedian, bullmq_jobs_per_s: bullMedian, ratio },
      latency_ms: Object.fromEntries(Object.entries(latencyDetail).map(([k, v]) => [k, { p50: v.p50.median, p95: v.p95.median, p99: v.p99.median }])),
      sandbox: { warm_call_us: sandbox.warm_call_us, cold_start_ms: sandbox.cold_start_ms, node_vm_call_us: sandbox.node_vm_call_us, direct_call_us: sandbox.direct_call_us },
      redis_ops_per_s: redisDetail.mean.median,
      history: {
        redis_bytes_per_hot_call: history.redis_bytes_per_hot_call.median,
        redis_bytes_per_call_after_archive: history.redis_bytes_per_call_after_archive.median,
        archiver_records_per_s: history.archiver_records_per_s.median,
        calls_per_s: history.calls_per_s.median,
      },
      scaling: Object.fromEntries(Object.entries(scaling).map(([k, v]) => [k, Object.fromEntries(Object.entries(v.points).map(([w, s]) => [w, s.median]))])),
      planning,
      console: consolePaint,
      sync_http_64: { toolplane_calls_per_s: syncDetail.toolplane.median, hand_built_calls_per_s: syncDetail.hand_built.median, ratio: syncDetail.ratio.median },
      goals: issue14Goals({ ratio, throughputDetail, latencyDetail, syncDetail }),
      detail: { sync_http_64: syncDetail, throughput: throughputDetail, history, latency_ms: latencyDetail, redis_benchmark_ops_per_s: redisDetail, scaling, sandbox, ...(profile ? { profile } : {}) },
    };
    mkdirSync(dirname(cfg.out), { recursive: true });
    writeFileSync(cfg.out, `${JSON.stringify(result, null, 2)}\n`);
    printTable(result);
    log(`\nwrote ${cfg.out} (${result.config.duration_s} s)`);
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    if (redis.status !== 'end') await closeRedis(redis);
    await server.stop().catch(() => {});
  }
}

/** Runs `call(i)` n times one after another; returns each call's ms. */
async function sequential(call, n) {
  const ms = [];
  for (let i = 0; i < n; i++) ms.push(await call(i));
  return ms;
}

async function timedHttpCall(base, i) {
  const t0 = performance.now();
  const res = await fetch(`${base}/v1/calls`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ tool: BENCH_TOOL, arguments: { a: 1, b: i }, wait: true }),
  });
  const body = await res.json();
  const ms = performance.now() - t0;
  if (res.status !== 200 || body.status !== 'succeeded' || body.result !== 1 + i) {
    throw new Error(`call ${i} did not succeed: ${res.status} ${JSON.stringify(body)}`);
  }
  return ms;
}

async function timedBullmqCall(queue, events, i) {
  const t0 = performance.now();
  const job = await queue.add('job', { a: 1, b: i }, BULLMQ_JOB_OPTS);
  await job.waitUntilFinished(events, 10_000);
  return performance.now() - t0;
}

/** One redis-benchmark run (50 clients, no pipelining): ops/s per command and their mean. */
function redisBenchmark(port, requests) {
  return new Promise((resolve, reject) => {
    const proc = spawn('redis-benchmark', ['-h', '127.0.0.1', '-p', String(port), '-t', 'set,get,lpush,zadd', '-n', String(requests), '--csv'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout.on('data', (d) => (out += d));
    proc.stderr.on('data', (d) => (out += d));
    proc.on('error', reject);
    proc.on('exit', (code) => {
      // CSV rows: "TEST","rps",…; the first row is the header.
      const rows = out
        .split('\n')
        .map((l) => l.split(',').map((f) => f.replace(/"/g, '')))
        .filter((f) => f.length > 1 && Number.isFinite(Number(f[1])) && f[1] !== '');
      if (code !== 0 || rows.length === 0) return reject(new Error(`redis-benchmark failed (${code}): ${out.slice(-500)}`));
      const ops = Object.fromEntries(rows.map((f) => [f[0].split(' ')[0].toLowerCase(), Number(f[1])]));
      ops.mean = Object.values(ops).reduce((a, b) => a + b, 0) / rows.length;
      log(`  ${Object.entries(ops).map(([k, v]) => `${k} ${Math.round(v)}`).join(', ')} ops/s`);
      resolve(ops);
    });
  });
}

/** packages/sandbox/bench/sandbox-bench.mjs in its own process; its last stdout line is its JSON. */
async function sandboxBench() {
  const p = spawnNode(join(ROOT, 'packages', 'sandbox', 'bench', 'sandbox-bench.mjs'), {
    BENCH_REPEATS: String(Math.max(cfg.repeats, SMOKE ? 1 : 5)),
    ...(SMOKE ? { BENCH_WARM_CALLS: '200' } : {}),
  });
  await new Promise((resolve) => p.proc.once('exit', resolve));
  const last = p.output().trim().split('\n').at(-1);
  if (p.proc.exitCode !== 0 || !last?.startsWith('{')) throw new Error(`sandbox bench failed:\n${p.output()}`);
  const out = JSON.parse(last);
  for (const line of p.output().split('\n').filter((l) => /^\w+: /.test(l))) log(`  ${line}`);
  return out;
}

function printTable(r) {
  const d = r.detail;
  const rng = (s, unit = '') => `${s.median}${unit}  (${s.min}–${s.max})`;
  const rows = [
    ['Throughput, 1 worker process × concurrency ' + cfg.concurrency, '', ''],
    ['  Toolplane (sandbox, gate, breaker, metrics, audit)', rng(d.throughput.toolplane.calls_per_s, ' calls/s'), `worker ${d.throughput.toolplane.worker_cpu_us_per_call.median} µs CPU/call`],
    ['  raw BullMQ, no-op', rng(d.throughput.bullmq.calls_per_s, ' jobs/s'), `worker ${d.throughput.bullmq.worker_cpu_us_per_call.median} µs CPU/job`],
    ['  ratio Toolplane / BullMQ', rng(d.throughput.ratio), `goal ≥ ${THROUGHPUT_GOAL}: ${r.goals.throughput_ratio.met ? 'MET' : 'MISSED'}`],
    ['  Redis CPU per call (Toolplane / BullMQ)', `${d.throughput.toolplane.redis_cpu_us_per_call.median} / ${d.throughput.bullmq.redis_cpu_us_per_call.median} µs`, `commands ${d.throughput.toolplane.redis_commands_per_call.median} / ${d.throughput.bullmq.redis_commands_per_call.median}`],
    ['  Redis per hot call (history store configured)', rng(d.history.redis_bytes_per_hot_call, ' B'), `${d.history.redis_bytes_per_call_after_archive.median} B left per call once archived`],
    [`  archiver → SQLite, batch ${d.history.batch_size}`, rng(d.history.archiver_records_per_s, ' records/s'), `calls meanwhile ${d.history.calls_per_s.median}/s`],
    ['Sync calls over HTTP (wait), 64 connections', '', ''],
    ['  Toolplane POST /v1/calls wait:true', rng(d.sync_http_64.toolplane, ' calls/s'), ''],
    ['  hand-built express + BullMQ + isolated-vm', rng(d.sync_http_64.hand_built, ' calls/s'), `ratio ${rng(d.sync_http_64.ratio)}`],
    ['Latency, sequential, enqueue → result', '', ''],
    ...['toolplane_http', 'bullmq'].map((k) => [
      `  ${k === 'bullmq' ? 'raw BullMQ add + waitUntilFinished' : 'Toolplane HTTP POST wait:true'}`,
      `p50 ${rng(d.latency_ms[k].p50, ' ms')}`,
      `p95 ${d.latency_ms[k].p95.median} ms, p99 ${d.latency_ms[k].p99.median} ms`,
    ]),
    ['Sandbox', '', ''],
    ['  warm call / cold start', `${r.sandbox.warm_call_us} µs / ${r.sandbox.cold_start_ms} ms`, `node:vm ${r.sandbox.node_vm_call_us} µs, direct ${r.sandbox.direct_call_us} µs`],
    ...planningRows(r.planning),
    [`Console, ${r.console.calls} calls in the trail (goal < ${r.console.goal_ms} ms)`, '', r.console.met ? 'MET' : 'MISSED'],
    ...Object.entries(r.console.pages).map(([page, p]) => [`  ${page} page`, `first paint ${p.first_contentful_paint_ms} ms`, `data shown ${p.data_shown_ms} ms`]),
    ['Redis ceiling (redis-benchmark, 50 clients)', rng(d.redis_benchmark_ops_per_s.mean, ' ops/s'), Object.entries(d.redis_benchmark_ops_per_s).filter(([k]) => k !== 'mean').map(([k, v]) => `${k} ${v.median}`).join(', ')],
  ];
  for (const [name, curve] of Object.entries(d.scaling)) {
    rows.push([`Scaling (${name}), ${curve.calls_per_point} calls per point`, '', '']);
    const base = curve.points[Object.keys(curve.points)[0]].median;
    for (const [w, s] of Object.entries(curve.points)) {
      rows.push([`  ${w} worker process${w === '1' ? '' : 'es'}`, rng(s, ' calls/s'), `×${round(s.median / base)}  ${'█'.repeat(Math.max(1, Math.round((s.median / base) * 10)))}`]);
    }
  }
  const w0 = Math.max(...rows.map((x) => x[0].length));
  const w1 = Math.max(...rows.map((x) => x[1].length));
  const lines = rows.map(([a, b, c]) => `${a.padEnd(w0)}  ${b.padEnd(w1)}  ${c}`.trimEnd());
  console.log(`\nToolplane bench, ${r.date}, ${r.machine.cores} cores ${r.machine.cpu_model}, Node ${r.machine.node}, Redis ${r.machine.redis}`);
  console.log(`load average ${r.machine.loadavg_1m_at_start} at start, ${r.machine.loadavg_1m_at_end} at end; medians of ${cfg.repeats} repeats (min–max)\n`);
  console.log(lines.join('\n'));
  console.log('\nGoals of issue 14:');
  for (const [name, g] of Object.entries(r.goals)) console.log(`  ${g.met ? 'MET   ' : 'MISSED'}  ${name.padEnd(24)} ${String(g.value).padStart(8)}  goal ${g.goal}`);
  if (!r.goals.throughput_ratio.met || !r.goals.worker_cpu_us_per_call.met) {
    console.log(d.profile ? 'Where the worker spends its time is below.' : 'Run with BENCH_PROFILE=1 to see where the worker spends its time (README "Benchmarks").');
  }
  if (d.profile) {
    console.log(`\nWorker CPU profile (${d.profile.file}): ${d.profile.busy_us_per_call} µs busy per call`);
    console.log('  by package:  ' + d.profile.by_package.map((p) => `${p.name} ${p.share}%`).join(', '));
    for (const f of d.profile.by_function) console.log(`  ${String(f.share).padStart(5)}%  ${String(f.us_per_call).padStart(6)} µs/call  ${f.name}`);
  }
}

// Exit explicitly: a stray reconnecting client must not keep `make bench` alive after the table.
main().then(() => process.exit(0), (err) => {
  process.stderr.write(`bench failed: ${err?.stack ?? err}\n`);
  process.exit(1);
});
