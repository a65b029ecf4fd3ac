import type { RedisConnection } from './connection.js';
import type { Keys } from './keys.js';

/**
 * The fleet's index of tools that have (or will have) runnable calls: the workers' scheduler takes
 * tools from it instead of polling every tool's queue, so idle tools cost nothing. Producers wake
 * a tool when they add or release a call; workers put a tool back when it may have more, or on a
 * timer when its next call is delayed or rate limited.
 *
 * Keys live under the registry's `{prefix}` tag: one slot for the whole fleet (see the capacity
 * model in services/worker/ARCHITECTURE.md).
 */
export class ToolWakeups {
  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: Keys,
  ) {}

  /** `tool` has a call runnable now, or at `atMs` (epoch ms) when later. */
  async wake(tool: string, atMs = 0): Promise<void> {
    const now = Date.now();
    if (atMs > now) await this.redis.zadd(this.keys.toolTimers, 'LT', atMs, tool);
    else await this.redis.zadd(this.keys.readyTools, 'LT', now, tool);
  }
}
