import { expect, test } from 'vitest';
import { Worker, type Job } from 'bullmq';
import { ToolSpec, type CallJobData } from '@toolplane/core';
import { createKeys, type Keys } from './keys.js';
import { createCalls } from './calls.js';
import { ToolRegistry } from './registry.js';
import { sharedRedis, freshPrefix } from '../../../test/support/redis.js';

const redis = sharedRedis();

/** A tool with its queues; `start(n)` takes the next n calls the way a worker does, in BullMQ's order. */
async function setup(opts: { deadlineMs?: number } = {}) {
  const keys: Keys = createKeys(freshPrefix());
  const { tool } = await new ToolRegistry(redis, keys).put(
    'shared',
    ToolSpec.parse({ description: 'shared', parameters: { type: 'object' }, code: 'export default () => 1', ...opts }),
  );
  const calls = createCalls(redis, keys, { maxCallsInFlight: 0 });
  const queue = calls.queues.queue('shared');
  const worker = new Worker(queue.name, null, { connection: redis, prefix: keys.bullPrefix, autorun: false });
  const start = async (n: number): Promise<string[]> => {
    const started: string[] = [];
    for (let i = 0; i < n; i++) {
      const job = (await worker.getNextJob('token', { block: false })) as Job<CallJobData> | undefined;
      if (!job) break;
      started.push(`${job.data.tenant}:${String((job.data.arguments as { n: number }).n)}`);
    }
    return started;
  };
  const flood = (tenant: string, from: number, count: number, priority?: number) =>
    calls.producer.enqueueBulk(
      tool,
      Array.from({ length: count }, (_, i) => ({ n: from + i })),
      { tenant, ...(priority ? { priority } : {}) },
    );
  const close = async () => {
    await worker.close();
    await queue.obliterate({ force: true });
    await queue.close();
  };
  return { keys, tool, calls, start, flood, close };
}

test('tenants flooding one tool take turns, each in its own order', async () => {
  const t = await setup();
  await t.flood('a', 1, 4);
  await t.flood('b', 1, 2);
  await t.flood('c', 1, 1);
  expect(await t.start(7)).toEqual(['a:1', 'b:1', 'c:1', 'a:2', 'b:2', 'a:3', 'a:4']);
  await t.close();
});

test('a tenant back from idle joins the round instead of jumping ahead', async () => {
  const t = await setup();
  await t.flood('c', 1, 1);
  await t.flood('a', 1, 10);
  expect(await t.start(6)).toEqual(['c:1', 'a:1', 'a:2', 'a:3', 'a:4', 'a:5']);
  // c's last tag is far behind the tool's clock now: its new calls share the rest with a's.
  await t.flood('c', 2, 3);
  expect(await t.start(8)).toEqual(['a:6', 'c:2', 'a:7', 'c:3', 'a:8', 'c:4', 'a:9', 'a:10']);
  await t.close();
});

test('explicit priorities keep their order and run after calls that set none', async () => {
  const t = await setup();
  await t.flood('a', 1, 1, 5);
  await t.flood('b', 2, 1, 1);
  await t.flood('a', 3, 2);
  expect(await t.start(4)).toEqual(['a:3', 'a:4', 'b:2', 'a:1']);
  await t.close();
});

test('numbering starts again once the tags ran high and no tagged call waits', async () => {
  const t = await setup();
  await redis.hset(t.keys.fairTags('shared'), '~max', 1_500_000, 'a', 1_500_000);
  await t.flood('a', 1, 2);
  await t.flood('b', 1, 1);
  const jobs = await t.calls.queues.queue('shared').getJobs(['prioritized']);
  expect(jobs.map((j) => j.priority).sort()).toEqual([1, 1, 2]);
  await t.close();
});

test('a tenant alone stays on the plain list; its waiting calls take tags first when another comes', async () => {
  const t = await setup();
  await t.flood('a', 1, 3);
  const queue = t.calls.queues.queue('shared');
  expect(await queue.getJobCounts('wait', 'prioritized')).toEqual({ wait: 3, prioritized: 0 });
  expect(await t.start(1)).toEqual(['a:1']);
  await t.flood('a', 4, 1);
  expect(await queue.getJobCounts('wait', 'prioritized')).toEqual({ wait: 3, prioritized: 0 });
  await t.flood('b', 1, 2);
  expect(await queue.getJobCounts('wait', 'prioritized')).toEqual({ wait: 0, prioritized: 5 });
  // The job's own priority moved with it, as BullMQ's priority change would have done.
  const a2 = (await queue.getJobs(['prioritized'])).find((j) => (j.data.arguments as { n: number }).n === 2 && j.data.tenant === 'a');
  expect((await queue.getJob(a2!.id!))?.priority).toBe(1);
  expect(await t.start(6)).toEqual(['a:2', 'b:1', 'a:3', 'b:2', 'a:4']);
  // Drained: the next tenant alone is back on the plain list.
  await t.flood('b', 3, 1);
  expect(await queue.getJobCounts('wait', 'prioritized')).toEqual({ wait: 1, prioritized: 0 });
  await t.close();
});

test('calls with a deadline are indexed for the deadline sweeper', async () => {
  const t = await setup({ deadlineMs: 60_000 });
  const before = Date.now();
  const ids = await t.flood('a', 1, 2);
  const { id } = await t.calls.producer.enqueue(t.tool, { n: 3 }, { tenant: 'b', priority: 2 });
  const index = await redis.zrange(t.keys.callDeadlines('shared'), 0, -1, 'WITHSCORES');
  expect(index.filter((_, i) => i % 2 === 0).sort()).toEqual([...ids, id].sort());
  for (const score of index.filter((_, i) => i % 2 === 1)) expect(Number(score)).toBeGreaterThanOrEqual(before + 60_000);
  await t.close();
});
