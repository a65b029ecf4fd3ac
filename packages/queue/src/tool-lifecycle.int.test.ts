import { expect, test } from 'vitest';
import { once } from 'node:events';
import { Worker } from 'bullmq';
import { ToolSpec } from '@toolplane/core';
import { createKeys } from './keys.js';
import { createCalls } from './calls.js';
import { ToolRegistry } from './registry.js';
import { TOOL_EVENTS_KEPT } from './tool-queue-cache.js';
import { sharedRedis, freshPrefix } from '../../../test/support/redis.js';

const redis = sharedRedis();

test('a tool without a concurrency cap leaves BullMQ no fleet-wide count to keep; a cap sets it again', async () => {
  const keys = createKeys(freshPrefix());
  const registry = new ToolRegistry(redis, keys);
  const calls = createCalls(redis, keys);
  const spec = (concurrency: number | null) =>
    ToolSpec.parse({ description: 'capped or not', parameters: { type: 'object' }, code: 'export default () => 1', concurrency });
  const queue = calls.queues.queue('cap');

  await calls.lifecycle.applyToolSettings((await registry.put('cap', spec(3))).tool);
  expect(await queue.getGlobalConcurrency()).toBe(3);
  await calls.lifecycle.applyToolSettings((await registry.put('cap', spec(null))).tool);
  expect(await queue.getGlobalConcurrency()).toBeNull();
  expect((await registry.get('cap'))?.concurrency).toBeNull();
  await calls.lifecycle.applyToolSettings((await registry.put('cap', spec(7))).tool);
  expect(await queue.getGlobalConcurrency()).toBe(7);
  expect(ToolSpec.parse({ description: 'd', parameters: {}, code: 'x' }).concurrency).toBe(50);
  await queue.obliterate({ force: true });
});

const SPEC = ToolSpec.parse({ description: 'd', parameters: { type: 'object' }, code: 'export default () => 1' });

test("a tool's BullMQ events stream keeps about a thousand entries, also after the tool is deleted and registered again", async () => {
  const keys = createKeys(freshPrefix());
  const registry = new ToolRegistry(redis, keys);
  const calls = createCalls(redis, keys);
  const queue = calls.queues.queue('busy');
  const flood = async () => {
    await calls.lifecycle.applyToolSettings((await registry.put('busy', SPEC)).tool);
    // 2,500 calls: 5,000 events (added, waiting), where BullMQ would keep 10,000.
    for (let i = 0; i < 5; i++) await calls.producer.enqueueBulk((await registry.get('busy'))!, Array.from({ length: 500 }, () => ({})), { tenant: 'acme' });
    const kept = await redis.xlen(queue.keys.events!);
    expect(kept).toBeGreaterThanOrEqual(TOOL_EVENTS_KEPT);
    expect(kept).toBeLessThan(TOOL_EVENTS_KEPT * 1.2);
  };
  await flood();
  await queue.obliterate({ force: true });
  expect(await registry.delete('busy')).toBe(true);
  expect(await calls.lifecycle.settleDeleted('busy', registry)).toBe('forgotten');
  expect(await redis.exists(queue.keys.meta!)).toBe(0);
  await flood();
  await queue.obliterate({ force: true });
});

/** Runs the one waiting call of `tool` with a plain BullMQ worker and stops. */
async function runOneCall(keys: ReturnType<typeof createKeys>, tool: string): Promise<void> {
  const worker = new Worker(keys.queueName(tool), () => Promise.resolve({ result: 1, logs: [] }), { connection: redis, prefix: keys.bullPrefix });
  worker.on('error', () => {});
  await once(worker, 'completed');
  await worker.close();
}

test('without a history store, a deleted tool is settled step by step and its name forgotten once nothing of it is left', async () => {
  const keys = createKeys(freshPrefix());
  const registry = new ToolRegistry(redis, keys);
  // Finished calls kept a week (the default) and, for a second process's lifecycle, 1 ms.
  const calls = createCalls(redis, keys);
  const shortLived = createCalls(redis, keys, { retentionMs: 1 });
  const { tool } = await registry.put('gone', SPEC);
  await calls.lifecycle.applyToolSettings(tool);
  await calls.producer.enqueue(tool, {}, { tenant: 'acme', deadlineMs: 60_000 });
  expect(await registry.delete('gone')).toBe(true);

  // A call still queued: it keeps its version and the queue; the name stays listed.
  expect(await calls.lifecycle.settleDeleted('gone', registry)).toBe('calls-queued');
  expect(await registry.deletedNames()).toEqual(['gone']);
  expect((await registry.versions('gone')).map((v) => v.version)).toEqual([1]);
  const queueKeys = calls.queues.queue('gone').keys;
  expect(await redis.exists(queueKeys.meta!)).toBe(1);

  expect(await redis.zcard(keys.callDeadlines('gone'))).toBe(1);

  // (Run by a bare BullMQ worker, which leaves the call's deadline entry behind, as a killed one would.)
  await runOneCall(keys, 'gone');
  // Finished and still within its retention: the bookkeeping and the version go, the call stays readable.
  expect(await calls.lifecycle.settleDeleted('gone', registry)).toBe('calls-finished');
  expect(await redis.exists(queueKeys.meta!, queueKeys.events!, keys.callDeadlines('gone'))).toBe(0);
  expect(await registry.versions('gone')).toEqual([]);
  expect(await calls.queues.queue('gone').getJobCountByTypes('completed')).toBe(1);
  expect(await registry.deletedNames()).toEqual(['gone']);

  // Past its retention, BullMQ would drop it on the tool's next finish, which never comes: the
  // settle drops it, and with nothing left the name is forgotten.
  expect(await shortLived.lifecycle.settleDeleted('gone', registry)).toBe('forgotten');
  expect(await calls.lifecycle.holdsNothing('gone')).toBe(true);
  expect(await registry.deletedNames()).toEqual([]);
  expect(await shortLived.lifecycle.settleDeleted('gone', registry)).toBe('not-deleted');
  await calls.queues.queue('gone').obliterate({ force: true });
});

test('a name registered again is never forgotten on the strength of its old queue, nor stripped of its settings', async () => {
  const keys = createKeys(freshPrefix());
  const registry = new ToolRegistry(redis, keys);
  const calls = createCalls(redis, keys, { retentionMs: 1 });
  await registry.put('again', SPEC);
  await registry.delete('again');
  // A sweep reads the mark and finds the old queue empty…
  const stale = await registry.deletionMark('again');
  expect(stale).toBeDefined();
  expect(await calls.lifecycle.holdsNothing('again')).toBe(true);
  // …meanwhile the name is registered again, used, and deleted again with a call still queued.
  const { tool } = await registry.put('again', { ...SPEC, concurrency: 3 });
  await calls.lifecycle.applyToolSettings(tool);
  expect(await registry.deletionMark('again')).toBeUndefined();
  expect(await calls.lifecycle.settleDeleted('again', registry)).toBe('not-deleted');
  expect(await calls.queues.queue('again').getGlobalConcurrency()).toBe(3);
  await calls.producer.enqueue(tool, {}, { tenant: 'acme' });
  await registry.delete('again');
  // The late forget with the old mark leaves the new deletion listed (its call still to run and archive).
  expect(await registry.forgetDeleted('again', stale!)).toBe(false);
  expect(await registry.deletedNames()).toEqual(['again']);
  expect(await calls.lifecycle.settleDeleted('again', registry)).toBe('calls-queued');
  await runOneCall(keys, 'again');
  expect(await calls.lifecycle.settleDeleted('again', registry)).toBe('forgotten');
  expect(await registry.deletedNames()).toEqual([]);
  await calls.queues.queue('again').obliterate({ force: true });
});
