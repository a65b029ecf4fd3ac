import { afterAll, beforeAll, expect, inject, test } from 'vitest';
import { getEventListeners, setMaxListeners } from 'node:events';
import { closeRedis, createRedisConnection, waitForRedis, type RedisConnection } from '@toolplane/queue';
import { createAgentKeys } from './keys.js';
import { RunEventFeed } from './run-events.js';
import { RunStore } from './run-store.js';

// A reader of a run's events that stops (the client went away, the run finished) leaves nothing
// behind on the signal it followed with, which may live as long as the planner.
let redis: RedisConnection;
let subscriber: RedisConnection;
let feed: RunEventFeed;
const keys = createAgentKeys(`rev${Date.now()}`);
const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
const listeners = (signal: AbortSignal) => getEventListeners(signal, 'abort').length;

beforeAll(async () => {
  redis = createRedisConnection(inject('redisUrl'), 'client');
  subscriber = createRedisConnection(inject('redisUrl'), 'subscriber');
  await Promise.all([waitForRedis(redis), waitForRedis(subscriber)]);
  feed = new RunEventFeed(subscriber, keys, new RunStore(redis, keys, 60_000));
  await feed.start();
});
afterAll(async () => {
  await Promise.all([redis, subscriber].map((c) => c && closeRedis(c)));
});

/** Appends an event and announces it, as `RunStore.save` does (`announce: false`: stored before anyone follows). */
async function append(run: string, type: string, announce = true): Promise<void> {
  await redis.xadd(keys.runEvents(run), '*', 'e', JSON.stringify({ type }));
  if (announce) await redis.publish(keys.runsChanged, run);
}

test('a reader that stops mid-stream removes its wait; a live event wakes a reader', async () => {
  const closing = new AbortController();
  const before = timers();
  await append('r1', 'stored', false);
  const events = feed.follow('r1', '0', closing.signal, 60_000);
  const stored = (await events.next()).value;
  expect(stored?.event).toEqual({ type: 'stored' });
  // Suspended at the event it yielded, with its next wait open; the reader goes away.
  expect(listeners(closing.signal)).toBe(1);
  await events.return(undefined);
  expect(listeners(closing.signal)).toBe(0);

  const live = feed.follow('r1', stored!.id, closing.signal, 60_000);
  const next = live.next();
  await expect.poll(() => listeners(closing.signal)).toBe(1);
  await append('r1', 'step');
  expect((await next).value?.event).toEqual({ type: 'step' });
  await live.return(undefined);
  expect(listeners(closing.signal)).toBe(0);
  expect(timers()).toBeLessThanOrEqual(before);
});

test('idle periods yield keep-alives, the finished event ends the stream, and 1,000 followers leave nothing behind', async () => {
  const closing = new AbortController();
  setMaxListeners(2_000, closing.signal);
  const before = timers();
  const idle = feed.follow('r2', '0', closing.signal, 10);
  expect((await idle.next()).value).toBeUndefined();
  await idle.return(undefined);

  const followers = Array.from({ length: 1_000 }, () => feed.follow('r3', '0', closing.signal, 60_000));
  const firsts = followers.map((f) => f.next());
  await expect.poll(() => listeners(closing.signal)).toBe(1_000);
  await append('r3', 'finished');
  for (const first of await Promise.all(firsts)) expect(first.value?.event).toEqual({ type: 'finished' });
  for (const rest of await Promise.all(followers.map((f) => f.next()))) expect(rest.done).toBe(true);
  expect(listeners(closing.signal)).toBe(0);
  expect(timers()).toBeLessThanOrEqual(before);
});
