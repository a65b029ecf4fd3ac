// The history figures (issue 20): what a hot call costs Redis, and how fast the archiver moves
// finished calls to the history store. Calls run as in the throughput phase, on a queue configured
// with a history store (so only the archiver removes finished jobs), one Toolplane worker process.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Archiver, SqliteHistory } from '@toolplane/history';
import { createCalls, ToolRegistry, createKeys } from '@toolplane/queue';
import { sleep, startToolplaneWorker, waitForConsumers } from './processes.mjs';
import { summarize } from './stats.mjs';
import { BENCH_TOOL, BENCH_TOOL_SPEC, measureThroughput, toolplaneEnqueuer } from './throughput.mjs';

/** Records per store write: the planner's default (`HISTORY_BATCH_SIZE`). */
export const ARCHIVE_BATCH = 500;

async function usedMemory(redis) {
  return Number(/^used_memory:(\d+)/m.exec(await redis.info('memory'))?.[1] ?? NaN);
}

/**
 * Per repeat: `calls` calls through one worker process, Redis `used_memory` before and after (bytes
 * per hot call), then one archiver round into an embedded SQLite store (records/s) and the memory
 * left afterwards.
 */
export async function historyBench({ redisUrl, redis, calls, repeats, concurrency, log }) {
  const keys = createKeys(`benchh${randomBytes(3).toString('hex')}`);
  const { tool } = await new ToolRegistry(redis, keys).put(BENCH_TOOL, BENCH_TOOL_SPEC);
  const dir = mkdtempSync(join(tmpdir(), 'toolplane-bench-history-'));
  const store = new SqliteHistory(join(dir, 'history.sqlite'));
  await store.migrate();
  const parts = createCalls(redis, keys, { maxCallsInFlight: 0, history: store });
  await parts.lifecycle.applyToolSettings(tool);
  const queue = parts.queues.queue(BENCH_TOOL);
  const worker = startToolplaneWorker({ redisUrl, prefix: keys.bullPrefix, concurrency });
  const archiver = new Archiver({ calls: parts.archive, store, redis, keys, tools: async () => [BENCH_TOOL], hotRetentionMs: 0, batchSize: ARCHIVE_BATCH });
  const runs = [];
  try {
    await waitForConsumers(queue, 1, [worker]);
    const enqueueChunk = toolplaneEnqueuer(parts.producer, tool);
    // Warm: the queue's own keys exist, the worker has compiled the tool; then archived away.
    await measureThroughput({ queue, enqueueChunk, n: Math.min(100, calls) });
    await archiver.archiveOnce();
    for (let r = 0; r < repeats; r++) {
      await sleep(200);
      const before = await usedMemory(redis);
      const m = await measureThroughput({ queue, enqueueChunk, n: calls, pids: [worker.pid] });
      const hot = await usedMemory(redis);
      const t0 = performance.now();
      const moved = await archiver.archiveOnce();
      const archiveS = (performance.now() - t0) / 1000;
      const after = await usedMemory(redis);
      if (moved !== calls) throw new Error(`archiver moved ${moved} of ${calls} calls`);
      const run = {
        callsPerS: m.perS,
        bytesPerHotCall: (hot - before) / calls,
        bytesLeftPerCall: (after - before) / calls,
        archivedPerS: moved / archiveS,
      };
      runs.push(run);
      log(`  repeat ${r + 1}/${repeats}: ${Math.round(run.bytesPerHotCall)} B of Redis per hot call, archiver ${Math.round(run.archivedPerS)} records/s (SQLite, batch ${ARCHIVE_BATCH}), ${Math.round(run.bytesLeftPerCall)} B per call left after`);
    }
  } finally {
    await worker.stop();
    await queue.obliterate({ force: true }).catch(() => {});
    await queue.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    calls_per_repeat: calls,
    store: 'sqlite',
    batch_size: ARCHIVE_BATCH,
    calls_per_s: summarize(runs.map((r) => r.callsPerS), 0),
    redis_bytes_per_hot_call: summarize(runs.map((r) => r.bytesPerHotCall), 0),
    redis_bytes_per_call_after_archive: summarize(runs.map((r) => r.bytesLeftPerCall), 0),
    archiver_records_per_s: summarize(runs.map((r) => r.archivedPerS), 0),
  };
}
