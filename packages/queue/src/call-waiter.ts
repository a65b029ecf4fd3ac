import type { RedisConnection } from './connection.js';
import type { Keys } from './keys.js';
import { TickBatcher } from './tick-batcher.js';

/**
 * The reply path for `wait`: workers publish a finished call's id on one channel and each planner
 * holds one subscription, instead of a BullMQ QueueEvents stream per tool whose every event each
 * listener would parse.
 */
export class CallWaiter {
  private readonly waiters = new Map<string, Set<() => void>>();
  private subscribed: Promise<unknown> | undefined;

  constructor(
    private readonly subscriber: RedisConnection,
    private readonly keys: Keys,
  ) {
    subscriber.on('message', (channel: string, message: string) => {
      if (channel !== keys.callDone) return;
      // One message names every call a worker finished in one event-loop turn, a line each.
      for (const id of message.split('\n')) {
        const set = this.waiters.get(id);
        if (!set) continue;
        this.waiters.delete(id);
        for (const wake of set) wake();
      }
    });
  }

  start(): Promise<unknown> {
    this.subscribed ??= this.subscriber.subscribe(this.keys.callDone);
    return this.subscribed;
  }

  /**
   * Resolves `true` when `id` is announced as finished, `false` after `timeoutMs`.
   * Callers check the call's state after registering, so an announcement just before is not missed.
   */
  wait(id: string, timeoutMs: number, signal?: AbortSignal): { done: Promise<boolean>; cancel: () => void } {
    let wake!: () => void;
    let timer: NodeJS.Timeout | undefined;
    const done = new Promise<boolean>((resolve) => {
      wake = () => {
        clearTimeout(timer);
        resolve(true);
      };
      timer = setTimeout(() => {
        this.remove(id, wake);
        resolve(false);
      }, timeoutMs);
      signal?.addEventListener('abort', () => {
        clearTimeout(timer);
        this.remove(id, wake);
        resolve(false);
      });
    });
    let set = this.waiters.get(id);
    if (!set) this.waiters.set(id, (set = new Set()));
    set.add(wake);
    return {
      done,
      cancel: () => {
        clearTimeout(timer);
        this.remove(id, wake);
      },
    };
  }

  private remove(id: string, wake: () => void): void {
    const set = this.waiters.get(id);
    if (!set) return;
    set.delete(wake);
    if (set.size === 0) this.waiters.delete(id);
  }
}

const announcers = new WeakMap<RedisConnection, TickBatcher<string, void>>();

/**
 * Worker side of {@link CallWaiter}: the calls finished in one event-loop turn go out in one
 * message (ids never hold a newline: `CALL_ID_PATTERN`).
 */
export function announceCallDone(redis: RedisConnection, keys: Keys, id: string): Promise<void> {
  let announcer = announcers.get(redis);
  if (!announcer) {
    announcer = new TickBatcher<string, void>(async (channel, ids) => {
      await redis.publish(channel, ids.join('\n'));
      return ids.map(() => undefined);
    });
    announcers.set(redis, announcer);
  }
  return announcer.add(keys.callDone, id);
}
