import type { RedisConnection } from './connection.js';
import type { Keys } from './keys.js';
import { PubSubWaiter } from './pubsub-waiter.js';
import { TickBatcher } from './tick-batcher.js';

/**
 * The reply path for `wait`: workers publish a finished call's id on one channel and each planner
 * holds one subscription, instead of a BullMQ QueueEvents stream per tool whose every event each
 * listener would parse. One message names every call a worker finished in one event-loop turn, a
 * line each.
 */
export class CallWaiter extends PubSubWaiter {
  constructor(subscriber: RedisConnection, keys: Keys) {
    super(subscriber, keys.callDone, (message) => message.split('\n'));
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
