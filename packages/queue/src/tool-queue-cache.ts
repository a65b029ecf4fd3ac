import { Queue } from 'bullmq';
import type { RedisConnection } from './connection.js';
import type { Keys } from './keys.js';

/**
 * Entries BullMQ keeps in a tool's events stream (its default: 10,000, ~1 MB per tool that ever ran
 * calls: 100 GB of Redis at 100,000 tools). Nothing depends on the stream's history: a call's event
 * follower reads it for prompt status changes and reads the call's record now and then regardless.
 */
export const TOOL_EVENTS_KEPT = 1_000;

/**
 * One BullMQ `Queue` object per tool, made on first use and kept: the producer, the read model, the
 * call actions, the archive pages and the tool lifecycle of one process share it, so a tool's queue
 * is opened once however many of them touch it. The objects use the given connection (no Redis
 * connection of their own).
 */
export class ToolQueueCache {
  private readonly queues = new Map<string, Queue>();

  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: Keys,
  ) {}

  /** The BullMQ queue of `tool`'s calls. */
  queue(tool: string): Queue {
    let q = this.queues.get(tool);
    if (!q) {
      q = new Queue(this.keys.queueName(tool), { connection: this.redis, prefix: this.keys.bullPrefix, streams: { events: { maxLen: TOOL_EVENTS_KEPT } } });
      // Errors surface on the calls that hit them; an unhandled 'error' event would crash the process.
      q.on('error', () => {});
      this.queues.set(tool, q);
    }
    return q;
  }
}
