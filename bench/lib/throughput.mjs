// One throughput measurement: enqueue `n` jobs in bulk chunks while the workers run, and time
// from the first enqueue to the last completion. Completions are counted with BullMQ's own
// counter of the completed set (one cheap script call every few ms), not with events.
import { ToolSpec } from '@toolplane/core';
import { cpuTimeUs, sleep } from './processes.mjs';

/** Jobs per `addBulk`: big enough to amortize round trips, small enough not to stall Redis for long. */
export const CHUNK = 500;

/** The trivial tool of every Toolplane figure, with a rate limit too high to bite (its bookkeeping still runs). */
export const BENCH_TOOL = 'bench-add';
export const BENCH_TOOL_SPEC = ToolSpec.parse({
  description: 'Adds two numbers (benchmark)',
  parameters: { type: 'object', properties: { a: { type: 'number' }, b: { type: 'number' } }, required: ['a', 'b'] },
  code: 'export default async function (args) { return args.a + args.b }',
  limits: { timeoutMs: 1000, memoryMb: 32 },
  rateLimit: { max: 1_000_000, perMs: 1000 },
  // The default (50) caps running calls fleet-wide and would hide the workers' own concurrency:
  // no cap, as the raw BullMQ queue has none (a cap of 10,000 cost ~2 Redis commands per call for a
  // count BullMQ keeps but nothing here needs).
  concurrency: null,
});

/** Options the raw BullMQ jobs get: those `CallProducer.enqueue` gives a call of BENCH_TOOL_SPEC, so Redis keeps the same records. */
export const BULLMQ_JOB_OPTS = {
  attempts: BENCH_TOOL_SPEC.retries.attempts,
  backoff: { type: 'exponential', delay: BENCH_TOOL_SPEC.retries.backoffMs, jitter: 0.5 },
  removeOnComplete: { age: 7 * 86_400 },
  removeOnFail: { age: 7 * 86_400 },
};

/** Redis's own counters: commands processed and CPU seconds (single node only). */
export async function redisCounters(conn) {
  const info = await conn.info();
  const num = (name) => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info)?.[1] ?? NaN);
  return { commands: num('total_commands_processed'), cpuUs: (num('used_cpu_user') + num('used_cpu_sys')) * 1e6 };
}

/**
 * Runs `n` jobs through `queue` and returns calls/s plus CPU cost per call of the worker
 * processes (`pids`) and, with `redis`, of the Redis server.
 */
export async function measureThroughput({ queue, enqueueChunk, n, pids = [], redis, timeoutMs = 300_000 }) {
  const completed0 = await queue.getCompletedCount();
  const failed0 = await queue.getFailedCount();
  const cpu0 = pids.map(cpuTimeUs);
  const r0 = redis ? await redisCounters(redis) : undefined;
  const t0 = performance.now();
  let enqueueError;
  const enqueueing = (async () => {
    for (let i = 0; i < n; i += CHUNK) await enqueueChunk(i, Math.min(CHUNK, n - i));
  })().catch((err) => (enqueueError = err));
  let polls = 0;
  for (;;) {
    if ((await queue.getCompletedCount()) - completed0 >= n) break;
    if (enqueueError) throw enqueueError;
    if (++polls % 100 === 0) {
      const failed = (await queue.getFailedCount()) - failed0;
      if (failed > 0) throw new Error(`${failed} jobs failed on ${queue.name}: the bench counts completions only`);
    }
    if (performance.now() - t0 > timeoutMs) throw new Error(`${queue.name}: ${n} jobs not done after ${timeoutMs} ms`);
    await sleep(5);
  }
  const elapsedMs = performance.now() - t0;
  await enqueueing;
  const cpu1 = pids.map(cpuTimeUs);
  const r1 = redis ? await redisCounters(redis) : undefined;
  const workerCpuUs = cpu0.every((c) => c !== null) ? cpu1.reduce((s, c, i) => s + c - cpu0[i], 0) : NaN;
  return {
    perS: n / (elapsedMs / 1000),
    elapsedMs,
    workerCpuUsPerCall: workerCpuUs / n,
    redisCpuUsPerCall: r0 ? (r1.cpuUs - r0.cpuUs) / n : NaN,
    redisCommandsPerCall: r0 ? (r1.commands - r0.commands) / n : NaN,
    // Share of one core Redis used while the run lasted: near 1 means Redis was the limit.
    redisBusy: r0 ? (r1.cpuUs - r0.cpuUs) / (elapsedMs * 1000) : NaN,
  };
}

/** Enqueues chunk `[start, start + count)` of trivial calls through the client library. */
export function toolplaneEnqueuer(producer, tool) {
  return (start, count) =>
    producer.enqueueBulk(
      tool,
      Array.from({ length: count }, (_, j) => ({ a: 1, b: start + j })),
      { tenant: 'default' },
    );
}

/** Enqueues chunk `[start, start + count)` of no-op jobs with plain BullMQ. */
export function bullmqEnqueuer(queue) {
  return (start, count) =>
    queue.addBulk(Array.from({ length: count }, (_, j) => ({ name: 'job', data: { a: 1, b: start + j }, opts: BULLMQ_JOB_OPTS })));
}
