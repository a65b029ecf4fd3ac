import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { createCalls, closeRedis, createKeys, createRedisConnection, ToolRegistry, type Calls, type RedisConnection } from '@toolplane/queue';
import { ADD_TOOL, api, eventually, startPlanner, startWorker, uniquePrefix, type ServiceProcess } from '../support/services.js';

/**
 * Deleting a tool gives back what it held (issue 14): its versions, except those its unfinished calls
 * were accepted for, and its queue's own bookkeeping once nothing of it is left to run.
 */
describe('a deleted tool releases what it held', () => {
  const env = { REDIS_URL: inject('redisUrl'), TOOLPLANE_PREFIX: uniquePrefix() };
  const keys = createKeys(env.TOOLPLANE_PREFIX);
  let planner: ServiceProcess;
  let worker: ServiceProcess;
  let redis: RedisConnection;
  let calls: Calls;

  beforeAll(async () => {
    [planner, worker] = await Promise.all([startPlanner(env), startWorker(env)]);
    redis = createRedisConnection(env.REDIS_URL, 'worker');
    calls = createCalls(redis, keys);
  });
  afterAll(async () => {
    await Promise.all([planner, worker].map((p) => p?.kill()));
    await closeRedis(redis);
  });

  const specsOf = async (name: string) => (await redis.hkeys(keys.registrySpecs)).filter((k) => k.startsWith(`${name}@`)).sort();

  test('with no call left to run: every version and the queue bookkeeping go; the name starts again past its old versions', async () => {
    for (let i = 0; i < 3; i++) expect((await api(planner.url, 'PUT', '/v1/tools/gone', ADD_TOOL)).status).toBeLessThan(300);
    expect((await api(planner.url, 'POST', '/v1/calls', { tool: 'gone', arguments: { a: 1, b: 2 }, wait: 10_000 })).body).toMatchObject({ status: 'succeeded', result: 3 });
    expect(await redis.exists(calls.queues.queue('gone').keys.meta!)).toBe(1);
    expect(await specsOf('gone')).toEqual(['gone@1', 'gone@2', 'gone@3']);

    expect((await api(planner.url, 'DELETE', '/v1/tools/gone')).status).toBe(204);
    expect(await specsOf('gone')).toEqual([]);
    expect(await redis.exists(calls.queues.queue('gone').keys.meta!, calls.queues.queue('gone').keys.events!)).toBe(0);
    const again = await api(planner.url, 'PUT', '/v1/tools/gone', ADD_TOOL);
    expect(again.body).toMatchObject({ version: 4 });
  });

  test('a call still waiting keeps the version it was accepted for, and runs it', async () => {
    const gated = { ...ADD_TOOL, requiresApproval: true };
    expect((await api(planner.url, 'PUT', '/v1/tools/kept', gated)).status).toBe(201);
    const pending = (await api(planner.url, 'POST', '/v1/calls', { tool: 'kept', arguments: { a: 2, b: 2 } })).body;
    expect((await api(planner.url, 'PUT', '/v1/tools/kept', { ...gated, code: 'export default () => "v2"' })).status).toBe(200);

    expect((await api(planner.url, 'DELETE', '/v1/tools/kept')).status).toBe(204);
    expect(await specsOf('kept')).toEqual(['kept@1']);
    expect(await redis.exists(calls.queues.queue('kept').keys.meta!)).toBe(1);

    expect((await api(planner.url, 'POST', `/v1/calls/${pending.id}/approve`, {})).status).toBe(200);
    const done = await eventually(async () => {
      const r = (await api(planner.url, 'GET', `/v1/calls/${pending.id}`)).body;
      return r.status === 'succeeded' || r.status === 'failed' ? r : undefined;
    }, 10_000, 50);
    expect(done).toMatchObject({ status: 'succeeded', result: 4, version: 1 });

    // Its last call done, the planner's sweep of deleted tools gives back the queue's bookkeeping and
    // the version; the name stays listed while its finished call waits for the archiver.
    // (The sweep drops the bookkeeping, then the version: a round trip or two apart.)
    await expect.poll(async () => [await redis.exists(calls.queues.queue('kept').keys.meta!), await specsOf('kept')], { timeout: 15_000 }).toEqual([0, []]);
    expect(await redis.smembers(keys.registryDeleted)).toContain('kept');
    expect((await api(planner.url, 'GET', `/v1/calls/${pending.id}`)).body).toMatchObject({ status: 'succeeded', result: 4 });
  });

  test('a call that slipped in past the delete ends REJECTED and lists the name again for the sweep', async () => {
    expect((await api(planner.url, 'PUT', '/v1/tools/slipped', ADD_TOOL)).status).toBe(201);
    // What a request that looked the tool up just before the delete holds when it enqueues just after.
    const looked = (await new ToolRegistry(redis, keys).get('slipped'))!;
    expect((await api(planner.url, 'DELETE', '/v1/tools/slipped')).status).toBe(204);
    expect(await redis.smembers(keys.registryDeleted)).not.toContain('slipped');
    const { id } = await calls.producer.enqueue(looked, { a: 1, b: 2 }, { tenant: looked.tenant });
    const done = await eventually(async () => {
      const r = (await api(planner.url, 'GET', `/v1/calls/${id}`)).body;
      return r.status === 'failed' ? r : undefined;
    }, 10_000, 50);
    expect(done.error).toMatchObject({ code: 'REJECTED' });
    expect(await redis.smembers(keys.registryDeleted)).toContain('slipped');
  });
});
