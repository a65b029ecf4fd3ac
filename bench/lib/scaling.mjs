// The scaling curve: Toolplane throughput with 1, 2, 4… worker processes on one Redis deployment.
import { randomBytes } from 'node:crypto';
import { startRedisCluster } from '@toolplane/queue/testing';
import { createCalls, ToolRegistry, closeRedis, createKeys, createRedisConnection, waitForRedis } from '@toolplane/queue';
import { startToolplaneWorker, waitForConsumers } from './processes.mjs';
import { summarize } from './stats.mjs';
import { BENCH_TOOL, BENCH_TOOL_SPEC, measureThroughput, toolplaneEnqueuer } from './throughput.mjs';

/**
 * Calls/s of Toolplane with each number of worker processes in `points`, against the Redis at
 * `redisUrl`: `redis://host:port` or a cluster as `redis-cluster://h1:p1,h2:p2,h3:p3`.
 *
 * HOOK for issue 8 (Redis Cluster): this is the function to call with the cluster's URL; it
 * uses nothing that a cluster lacks (all keys of one tool share its hash tag, Redis CPU counters
 * are read only when `redisForCounters` is given, which a cluster run leaves out). `run.mjs`
 * calls it that way when `BENCH_CLUSTER=1`.
 *
 * Every point gets its own key prefix and its own worker processes, all started up front and
 * warmed, so the repeats can be interleaved (1, 2, 4, 1, 2, 4, …) and share the machine's noise.
 * Idle worker sets only hold a blocking read each.
 *
 * @returns `{ calls_per_point, points: { [workers]: {median, min, max, samples} } }` in calls/s.
 */
export async function scalingCurve(redisUrl, { points = [1, 2, 4], calls = 5_000, repeats = 3, concurrency = 100, warmup = 1_000, redisForCounters, log = () => {} } = {}) {
  const conn = createRedisConnection(redisUrl, 'worker');
  await waitForRedis(conn, 30_000);
  const sets = [];
  try {
    for (const k of points) {
      const keys = createKeys(`bs${k}${randomBytes(3).toString('hex')}`);
      const { tool } = await new ToolRegistry(conn, keys).put(BENCH_TOOL, BENCH_TOOL_SPEC);
      // The whole batch is enqueued ahead of the workers: no cap on calls in flight (the admission still runs).
      const calls = createCalls(conn, keys, { maxCallsInFlight: 0 });
      await calls.lifecycle.applyToolSettings(tool);
      const procs = Array.from({ length: k }, () => startToolplaneWorker({ redisUrl, prefix: keys.bullPrefix, concurrency }));
      sets.push({ k, calls, tool, procs, samples: [], detail: [] });
      await waitForConsumers(calls.queues.queue(BENCH_TOOL), k, procs);
    }
    // Warm-up: isolates, code caches and JIT of every process, outside the figures.
    for (const s of sets) {
      await measureThroughput({ queue: s.calls.queues.queue(BENCH_TOOL), enqueueChunk: toolplaneEnqueuer(s.calls.producer, s.tool), n: warmup * s.k });
    }
    for (let r = 0; r < repeats; r++) {
      for (const s of sets) {
        const m = await measureThroughput({
          queue: s.calls.queues.queue(BENCH_TOOL),
          enqueueChunk: toolplaneEnqueuer(s.calls.producer, s.tool),
          n: calls,
          pids: s.procs.map((p) => p.pid),
          redis: redisForCounters,
        });
        s.samples.push(m.perS);
        s.detail.push(m);
        log(`  scaling ${s.k} worker${s.k > 1 ? 's' : ''}, repeat ${r + 1}/${repeats}: ${Math.round(m.perS)} calls/s`);
      }
    }
    return {
      calls_per_point: calls,
      points: Object.fromEntries(sets.map((s) => [s.k, summarize(s.samples, 0)])),
      worker_cpu_us_per_call: Object.fromEntries(sets.map((s) => [s.k, summarize(s.detail.map((d) => d.workerCpuUsPerCall), 0)])),
      ...(redisForCounters
        ? { redis_busy_share: Object.fromEntries(sets.map((s) => [s.k, summarize(s.detail.map((d) => d.redisBusy))])) }
        : {}),
    };
  } finally {
    await Promise.all(sets.flatMap((s) => s.procs.map((p) => p.stop())));
    for (const s of sets) {
      await s.calls.queues.queue(BENCH_TOOL).obliterate({ force: true }).catch(() => {});
      await s.calls.queues.queue(BENCH_TOOL).close();
    }
    await closeRedis(conn);
  }
}

/** Starts a local 3-master Redis Cluster (real redis-server processes) for the second curve. */
export async function startLocalCluster() {
  const cluster = await startRedisCluster({ masters: 3 });
  return { url: cluster.url, stop: () => cluster.stop() };
}
