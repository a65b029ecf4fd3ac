import { QueueKeys } from 'bullmq';
import { Cluster } from 'ioredis';
import type { RedisConnection } from './connection.js';
import type { Keys } from './keys.js';

/** The BullMQ states counted by {@link readQueueDepths}, by API name, with the Redis type of their key. */
const STATES = [
  ['waiting', 'wait', 'list'],
  ['prioritized', 'prioritized', 'zset'],
  ['active', 'active', 'list'],
  ['delayed', 'delayed', 'zset'],
  ['failed', 'failed', 'zset'],
  ['completed', 'completed', 'zset'],
] as const;

/** Names of the states {@link readQueueDepths} reports. */
export type QueueState = (typeof STATES)[number][0];

/** Jobs per state of one tool's queue. */
export type ToolQueueDepth = { tool: string; counts: Record<QueueState, number> };

/**
 * Counts the jobs of every tool queue by state in one pipelined round trip (on a cluster, one per
 * tool, as each tool's keys live in their own slot), instead of one `getJobCounts` script call per
 * tool: a scrape stays one round trip with 100 tools. The counts are what BullMQ's `getJobCounts`
 * reports; `queue-depth.int.test.ts` checks they agree.
 */
export async function readQueueDepths(redis: RedisConnection, keys: Keys, tools: string[]): Promise<ToolQueueDepth[]> {
  if (tools.length === 0) return [];
  const bull = new QueueKeys(keys.bullPrefix);
  const queue = (batch: string[]) => {
    const pipeline = redis.pipeline();
    for (const tool of batch) {
      for (const [, suffix, type] of STATES) {
        const key = bull.toKey(keys.queueName(tool), suffix);
        if (type === 'list') pipeline.llen(key);
        else pipeline.zcard(key);
      }
    }
    return pipeline.exec();
  };
  const batches = redis instanceof Cluster ? tools.map((t) => [t]) : [tools];
  const replies = (await Promise.all(batches.map(queue))).flatMap((r) => r ?? []);
  return tools.map((tool, i) => {
    const counts = {} as Record<QueueState, number>;
    STATES.forEach(([state], j) => {
      const [err, n] = replies[i * STATES.length + j] ?? [new Error('missing reply')];
      if (err) throw err;
      counts[state] = Number(n);
    });
    return { tool, counts };
  });
}
