import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { getEventListeners, setMaxListeners } from 'node:events';
import type { CallRecord } from '@toolplane/core';
import { ANNOUNCED_RECORD_MAX_BYTES, announceCallDone, CallWaiter } from './call-waiter.js';
import { closeRedis, createRedisConnection, waitForRedis, type RedisConnection } from './connection.js';
import { createKeys } from './keys.js';
import { PubSubWaiter } from './pubsub-waiter.js';

// Other timers (the runner's, the client's) come and go too: a wait's own must never outlive it.
const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
const abortListeners = (signal: AbortSignal) => getEventListeners(signal, 'abort').length;

describe('PubSubWaiter on a real Redis', () => {
  let client: RedisConnection;
  let subscriber: RedisConnection;
  const keys = createKeys(`psw${Date.now()}`);
  const channel = `${keys.bullPrefix}:test-wakes`;
  let waiter: PubSubWaiter;

  beforeAll(async () => {
    client = createRedisConnection(inject('redisUrl'), 'client');
    subscriber = createRedisConnection(inject('redisUrl'), 'subscriber');
    await Promise.all([waitForRedis(client), waitForRedis(subscriber)]);
    waiter = new PubSubWaiter(subscriber, channel);
    await waiter.start();
  });
  afterAll(async () => {
    await Promise.all([client, subscriber].map((c) => c && closeRedis(c)));
  });

  test('an announcement wakes every wait on its id with true, and only those', async () => {
    const signal = new AbortController().signal;
    const a = waiter.wait('a', 10_000, signal);
    const a2 = waiter.wait('a', 10_000);
    const b = waiter.wait('b', 10_000, signal);
    expect(abortListeners(signal)).toBe(2);
    await client.publish(channel, 'a');
    await expect(a.done).resolves.toBe(true);
    await expect(a2.done).resolves.toBe(true);
    expect(abortListeners(signal)).toBe(1);
    expect(waiter.size).toBe(1);
    b.cancel();
    await expect(b.done).resolves.toBe(false);
    expect(abortListeners(signal)).toBe(0);
    expect(waiter.size).toBe(0);
  });

  test('a timeout resolves false and removes its abort listener', async () => {
    const signal = new AbortController().signal;
    const w = waiter.wait('late', 20, signal);
    await expect(w.done).resolves.toBe(false);
    expect(abortListeners(signal)).toBe(0);
    expect(waiter.size).toBe(0);
  });

  test('an abort resolves false at once, removes its listener and its timer', async () => {
    const before = timers();
    const ac = new AbortController();
    const w = waiter.wait('aborted', 60_000, ac.signal);
    expect(abortListeners(ac.signal)).toBe(1);
    expect(timers()).toBeGreaterThanOrEqual(1);
    ac.abort();
    await expect(w.done).resolves.toBe(false);
    expect(abortListeners(ac.signal)).toBe(0);
    expect(timers()).toBeLessThanOrEqual(before);
    expect(waiter.size).toBe(0);
    // A signal already aborted ends the wait without adding anything.
    const again = waiter.wait('aborted', 60_000, ac.signal);
    await expect(again.done).resolves.toBe(false);
    expect(abortListeners(ac.signal)).toBe(0);
    expect(timers()).toBeLessThanOrEqual(before);
  });

  test('1,000 waits on one long-lived signal, ended every way, leave no listener, timer or entry behind', async () => {
    // The run loop's shape: a run waiting for an approval opens a wait per poll, all on the run's signal.
    const run = new AbortController();
    setMaxListeners(2_000, run.signal);
    const before = timers();
    // By i % 4: woken by an announcement, timed out, cancelled, ended by the run's abort.
    const waits = Array.from({ length: 1_000 }, (_, i) => waiter.wait(`call-${i}`, i % 4 === 1 ? 10 : 60_000, run.signal));
    expect(abortListeners(run.signal)).toBe(1_000);
    expect(waiter.size).toBe(1_000);
    expect(timers()).toBeGreaterThanOrEqual(1_000);
    waits.forEach((w, i) => i % 4 === 2 && w.cancel());
    await Promise.all(waits.map((_, i) => (i % 4 === 0 ? client.publish(channel, `call-${i}`) : undefined)));
    await Promise.all(waits.filter((_, i) => i % 4 !== 3).map((w) => w.done));
    expect(abortListeners(run.signal)).toBe(250);
    run.abort();
    const outcomes = await Promise.all(waits.map((w) => w.done));
    expect(outcomes.map((woken, i) => woken === (i % 4 === 0)).every(Boolean)).toBe(true);
    expect(abortListeners(run.signal)).toBe(0);
    expect(timers()).toBeLessThanOrEqual(before);
    expect(waiter.size).toBe(0);
  });

  test('the channel is subscribed once and one message can wake several calls', async () => {
    const calls = new CallWaiter(subscriber, keys);
    await Promise.all([calls.start(), calls.start()]);
    const [, subscribers] = (await client.pubsub('NUMSUB', keys.callDone)) as [string, number];
    expect(Number(subscribers)).toBe(1);
    const x = calls.wait('x', 10_000);
    const y = calls.wait('y', 10_000);
    // Announced in one event-loop turn: one message of two lines.
    await Promise.all([announceCallDone(client, keys, 'x'), announceCallDone(client, keys, 'y')]);
    await expect(Promise.all([x.done, y.done])).resolves.toEqual([true, true]);
    expect(calls.size).toBe(0);
  });

  test('a finished call announced with its record hands the record to its waits; a big one is left to be read', async () => {
    const calls = new CallWaiter(subscriber, keys);
    await calls.start();
    const record: CallRecord = {
      id: 'small',
      tool: 't',
      version: 1,
      status: 'succeeded',
      tenant: 'default',
      argsHash: 'h',
      attempts: 1,
      createdAt: new Date(0).toISOString(),
      timings: { queuedMs: 1, runMs: 2 },
      // Tabs and newlines in a result travel escaped in the JSON: the line format holds.
      result: { text: 'a\tb\nc' },
    };
    const big = { ...record, id: 'big', result: 'x'.repeat(ANNOUNCED_RECORD_MAX_BYTES) };
    const waits = { small: calls.wait('small', 10_000), big: calls.wait('big', 10_000), plain: calls.wait('plain', 10_000) };
    await Promise.all([announceCallDone(client, keys, 'small', record), announceCallDone(client, keys, 'big', big), announceCallDone(client, keys, 'plain')]);
    await expect(Promise.all(Object.values(waits).map((w) => w.done))).resolves.toEqual([true, true, true]);
    expect(CallWaiter.recordOf(waits.small)).toEqual(record);
    expect(CallWaiter.recordOf(waits.big)).toBeUndefined();
    expect(CallWaiter.recordOf(waits.plain)).toBeUndefined();
    // Ended once, a wait keeps what woke it: a later cancel changes nothing.
    waits.small.cancel();
    expect(CallWaiter.recordOf(waits.small)).toEqual(record);
  });
});
