import { randomUUID } from 'node:crypto';
import { Worker } from 'bullmq';
import { ToolSpec, type CallJobData, type CallOutput, type Tool } from '@toolplane/core';
import { createCalls, ToolRegistry, createKeys, createRedisConnection, closeRedis, waitForRedis, type Calls, type Keys, type RedisConnection } from '@toolplane/queue';
import { Archiver, type ArchiverOptions } from '../archiver.js';
import type { HistoryStore } from '../types.js';

/**
 * Calls through real Redis and BullMQ for history tests: a registry, the producer with the history
 * store, and a plain BullMQ worker that finishes each call as the tool worker does (the result
 * charged to the tenant's quota, or a failure), without a sandbox.
 */
export type CallRig = {
  redis: RedisConnection;
  keys: Keys;
  registry: ToolRegistry;
  calls: Calls;
  tool: Tool;
  /** Starts a worker for the tool; arguments `{ fail: true }` fail the call with `TOOL_ERROR`. */
  work(concurrency?: number): Worker;
  archiver(opts?: Partial<ArchiverOptions> & { store?: HistoryStore }): Archiver;
  close(): Promise<void>;
};

const SPEC = ToolSpec.parse({ description: 'echoes', parameters: { type: 'object' }, code: 'export default (a) => a', retries: { attempts: 1, backoffMs: 10 } });

export async function startCallRig(redisUrl: string, store: HistoryStore, opts: { tenant?: string } = {}): Promise<CallRig> {
  const redis = createRedisConnection(redisUrl, 'worker');
  await waitForRedis(redis);
  const keys = createKeys(`h${randomUUID().slice(0, 8)}`);
  const registry = new ToolRegistry(redis, keys);
  const calls = createCalls(redis, keys, { history: store, maxCallsInFlight: 0 });
  const { tool } = await registry.put('echo', SPEC, opts.tenant ?? 'acme');
  const workers: Worker[] = [];
  const archivers: Archiver[] = [];
  return {
    redis,
    keys,
    registry,
    calls,
    tool,
    work(concurrency = 50) {
      const w = new Worker<CallJobData, CallOutput>(
        keys.queueName(tool.name),
        async (job) => {
          const args = job.data.arguments as { fail?: boolean };
          if (args.fail) {
            await calls.quotas.release(job.data.tenant, [job.id!]);
            throw new Error('TOOL_ERROR: asked to fail');
          }
          const out: CallOutput = { result: args, logs: [] };
          await calls.quotas.storeResult(job.data.tenant, job.id!, out, 86_400_000);
          return out;
        },
        { connection: redis, prefix: keys.bullPrefix, concurrency },
      );
      w.on('error', () => {});
      workers.push(w);
      return w;
    },
    archiver(o = {}) {
      const a = new Archiver({
        calls: calls.archive,
        store,
        redis,
        keys,
        tools: () => registry.names(),
        hotRetentionMs: 0,
        intervalMs: 50,
        leaseMs: 1_000,
        ...o,
      });
      archivers.push(a);
      return a;
    },
    async close() {
      await Promise.all(archivers.map((a) => a.stop()));
      await Promise.all(workers.map((w) => w.close()));
      await calls.queues.queue(tool.name).obliterate({ force: true }).catch(() => {});
      await calls.queues.queue(tool.name).close();
      await closeRedis(redis);
    },
  };
}
