import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { ToolSpec, type CallJobData, type CallOutput, type Tool } from '@toolplane/core';
import type { Job } from 'bullmq';
import { CallScheduler } from './call-scheduler.js';
import { ToolQueues } from './calls.js';
import { closeRedis, createRedisConnection, waitForRedis, type RedisConnection } from './connection.js';
import { createKeys } from './keys.js';
import { ToolRegistry } from './registry.js';
import type { CallProcessor } from './tool-worker.js';

/**
 * In which order the scheduler starts calls, in-process against the run's redis-server (no worker
 * processes): the tool that has waited longest first, then turns across tools; priorities within
 * a tool. The process-wide budget and the bound on a backlog's head start are proven in
 * call-scheduler.int.test.ts.
 */
let redis: RedisConnection;
beforeAll(async () => {
  redis = createRedisConnection(inject('redisUrl'), 'worker');
  await waitForRedis(redis);
});
afterAll(() => closeRedis(redis));

const SPEC = ToolSpec.parse({ description: 'test', parameters: { type: 'object' }, code: 'export default (a) => a', concurrency: 100 });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A budget-of-one scheduler on its own key prefix, recording each call as it starts. */
async function setup(runMs: number) {
  const keys = createKeys(`co${randomUUID().slice(0, 8)}`);
  const registry = new ToolRegistry(redis, keys);
  const queues = new ToolQueues(redis, keys, { maxCallsInFlight: 0 });
  const blocking = createRedisConnection(inject('redisUrl'), 'worker');
  const commands = createRedisConnection(inject('redisUrl'), 'worker');
  await Promise.all([waitForRedis(blocking), waitForRedis(commands)]);
  const started: Array<Job<CallJobData, CallOutput>> = [];
  const processor: CallProcessor = async (job) => {
    started.push(job);
    await sleep(runMs);
    return { result: null, logs: [] };
  };
  const scheduler = new CallScheduler(commands, blocking, keys, processor, {
    concurrency: 1,
    lockDurationMs: 5_000,
    stalledIntervalMs: 1_000,
    tools: () => registry.names(),
  });
  const tools: Tool[] = [];
  const put = async (name: string) => {
    const { tool } = await registry.put(name, SPEC, 'default');
    await queues.applyToolSettings(tool);
    tools.push(tool);
    return tool;
  };
  const until = async (count: number) => {
    const deadline = Date.now() + 20_000;
    while (started.length < count) {
      if (Date.now() > deadline) throw new Error(`${started.length} of ${count} calls started in time`);
      await sleep(10);
    }
  };
  const stop = async () => {
    await scheduler.drain(5_000);
    await scheduler.close();
    for (const t of tools) await queues.queue(t.name).obliterate({ force: true }).catch(() => {});
    await Promise.all(tools.map((t) => queues.queue(t.name).close()));
    await Promise.all([closeRedis(blocking), closeRedis(commands)]);
  };
  return { queues, scheduler, started, put, until, stop };
}

describe('CallScheduler order', () => {
  test('the tool that has waited longest starts first; then tools take turns', async () => {
    // Longer than the scheduler's 10 ms look at who else waits, so each turn sees the others.
    const { queues, scheduler, started, put, until, stop } = await setup(50);
    try {
      // Announced in the order c, b, a: not the order of their names.
      for (const name of ['c', 'b', 'a']) {
        const tool = await put(name);
        await queues.enqueueBulk(tool, [{}, {}, {}, {}], { tenant: 'default' });
        await sleep(5);
      }
      scheduler.start();
      await until(12);
      const order = started.map((job) => job.data.tool);
      // Tools in the order of their first start.
      expect([...new Set(order)]).toEqual(['c', 'b', 'a']);
      // While others wait, a tool runs one call, plus at most one more on a stale look at the line.
      let streak = 1;
      for (let i = 1; i < order.length; i++) {
        const othersWaiting = order.slice(i).some((t) => t !== order[i - 1]);
        streak = order[i] === order[i - 1] ? streak + 1 : 1;
        if (othersWaiting) expect(streak, order.join('')).toBeLessThanOrEqual(2);
      }
      // Every tool had its turns before any ran out: no tool finished its four calls before all had started two.
      const startedTwo = Math.max(...['a', 'b', 'c'].map((t) => order.indexOf(t, order.indexOf(t) + 1)));
      const firstDone = Math.min(...['a', 'b', 'c'].map((t) => order.lastIndexOf(t)));
      expect(startedTwo, order.join('')).toBeLessThan(firstDone);
    } finally {
      await stop();
    }
  });

  test('priorities order the calls of a tool; a more urgent call queued later overtakes', async () => {
    const { queues, scheduler, started, put, until, stop } = await setup(20);
    try {
      const tool = await put('prio');
      for (const priority of [5, 1, 4, 2, 3]) await queues.enqueue(tool, { priority }, { tenant: 'default', priority });
      scheduler.start();
      await until(1);
      // Queued while the most urgent call runs: it comes before the four still waiting.
      await queues.enqueue(tool, { priority: 0.5 }, { tenant: 'default', priority: 1 });
      await until(6);
      const order = started.map((job) => (job.data.arguments as { priority: number }).priority);
      expect(order).toEqual([1, 0.5, 2, 3, 4, 5]);
    } finally {
      await stop();
    }
  });
});
