import { Cluster } from 'ioredis';
import type { RedisConnection } from './connection.js';
import type { Keys } from './keys.js';
import { LuaScript } from './lua-script.js';

const WAKE_QUEUED = LuaScript.fromFile('wake-queued-2');

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

  /**
   * Wakes `tool` for a call that `add` is putting on its queue as job `jobKey`, once the job exists.
   * On a single Redis node the wake is sent right behind the add, on the same connection, without
   * waiting for the add's reply (one round trip less before a worker hears of the call): Redis runs
   * a connection's commands in order, and the wake goes only if it finds the job
   * (`lua/wake-queued-2.lua`); when it does not (the add had not left yet, or went again after
   * NOSCRIPT), the tool is woken once the add is done. On a cluster the two go to different nodes,
   * and a call due later goes to the timers: both wait for the add.
   */
  async wakeBehind(add: Promise<unknown>, tool: string, jobKey: string, atMs = 0): Promise<void> {
    if (atMs <= Date.now() && !(this.redis instanceof Cluster)) {
      // BullMQ sends its script after a few promise hops, all of which have run by the next turn.
      await new Promise((resolve) => setImmediate(resolve));
      const woken = await WAKE_QUEUED.run(this.redis, [jobKey, this.keys.readyTools], [Date.now(), tool]);
      if (woken === 1) return;
    }
    await add;
    await this.wake(tool, atMs);
  }
}
