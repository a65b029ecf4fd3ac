import type { CallRecord } from '@toolplane/core';
import type { RedisConnection } from './connection.js';
import type { Keys } from './keys.js';
import { PubSubWaiter, type Announced } from './pubsub-waiter.js';
import { TickBatcher } from './tick-batcher.js';

/**
 * Largest finished call record that rides along with its announcement (as JSON): every planner
 * hears every announcement, so big results are read from the job instead.
 */
export const ANNOUNCED_RECORD_MAX_BYTES = 2048;

/**
 * The reply path for `wait`: workers publish a finished call's id on one channel and each planner
 * holds one subscription, instead of a BullMQ QueueEvents stream per tool whose every event each
 * listener would parse. One message names every call a worker finished in one event-loop turn, a
 * line each: the id, and for a call that finished for good with a small record, a tab and the
 * record's JSON — what a read of the job would give, so the `wait` answer needs no read.
 */
export class CallWaiter extends PubSubWaiter {
  constructor(subscriber: RedisConnection, keys: Keys) {
    super(subscriber, keys.callDone, (message) => message.split('\n').map(announcedLine));
  }

  /** The record a wait's announcement carried, if it carried one. */
  static recordOf(wait: { detail: () => string | undefined }): CallRecord | undefined {
    const told = wait.detail();
    return told === undefined ? undefined : (JSON.parse(told) as CallRecord);
  }
}

/** Ids never hold a tab or a newline (`CALL_ID_PATTERN`), and JSON holds no raw newline. */
function announcedLine(line: string): Announced {
  const tab = line.indexOf('\t');
  return tab < 0 ? [line] : [line.slice(0, tab), line.slice(tab + 1)];
}

const announcers = new WeakMap<RedisConnection, TickBatcher<string, void>>();

/**
 * Worker side of {@link CallWaiter}: the calls finished in one event-loop turn go out in one
 * message. `record`: the call's record once it finished for good (left out past
 * {@link ANNOUNCED_RECORD_MAX_BYTES}).
 */
export function announceCallDone(redis: RedisConnection, keys: Keys, id: string, record?: CallRecord): Promise<void> {
  let announcer = announcers.get(redis);
  if (!announcer) {
    announcer = new TickBatcher<string, void>(async (channel, ids) => {
      await redis.publish(channel, ids.join('\n'));
      return ids.map(() => undefined);
    });
    announcers.set(redis, announcer);
  }
  const json = record && JSON.stringify(record);
  return announcer.add(keys.callDone, json && json.length <= ANNOUNCED_RECORD_MAX_BYTES ? `${id}\t${json}` : id);
}
