import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { ADD_TOOL, api, eventually, startPlanner, startWorker, uniquePrefix, type ServiceProcess } from '../support/services.js';

const ADMIN_KEY = 'schedules-admin-key-0123456789';

describe('schedules', () => {
  const env = { REDIS_URL: inject('redisUrl'), TOOLPLANE_PREFIX: uniquePrefix(), TOOLPLANE_ADMIN_KEY: ADMIN_KEY };
  let planner: ServiceProcess;
  let worker: ServiceProcess;
  const keys: Record<'a' | 'b' | 'readOnly', string> = { a: '', b: '', readOnly: '' };
  const as = (key: string) => ({ authorization: `Bearer ${key}` });
  const callsOf = async (key: string, tool: string) => (await api(planner.url, 'GET', `/v1/calls?tool=${tool}&limit=100`, undefined, as(key))).body.calls as any[];

  beforeAll(async () => {
    [planner, worker] = await Promise.all([startPlanner(env), startWorker(env)]);
    const mint = async (tenant: string, scopes: string[]) =>
      (await api(planner.url, 'POST', '/v1/admin/keys', { name: `${tenant}-key`, tenant, scopes }, as(ADMIN_KEY))).body.key as string;
    keys.a = await mint('tenant-a', ['tools:write', 'tools:read', 'calls:read', 'calls:write', 'schedules:read', 'schedules:write']);
    keys.b = await mint('tenant-b', ['tools:write', 'calls:read', 'schedules:read', 'schedules:write']);
    keys.readOnly = await mint('tenant-a', ['calls:write', 'schedules:read']);
    expect((await api(planner.url, 'PUT', '/v1/tools/add', ADD_TOOL, as(keys.a))).status).toBe(201);
  });
  afterAll(async () => {
    await Promise.all([planner?.kill(), worker?.kill()]);
  });

  test('everyMs 1000 makes an ordinary call each second (3 in ~3 s) and stops when deleted', async () => {
    const put = await api(planner.url, 'PUT', '/v1/schedules/tick', { tool: 'add', arguments: { a: 20, b: 22 }, everyMs: 1_000 }, as(keys.a));
    expect(put.status, JSON.stringify(put.body)).toBe(201);
    expect(put.body).toMatchObject({ name: 'tick', tool: 'add', arguments: { a: 20, b: 22 }, everyMs: 1_000 });
    const calls = await eventually(async () => {
      const c = await callsOf(keys.a, 'add');
      return c.length >= 3 ? c : undefined;
    }, 8_000, 100);
    // Ordinary calls of the tenant: in its audit trail, run by a worker, a second apart.
    const three = calls.slice(-3).reverse();
    for (const c of three) expect(c).toMatchObject({ tool: 'add', tenant: 'tenant-a' });
    const done = await eventually(async () => {
      const all = await Promise.all(three.map(async (c) => (await api(planner.url, 'GET', `/v1/calls/${c.id}`, undefined, as(keys.a))).body));
      return all.every((c) => c.status === 'succeeded') ? all : undefined;
    }, 5_000, 100);
    expect(done.map((c) => c.result)).toEqual([42, 42, 42]);
    // Due a second apart; each call is made when a planner takes its firing, so a loaded machine
    // shifts one by a fraction of a second, never the three into one burst.
    expect(Date.parse(three[2].createdAt) - Date.parse(three[0].createdAt)).toBeGreaterThanOrEqual(1_000);

    const shown = (await api(planner.url, 'GET', '/v1/schedules/tick', undefined, as(keys.a))).body;
    expect(shown.lastRun.callId).toMatch(/^\S+$/);
    expect(Date.parse(shown.nextRunAt)).toBeGreaterThan(Date.now() - 1_000);
    expect((await api(planner.url, 'GET', '/v1/schedules', undefined, as(keys.a))).body.schedules.map((s: { name: string }) => s.name)).toEqual(['tick']);
    // On the planner's metrics like any call.
    const metrics = await (await fetch(`${planner.url}/metrics`, { headers: as(ADMIN_KEY) })).text();
    expect(metrics).toMatch(/toolplane_calls_enqueued_total\{tool="add"\} [3-9]/);

    expect((await api(planner.url, 'DELETE', '/v1/schedules/tick', undefined, as(keys.a))).status).toBe(204);
    // A firing already handed to a runner may still land; after that, nothing more.
    await new Promise((r) => setTimeout(r, 500));
    const after = (await callsOf(keys.a, 'add')).length;
    await new Promise((r) => setTimeout(r, 2_500));
    expect((await callsOf(keys.a, 'add')).length).toBe(after);
    expect((await api(planner.url, 'GET', '/v1/schedules/tick', undefined, as(keys.a))).status).toBe(404);
  });

  test('a schedule is its tenant’s: another tenant gets 404 and cannot schedule its tools', async () => {
    expect((await api(planner.url, 'PUT', '/v1/schedules/hourly', { tool: 'add', arguments: { a: 1, b: 2 }, cron: '0 * * * *', timezone: 'Europe/Paris' }, as(keys.a))).status).toBe(201);
    expect((await api(planner.url, 'GET', '/v1/schedules/hourly', undefined, as(keys.b))).status).toBe(404);
    expect((await api(planner.url, 'DELETE', '/v1/schedules/hourly', undefined, as(keys.b))).status).toBe(404);
    expect((await api(planner.url, 'GET', '/v1/schedules', undefined, as(keys.b))).body.schedules).toEqual([]);
    const stolen = await api(planner.url, 'PUT', '/v1/schedules/hourly', { tool: 'add', arguments: { a: 1, b: 2 }, everyMs: 60_000 }, as(keys.b));
    expect(stolen.status).toBe(404);
    expect(stolen.body.error.code).toBe('TOOL_NOT_FOUND');
    // Still tenant a's, unchanged.
    expect((await api(planner.url, 'GET', '/v1/schedules/hourly', undefined, as(keys.a))).body).toMatchObject({ cron: '0 * * * *', timezone: 'Europe/Paris' });
    expect((await api(planner.url, 'DELETE', '/v1/schedules/hourly', undefined, as(keys.a))).status).toBe(204);
  });

  test('bad schedules get clear errors with stable codes; scopes are checked', async () => {
    const put = (body: unknown, name = 'bad', key = keys.a) => api(planner.url, 'PUT', `/v1/schedules/${name}`, body, as(key));
    const cases: Array<[unknown, number, string]> = [
      [{ tool: 'add', arguments: { a: 1, b: 'x' }, everyMs: 1_000 }, 400, 'INVALID_ARGUMENTS'],
      [{ tool: 'nope', arguments: {}, everyMs: 1_000 }, 404, 'TOOL_NOT_FOUND'],
      [{ tool: 'add', arguments: { a: 1, b: 2 } }, 400, 'INVALID_REQUEST'],
      [{ tool: 'add', arguments: { a: 1, b: 2 }, everyMs: 10 }, 400, 'INVALID_REQUEST'],
      [{ tool: 'add', arguments: { a: 1, b: 2 }, cron: 'whenever you like' }, 400, 'INVALID_REQUEST'],
      [{ tool: 'add', arguments: { a: 1, b: 2 }, cron: '0 * * * *', timezone: 'Nowhere/Else' }, 400, 'INVALID_REQUEST'],
    ];
    for (const [body, status, code] of cases) {
      const r = await put(body);
      expect([r.status, r.body.error?.code], JSON.stringify(body)).toEqual([status, code]);
    }
    expect((await put({ tool: 'add', arguments: { a: 1, b: 2 }, everyMs: 1_000 }, 'bad name!')).body.error.code).toBe('INVALID_REQUEST');
    expect((await put({ tool: 'add', arguments: { a: 1, b: 2 }, everyMs: 60_000 }, 'ro', keys.readOnly)).status).toBe(403);
    expect((await api(planner.url, 'GET', '/v1/schedules', undefined, as(keys.readOnly))).status).toBe(200);
    expect((await api(planner.url, 'GET', '/v1/schedules', undefined, as(keys.a))).body.schedules).toEqual([]);
  });
});
