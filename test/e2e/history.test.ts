import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { createCalls, ToolRegistry, closeRedis, createKeys, createRedisConnection } from '@toolplane/queue';
import { ADD_TOOL, api, startPlanner, startWorker, uniquePrefix, type ServiceProcess } from '../support/services.js';

/** A planner whose archiver moves finished calls out of Redis as soon as they end (hot retention 0). */
describe('call history through the API', () => {
  let planner: ServiceProcess;
  let worker: ServiceProcess;
  const env = { REDIS_URL: inject('redisUrl'), TOOLPLANE_PREFIX: uniquePrefix() };

  beforeAll(async () => {
    [planner, worker] = await Promise.all([startPlanner({ ...env, CALL_HOT_RETENTION_MS: '0' }), startWorker(env)]);
    expect((await api(planner.url, 'PUT', '/v1/tools/add', ADD_TOOL)).status).toBe(201);
  });
  afterAll(async () => {
    await Promise.all([planner?.kill(), worker?.kill()]);
  });

  const archived = async () => {
    const text = await (await fetch(`${planner.url}/metrics`)).text();
    return Number(/^toolplane_history_archived_total\{kind="call"\} (\d+)/m.exec(text)?.[1] ?? 0);
  };

  test('archived calls read by id, list by cursor and export as NDJSON as before', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 25; i++) {
      const res = await api(planner.url, 'POST', '/v1/calls', { tool: 'add', arguments: { a: i, b: 1 }, wait: true });
      expect(res.body).toMatchObject({ status: 'succeeded', result: i + 1 });
      ids.push(res.body.id);
    }
    await expect.poll(archived, { timeout: 15_000 }).toBeGreaterThanOrEqual(25);
    for (const [i, id] of ids.entries()) {
      expect((await api(planner.url, 'GET', `/v1/calls/${id}`)).body).toMatchObject({ id, status: 'succeeded', result: i + 1 });
    }
    const listed: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await api(planner.url, 'GET', `/v1/calls?limit=7${cursor ? `&cursor=${cursor}` : ''}`);
      listed.push(...page.body.calls.map((c: { id: string }) => c.id));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(listed).toEqual([...ids].reverse());
    const byArgs = await api(planner.url, 'GET', `/v1/calls?argsHash=${(await api(planner.url, 'GET', `/v1/calls/${ids[3]}`)).body.argsHash}`);
    expect(byArgs.body.calls.map((c: { id: string }) => c.id)).toEqual([ids[3]]);

    const res = await fetch(`${planner.url}/v1/calls/export?since=0`);
    expect(res.headers.get('content-type')).toMatch(/application\/x-ndjson/);
    const lines = (await res.text()).trim().split('\n').map((l) => JSON.parse(l) as { id: string });
    expect(lines.map((l) => l.id)).toEqual([...ids].reverse());
  });

  test("a deleted tool's finished calls are archived like any others, then its name is forgotten", async () => {
    const redis = createRedisConnection(env.REDIS_URL, 'worker');
    try {
      const keys = createKeys(env.TOOLPLANE_PREFIX);
      const calls = createCalls(redis, keys);
      const registry = new ToolRegistry(redis, keys);
      expect((await api(planner.url, 'PUT', '/v1/tools/brief', ADD_TOOL)).status).toBe(201);
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) ids.push((await api(planner.url, 'POST', '/v1/calls', { tool: 'brief', arguments: { a: i, b: 1 }, wait: true })).body.id);
      expect((await api(planner.url, 'DELETE', '/v1/tools/brief')).status).toBe(204);
      await expect.poll(() => calls.lifecycle.holdsNothing('brief'), { timeout: 15_000 }).toBe(true);
      await expect.poll(() => registry.deletedNames(), { timeout: 15_000 }).not.toContain('brief');
      for (const [i, id] of ids.entries()) {
        expect((await api(planner.url, 'GET', `/v1/calls/${id}`)).body).toMatchObject({ id, tool: 'brief', status: 'succeeded', result: i + 1 });
      }
    } finally {
      await closeRedis(redis);
    }
  });

  test('a repeated idempotency key after archiving answers the archived call, without a second run', async () => {
    const body = { tool: 'add', arguments: { a: 1, b: 1 }, idempotencyKey: 'once', wait: true };
    const first = await api(planner.url, 'POST', '/v1/calls', body);
    const before = await archived();
    await expect.poll(archived, { timeout: 15_000 }).toBeGreaterThan(before - 1);
    await expect.poll(async () => (await api(planner.url, 'GET', '/v1/tools/add')).body.stats.queue.completed ?? 0, { timeout: 15_000 }).toBe(0);
    const again = await api(planner.url, 'POST', '/v1/calls', body);
    expect(again.body).toMatchObject({ id: first.body.id, status: 'succeeded', result: 2, attempts: 1 });
  });

  test('retention per tenant is set by an admin', async () => {
    expect((await api(planner.url, 'GET', '/v1/tenants/default/retention')).body).toEqual({ tenant: 'default', retentionDays: 30 });
    expect((await api(planner.url, 'PUT', '/v1/tenants/default/retention', { retentionDays: 7 })).body).toEqual({ tenant: 'default', retentionDays: 7 });
    expect((await api(planner.url, 'GET', '/v1/tenants/default/retention')).body.retentionDays).toBe(7);
    expect((await api(planner.url, 'PUT', '/v1/tenants/default/retention', { retentionDays: 0 })).status).toBe(400);
  });
});
