import { Queue } from 'bullmq';
import type { RedisConnection } from './connection.js';
import type { Keys } from './keys.js';

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
      q = new Queue(this.keys.queueName(tool), { connection: this.redis, prefix: this.keys.bullPrefix });
      // Errors surface on the calls that hit them; an unhandled 'error' event would crash the process.
      q.on('error', () => {});
      this.queues.set(tool, q);
    }
    return q;
  }
}
