import { afterAll, beforeAll, expect, inject, test } from 'vitest';
import { randomUUID } from 'node:crypto';
import { ToolSpec } from '@toolplane/core';
import { closeRedis, createRedisConnection, type RedisConnection } from './connection.js';
import { createKeys } from './keys.js';
import { createCalls } from './calls.js';
import { ToolRegistry } from './registry.js';

// The run's shared redis-server (test/support/global-setup.ts); keys are isolated by prefix.
let redis: RedisConnection;
beforeAll(() => {
  redis = createRedisConnection(inject('redisUrl'), 'worker');
});
afterAll(() => closeRedis(redis));

test('a tool without a concurrency cap leaves BullMQ no fleet-wide count to keep; a cap sets it again', async () => {
  const keys = createKeys(`t${randomUUID().slice(0, 8)}`);
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
