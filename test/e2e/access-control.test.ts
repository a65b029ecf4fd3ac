import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { startScriptedModelServer, type ScriptedModelServer } from '@toolplane/agent/testing';
import { ADD_TOOL, api, eventually, startPlanner, startWorker, uniquePrefix, waitForCalls, type ServiceProcess } from '../support/services.js';

const ADMIN_KEY = 'admin-key-for-tests-0123456789';
const METRICS_TOKEN = 'metrics-token-for-tests-0123';
const ALL_TENANT_SCOPES = ['tools:read', 'tools:write', 'calls:read', 'calls:write', 'calls:approve', 'runs:read', 'runs:write', 'secrets:write'];

describe('API keys, scopes and tenants', () => {
  const env = { REDIS_URL: inject('redisUrl'), TOOLPLANE_PREFIX: uniquePrefix() };
  let planner: ServiceProcess;
  let worker: ServiceProcess;
  let llm: ScriptedModelServer;
  const keys: Record<string, string> = {};
  const as = (who: string) => ({ authorization: `Bearer ${who === 'admin' ? ADMIN_KEY : keys[who]}` });
  const call = (who: string, method: string, path: string, body?: unknown) => api(planner.url, method, path, body, as(who));

  beforeAll(async () => {
    llm = await startScriptedModelServer();
    [planner, worker] = await Promise.all([
      startPlanner({
        ...env,
        TOOLPLANE_ADMIN_KEY: ADMIN_KEY,
        TOOLPLANE_METRICS_TOKEN: METRICS_TOKEN,
        API_RATE_LIMIT_PER_S: '30',
        OPENAI_BASE_URL: llm.baseUrl,
      }),
      startWorker({ ...env, TOOLPLANE_METRICS_TOKEN: METRICS_TOKEN }),
    ]);
    for (const [name, tenant, scopes] of [
      ['a', 'tenant-a', ALL_TENANT_SCOPES],
      ['b', 'tenant-b', ALL_TENANT_SCOPES],
      ['reader', 'tenant-a', ['calls:read', 'tools:read']],
      ['burst', 'tenant-a', ['tools:read']],
    ] as const) {
      const created = await api(planner.url, 'POST', '/v1/admin/keys', { name, tenant, scopes }, as('admin'));
      expect(created.status).toBe(201);
      expect(created.body.key).toMatch(/^tp_/);
      keys[name] = created.body.key;
    }
  });
  afterAll(async () => {
    await Promise.all([planner?.kill(), worker?.kill()]);
    await llm?.close();
  });

  test('requests without a valid key are 401; keys are listed without their secret', async () => {
    expect((await api(planner.url, 'GET', '/v1/tools')).body.error.code).toBe('UNAUTHORIZED');
    expect((await api(planner.url, 'GET', '/v1/tools', undefined, { authorization: 'Bearer tp_0000000000000000_' + 'x'.repeat(43) })).status).toBe(401);
    expect((await api(planner.url, 'GET', '/v1/tools', undefined, { authorization: 'Basic abc' })).status).toBe(401);
    const listed = await call('admin', 'GET', '/v1/admin/keys');
    expect(listed.body.keys).toHaveLength(4);
    expect(JSON.stringify(listed.body)).not.toContain(keys.a!.slice('tp_'.length + 17));
    expect((await call('a', 'GET', '/v1/admin/keys')).status).toBe(403);
    expect((await call('a', 'POST', '/v1/admin/keys', { name: 'x', tenant: 'tenant-a', scopes: ['admin'] })).status).toBe(403);
  });

  test("tenant B cannot read, list, call, replace or delete tenant A's tools, calls or runs", async () => {
    expect((await call('a', 'PUT', '/v1/tools/a-add', ADD_TOOL)).status).toBe(201);
    const own = await call('a', 'POST', '/v1/calls', { tool: 'a-add', arguments: { a: 1, b: 2 }, wait: 10_000 });
    expect(own.body).toMatchObject({ status: 'succeeded', result: 3, tenant: 'tenant-a' });

    expect((await call('b', 'GET', '/v1/tools')).body.tools.map((t: { name: string }) => t.name)).not.toContain('a-add');
    expect((await call('b', 'GET', '/v1/tools?format=openai')).body).toEqual([]);
    expect((await call('b', 'GET', '/v1/tools/a-add')).status).toBe(404);
    expect((await call('b', 'POST', '/v1/calls', { tool: 'a-add', arguments: { a: 1, b: 2 } })).body.error.code).toBe('TOOL_NOT_FOUND');
    expect((await call('b', 'PUT', '/v1/tools/a-add', ADD_TOOL)).status).toBe(403);
    expect((await call('b', 'DELETE', '/v1/tools/a-add')).status).toBe(404);
    expect((await call('b', 'GET', `/v1/calls/${own.body.id}`)).status).toBe(404);
    expect((await call('b', 'POST', `/v1/calls/${own.body.id}/cancel`)).status).toBe(404);
    expect((await call('b', 'POST', `/v1/calls/${own.body.id}/retry`)).status).toBe(404);
    expect((await call('b', 'GET', '/v1/calls?tool=a-add')).body.calls).toEqual([]);
    expect((await call('b', 'GET', '/v1/calls')).body.calls).toEqual([]);

    llm.script('tenant-run', [{ content: 'nothing to do' }]);
    const run = await call('a', 'POST', '/v1/runs', { input: 'hi', model: 'tenant-run' });
    expect(run.status).toBe(201);
    expect((await call('b', 'GET', `/v1/runs/${run.body.id}`)).status).toBe(404);
    expect((await call('b', 'GET', `/v1/runs/${run.body.id}/events`)).status).toBe(404);
    expect((await call('a', 'GET', `/v1/runs/${run.body.id}`)).status).toBe(200);

    // The owner and the admin still see everything of A.
    expect((await call('a', 'GET', '/v1/calls?tool=a-add')).body.calls.map((c: { id: string }) => c.id)).toContain(own.body.id);
    expect((await call('admin', 'GET', `/v1/calls/${own.body.id}`)).status).toBe(200);
  });

  test('a run only sees and calls the tools of its own tenant', async () => {
    expect((await call('b', 'PUT', '/v1/tools/b-add', ADD_TOOL)).status).toBe(201);
    llm.script('cross-tenant', [{ toolCalls: [{ id: 'x', name: 'a-add', arguments: { a: 1, b: 1 } }] }, { content: 'done' }]);
    const run = await call('b', 'POST', '/v1/runs', { input: 'use a-add', model: 'cross-tenant', tools: ['a-add'] });
    expect([run.status, run.body.error?.code]).toEqual([404, 'TOOL_NOT_FOUND']);
  });

  test('scopes limit what a key may do', async () => {
    const denied = await call('reader', 'POST', '/v1/calls', { tool: 'a-add', arguments: { a: 1, b: 2 } });
    expect([denied.status, denied.body.error.code]).toEqual([403, 'FORBIDDEN']);
    expect((await call('reader', 'PUT', '/v1/tools/x', ADD_TOOL)).status).toBe(403);
    expect((await call('reader', 'GET', '/v1/tools/a-add')).status).toBe(200);
  });

  test('secrets belong to their tenant: a tool of B never gets A-s secret of the same name', async () => {
    expect((await call('a', 'PUT', '/v1/secrets/TOKEN', { value: 'value-of-tenant-a-1234' })).status).toBe(201);
    const reveal = { description: 'reveals', parameters: { type: 'object' }, code: 'export default (a, ctx) => ctx.secrets.TOKEN ?? null', secrets: ['TOKEN'] };
    expect((await call('b', 'PUT', '/v1/tools/b-reveal', reveal)).status).toBe(201);
    const res = await call('b', 'POST', '/v1/calls', { tool: 'b-reveal', arguments: {}, wait: 10_000 });
    expect(res.body).toMatchObject({ status: 'succeeded', result: null });
    expect((await call('b', 'GET', '/v1/secrets')).body.secrets).toEqual([]);
    expect((await call('a', 'GET', '/v1/secrets')).body.secrets).toEqual([{ name: 'TOKEN' }]);
  });

  test('/metrics needs the metrics token or an admin; /healthz stays open', async () => {
    expect((await api(planner.url, 'GET', '/metrics')).status).toBe(401);
    expect((await call('a', 'GET', '/metrics')).status).toBe(403);
    const withToken = await fetch(`${planner.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(withToken.status).toBe(200);
    expect(await withToken.text()).toContain('toolplane_http_requests_total');
    expect((await fetch(`${planner.url}/metrics`, { headers: as('admin') })).status).toBe(200);
    expect((await api(planner.url, 'GET', '/healthz')).status).toBe(200);
    // Workers honour the same token on their ops port; probes stay open for the orchestrator.
    expect((await fetch(`${worker.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${worker.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).status).toBe(200);
    expect((await fetch(`${worker.url}/readyz`)).status).toBe(200);
  });

  test('bodies must be JSON: other media types get 415 UNSUPPORTED_MEDIA_TYPE, bodiless requests pass', async () => {
    const body = JSON.stringify({ tool: 'a-add', arguments: { a: 1, b: 2 }, wait: 10_000 });
    const post = (headers: Record<string, string>, payload: string | undefined = body) =>
      fetch(`${planner.url}/v1/calls`, { method: 'POST', headers: { ...as('a'), ...headers }, ...(payload === undefined ? {} : { body: payload }) });
    // What a page of another site can send without a CORS preflight; fetch sends text/plain for a bare string.
    for (const type of ['text/plain', 'text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', undefined]) {
      const res = await post(type ? { 'content-type': type } : {});
      expect([type, res.status, ((await res.json()) as any).error.code]).toEqual([type, 415, 'UNSUPPORTED_MEDIA_TYPE']);
    }
    for (const type of ['application/json', 'application/json; charset=utf-8', 'application/vnd.toolplane+json']) {
      const res = await post({ 'content-type': type });
      expect([type, res.status]).toEqual([type, 200]);
    }
    // No body, whatever the declared type: nothing to parse, nothing refused.
    const own = await call('a', 'POST', '/v1/calls', { tool: 'a-add', arguments: { a: 1, b: 2 } });
    const cancel = await fetch(`${planner.url}/v1/calls/${own.body.id}/cancel`, { method: 'POST', headers: { ...as('a'), 'content-type': 'text/plain' } });
    expect(cancel.status).not.toBe(415);
  });

  test('/admin/queues refuses cross-origin sign-ins and state changes with 403; same-origin and scripts pass', async () => {
    const admin = (path: string, init: RequestInit = {}) => fetch(`${planner.url}/admin/queues${path}`, { redirect: 'manual', ...init });
    const refused = async (res: Response) => [res.status, ((await res.json()) as any).error?.code];
    // A link or form on another site that signs the browser in with the key.
    expect(await refused(await admin(`?key=${ADMIN_KEY}`, { headers: { 'sec-fetch-site': 'cross-site' } }))).toEqual([403, 'FORBIDDEN']);
    expect(await refused(await admin(`?key=${ADMIN_KEY}`, { headers: { 'sec-fetch-site': 'same-site' } }))).toEqual([403, 'FORBIDDEN']);
    expect(await refused(await admin(`?key=${ADMIN_KEY}`, { headers: { origin: 'https://evil.example' } }))).toEqual([403, 'FORBIDDEN']);
    expect(await refused(await admin(`?key=${ADMIN_KEY}`, { headers: { referer: 'https://evil.example/x' } }))).toEqual([403, 'FORBIDDEN']);
    // Typed into the address bar, or from the board itself; and curl, which sends none of these.
    expect((await admin(`?key=${ADMIN_KEY}`, { headers: { 'sec-fetch-site': 'none' } })).status).toBe(303);
    expect((await admin(`?key=${ADMIN_KEY}`, { headers: { 'sec-fetch-site': 'same-origin', referer: `${planner.url}/admin/queues` } })).status).toBe(303);
    expect((await admin(`?key=${ADMIN_KEY}`)).status).toBe(303);
    // State changes from another origin are refused even with the key.
    const pause = (headers: Record<string, string>) =>
      admin('/api/queues/%7Ba-add%7D/pause', { method: 'PUT', headers: { authorization: `Bearer ${ADMIN_KEY}`, ...headers } });
    expect(await refused(await pause({ origin: 'https://evil.example' }))).toEqual([403, 'FORBIDDEN']);
    expect(await refused(await pause({ 'sec-fetch-site': 'cross-site' }))).toEqual([403, 'FORBIDDEN']);
    expect((await pause({ origin: planner.url })).status).not.toBe(403);
    expect((await pause({})).status).not.toBe(403);
  });

  test('per-key request rate limit, security headers, JSON depth limit', async () => {
    // 30 per sliding second: 100 at once cannot all pass, even spread over two seconds on a loaded machine.
    const burst = await Promise.all(Array.from({ length: 100 }, () => call('burst', 'GET', '/v1/tools')));
    const limited = burst.filter((r) => r.status === 429);
    expect(limited.length).toBeGreaterThan(0);
    expect(limited[0]!.body.error.code).toBe('RATE_LIMITED');
    expect(limited[0]!.headers.get('retry-after')).toBe('1');
    // Other keys are not affected by one key's burst.
    expect((await call('a', 'GET', '/v1/tools')).status).toBe(200);

    const res = await call('a', 'GET', '/v1/tools');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('x-powered-by')).toBeNull();
    let deep: unknown = 1;
    for (let i = 0; i < 200; i++) deep = [deep];
    const tooDeep = await call('a', 'POST', '/v1/calls', { tool: 'a-add', arguments: { a: 1, b: 2, deep } });
    expect([tooDeep.status, tooDeep.body.error.code]).toEqual([400, 'INVALID_REQUEST']);
  });
});

describe('API keys never appear in the logs, at any log level', () => {
  const env = { REDIS_URL: inject('redisUrl'), TOOLPLANE_PREFIX: uniquePrefix() };
  const WRONG_KEY = 'wrong-admin-key-never-valid-42';
  let planner: ServiceProcess;
  let worker: ServiceProcess;

  beforeAll(async () => {
    [planner, worker] = await Promise.all([
      startPlanner({ ...env, TOOLPLANE_ADMIN_KEY: ADMIN_KEY, TOOLPLANE_METRICS_TOKEN: METRICS_TOKEN, LOG_LEVEL: 'trace' }),
      startWorker({ ...env, TOOLPLANE_METRICS_TOKEN: METRICS_TOKEN, LOG_LEVEL: 'trace' }),
    ]);
  });
  afterAll(async () => {
    await Promise.all([planner?.kill(), worker?.kill()]);
  });

  test('every way a key is sent or shown is logged, without the key', async () => {
    const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
    let requests = 0;
    const send = async (path: string, init: RequestInit = {}) => {
      requests++;
      const res = await fetch(planner.url + path, { redirect: 'manual', ...init });
      return { status: res.status, text: await res.text() };
    };
    const json = (method: string, body: unknown, key: string) => ({
      method,
      headers: { ...bearer(key), 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    // A key is created (its response shows it once), used, refused when wrong, and revoked.
    const created = JSON.parse((await send('/v1/admin/keys', json('POST', { name: 'logged', tenant: 'tenant-l', scopes: ['tools:read', 'tools:write', 'calls:write', 'calls:read'] }, ADMIN_KEY))).text);
    const key = created.key as string;
    expect(key).toMatch(/^tp_/);
    expect((await send('/v1/tools/l-add', json('PUT', ADD_TOOL, key))).status).toBe(201);
    const done = JSON.parse((await send('/v1/calls', json('POST', { tool: 'l-add', arguments: { a: 1, b: 2 }, wait: 10_000 }, key))).text);
    expect(done).toMatchObject({ status: 'succeeded', result: 3 });
    expect((await send('/v1/tools', { headers: bearer(`${key}x`) })).status).toBe(401);
    expect((await send('/v1/tools', { headers: bearer(WRONG_KEY) })).status).toBe(401);
    expect((await send('/mcp', json('POST', { jsonrpc: '2.0', id: 1, method: 'tools/list' }, key))).status).toBeLessThan(500);
    // The dashboard: `?key=` in the query (right and wrong), and Bearer.
    expect((await send(`/admin/queues?key=${ADMIN_KEY}`)).status).toBe(303);
    expect((await send(`/admin/queues?key=${WRONG_KEY}`)).status).toBe(401);
    expect((await send('/admin/queues/api/queues', { headers: bearer(ADMIN_KEY) })).status).toBe(200);
    expect((await send('/metrics', { headers: bearer(METRICS_TOKEN) })).status).toBe(200);
    expect((await fetch(`${worker.url}/metrics`, { headers: bearer(METRICS_TOKEN) })).status).toBe(200);
    expect((await send(`/v1/admin/keys/${created.id}`, { method: 'DELETE', headers: bearer(ADMIN_KEY) })).status).toBeLessThan(300);
    expect((await send('/v1/tools', { headers: bearer(key) })).status).toBe(401);

    // Logging did happen: one line per request on the planner, the call's line on the worker.
    const finished = () => planner.output().split('\n').filter((l) => l.includes('"msg":"request finished"')).length;
    await eventually(async () => (finished() >= requests ? true : undefined), 10_000, 50);
    await eventually(async () => (worker.output().includes('"msg":"tool call succeeded"') ? true : undefined), 10_000, 50);
    // output() keeps the last 20 kB; the check below must have seen everything.
    expect(planner.output().length).toBeLessThan(19_000);
    const secret = key.slice('tp_'.length + 17);
    for (const [name, value] of Object.entries({ ADMIN_KEY, METRICS_TOKEN, key, secret, WRONG_KEY })) {
      expect(planner.output().includes(value), `planner logged ${name}`).toBe(false);
      expect(worker.output().includes(value), `worker logged ${name}`).toBe(false);
    }
  });
});
