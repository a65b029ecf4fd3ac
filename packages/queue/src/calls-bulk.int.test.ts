import { expect, test } from 'vitest';
import { ToolSpec } from '@toolplane/core';
import { createKeys } from './keys.js';
import { createCalls } from './calls.js';
import { ToolRegistry } from './registry.js';
import { sharedRedis, freshPrefix } from '../../../test/support/redis.js';

const redis = sharedRedis();

test('enqueueBulk queues the same jobs and audit records as enqueue', async () => {
  const keys = createKeys(freshPrefix());
  const registry = new ToolRegistry(redis, keys);
  const { tool } = await registry.put(
    'add',
    ToolSpec.parse({ description: 'adds', parameters: { type: 'object' }, code: 'export default () => 1' }),
  );
  const calls = createCalls(redis, keys);
  const single = await calls.producer.enqueue(tool, { a: 1 }, { tenant: 'acme' });
  const ids = await calls.producer.enqueueBulk(tool, [{ a: 2 }, { a: 3 }], { tenant: 'acme' });
  expect(ids).toHaveLength(2);

  const one = await calls.queues.queue('add').getJob(single.id);
  for (const [i, id] of ids.entries()) {
    const job = await calls.queues.queue('add').getJob(id);
    expect(job?.data).toMatchObject({ tool: 'add', version: tool.version, tenant: 'acme', arguments: { a: i + 2 } });
    expect(job?.opts).toEqual({ ...one!.opts, jobId: id, timestamp: job?.data.enqueuedAt });
    expect(await calls.reads.get(id)).toMatchObject({ id, status: 'queued', tenant: 'acme' });
  }
  expect(await redis.zcard(keys.tenantToolCalls('acme', 'add'))).toBe(3);
  expect(await redis.zcard(keys.tenantInFlight('acme'))).toBe(3);
  expect((await calls.reads.list({ tenant: 'acme', tool: 'add', limit: 10 })).calls.map((c) => c.id).sort()).toEqual([single.id, ...ids].sort());
  await calls.queues.queue('add').obliterate({ force: true });
  await calls.queues.queue('add').close();
});
