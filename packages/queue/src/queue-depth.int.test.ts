import { expect, inject, test } from 'vitest';
import { Queue, Worker } from 'bullmq';
import { createRedisConnection } from './connection.js';
import { createKeys } from './keys.js';
import { readQueueDepths } from './queue-depth.js';
import { sharedRedis, freshPrefix } from '../../../test/support/redis.js';

const redis = sharedRedis();

test('counts every state as BullMQ getJobCounts does, for many tools in one call', async () => {
  const keys = createKeys(freshPrefix());
  const queue = new Queue(keys.queueName('add'), { connection: redis, prefix: keys.bullPrefix });
  await queue.add('call', {}, { delay: 60_000 });
  await queue.add('call', {}, { priority: 3 });
  await queue.addBulk([1, 2, 3].map(() => ({ name: 'call', data: {} })));
  // One job fails, one completes, through a real worker.
  let n = 0;
  const worker = new Worker(
    keys.queueName('add'),
    async () => {
      if (n++ === 0) throw new Error('boom');
    },
    { connection: createRedisConnection(inject('redisUrl'), 'worker'), prefix: keys.bullPrefix, autorun: false },
  );
  const twoDone = new Promise<void>((resolve) => {
    let done = 0;
    const step = () => ++done === 2 && resolve();
    worker.on('completed', step);
    worker.on('failed', step);
  });
  worker.concurrency = 1;
  void worker.run();
  await twoDone;
  await worker.close();

  const depths = await readQueueDepths(redis, keys, ['add', 'unused']);
  const expected = await queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'failed', 'completed');
  expect(depths).toEqual([
    { tool: 'add', counts: expected },
    { tool: 'unused', counts: { waiting: 0, prioritized: 0, active: 0, delayed: 0, failed: 0, completed: 0 } },
  ]);
  // The worker may take one more job before it closes; either way every job is counted once.
  expect(expected).toMatchObject({ delayed: 1, failed: 1, active: 0 });
  expect(expected.waiting! + expected.prioritized! + expected.completed!).toBe(3);
  expect(await readQueueDepths(redis, keys, [])).toEqual([]);
  await queue.obliterate({ force: true });
  await queue.close();
});
