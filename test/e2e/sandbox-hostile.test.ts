import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { ADD_TOOL, api, startPlanner, startWorker, uniquePrefix, type ServiceProcess } from '../support/services.js';

/**
 * Hostile tools through a real planner and worker process: each call ends with its code, the
 * worker stays up and serves the next call, nothing returned carries host data, and secrets are
 * only ever seen by the tools granted them.
 */
describe('hostile tools through a real worker', () => {
  let planner: ServiceProcess;
  let worker: ServiceProcess;
  let upstream: Server;
  let upstreamPort = 0;
  const canary = `canary-${randomBytes(8).toString('hex')}`;
  const secretValue = `sk-${randomBytes(12).toString('hex')}`;
  const env = {
    REDIS_URL: inject('redisUrl'),
    TOOLPLANE_PREFIX: uniquePrefix(),
    TOOLPLANE_SECRETS_KEY: randomBytes(32).toString('hex'),
  };

  const register = (name: string, code: string, extra: Record<string, unknown> = {}) =>
    api(planner.url, 'PUT', `/v1/tools/${name}`, {
      description: name,
      parameters: { type: 'object' },
      code,
      retries: { attempts: 1 },
      ...extra,
    });
  const call = (tool: string, args: unknown = {}) =>
    api(planner.url, 'POST', '/v1/calls', { tool, arguments: args, wait: 20_000 });

  beforeAll(async () => {
    upstream = createServer((req, res) => {
      if (req.url === '/redirect') return void res.writeHead(302, { location: 'http://127.0.0.2:1/' }).end();
      res.end(JSON.stringify({ path: req.url }));
    }).listen(0, '127.0.0.1');
    await new Promise((r) => upstream.once('listening', r));
    upstreamPort = (upstream.address() as AddressInfo).port;
    [planner, worker] = await Promise.all([startPlanner(env), startWorker({ ...env, CANARY_VALUE: canary })]);
    expect((await api(planner.url, 'PUT', '/v1/tools/add', ADD_TOOL)).status).toBe(201);
  });
  afterAll(async () => {
    await Promise.all([planner?.kill(), worker?.kill()]);
    await new Promise((r) => upstream?.close(r));
  });

  const HOSTILE: Array<[string, string, string, Record<string, unknown>?]> = (
  [
    ['loop', 'export default () => { for (;;) {} }', 'TIMEOUT', { limits: { timeoutMs: 200 } }],
    ['cpu', 'export default () => { for (;;) {} }', 'TIMEOUT', { limits: { timeoutMs: 5000, cpuMs: 100 } }],
    ['heap', 'export default () => { const a = []; for (;;) a.push({ i: a.length }) }', 'OUT_OF_MEMORY', { limits: { memoryMb: 16 } }],
    ['big', 'export default () => "x".repeat(4096)', 'RESULT_TOO_LARGE', { limits: { maxResultBytes: 1024 } }],
    ['escape', "export default (a, ctx) => ctx.log.constructor('return process.env')()", 'TOOL_ERROR'],
    ['stack', 'export default () => { Error.prepareStackTrace = (e, s) => s; return new Error().stack }', 'TOOL_ERROR'],
    ['never', 'export default () => new Promise(() => {})', 'TIMEOUT', { limits: { timeoutMs: 200 } }],
    ['loopback', 'export default (a, ctx) => ctx.fetch("http://127.0.0.1:9/")', 'EGRESS_DENIED'],
    ['unlisted', 'export default (a, ctx) => ctx.fetch("http://example.com/")', 'EGRESS_DENIED'],
    ['redirect', 'export default (a, ctx) => ctx.fetch(a.url)', 'EGRESS_DENIED', { egress: ['UPSTREAM'] }],
  ] as Array<[string, string, string, Record<string, unknown>?]>
).map(([name, code, expected, extra]) => [name, expected, code, extra]);

  test.each(HOSTILE)('%s ends with %s and the next call succeeds', async (name, expected, code, extra = {}) => {
    const egress = (extra.egress as string[] | undefined)?.map((e) => (e === 'UPSTREAM' ? `127.0.0.1:${upstreamPort}` : e));
    const put = await register(`h-${name}`, code, { ...extra, ...(egress ? { egress } : {}) });
    expect(put.status, JSON.stringify(put.body)).toBe(201);
    const res = await call(`h-${name}`, { url: `http://127.0.0.1:${upstreamPort}/redirect` });
    expect(res.body, JSON.stringify(res.body)).toMatchObject({ status: 'failed', error: { code: expected } });
    const text = JSON.stringify(res.body);
    for (const leak of [canary, process.cwd(), process.execPath, '/services/worker']) expect(text).not.toContain(leak);
    expect((await call('add', { a: 2, b: 2 })).body).toMatchObject({ status: 'succeeded', result: 4 });
  });

  test('the worker process survived every case', async () => {
    expect(worker.proc.exitCode).toBeNull();
    expect((await api(worker.url, 'GET', '/readyz')).body).toEqual({ ready: true });
  });

  test('secrets: set, listed by name only, seen only by granted tools, never returned', async () => {
    const put = await api(planner.url, 'PUT', '/v1/secrets/API_TOKEN', { value: secretValue });
    expect([put.status, put.body]).toEqual([201, { name: 'API_TOKEN' }]);
    expect((await api(planner.url, 'PUT', '/v1/secrets/OTHER', { value: 'other-secret-value' })).status).toBe(201);
    const again = await api(planner.url, 'PUT', '/v1/secrets/API_TOKEN', { value: secretValue });
    expect(again.status).toBe(200);
    const list = await api(planner.url, 'GET', '/v1/secrets');
    expect(list.body).toEqual({ secrets: [{ name: 'API_TOKEN' }, { name: 'OTHER' }] });

    const bad = await api(planner.url, 'PUT', '/v1/secrets/bad-name', { value: 'x' });
    expect([bad.status, bad.body.error.code]).toEqual([400, 'INVALID_REQUEST']);
    const noValue = await api(planner.url, 'PUT', '/v1/secrets/X', { value: 42 });
    expect([noValue.status, noValue.body.error.code]).toEqual([400, 'INVALID_REQUEST']);

    // Sealed at rest: Redis holds no plain value.
    const redis = new Redis(env.REDIS_URL);
    const raw = await redis.hget(`{${env.TOOLPLANE_PREFIX}}:secrets`, 'default/API_TOKEN');
    await redis.quit();
    expect(raw).toMatch(/^gcm1:/);
    expect(raw).not.toContain(secretValue);

    const reader = 'export default (a, ctx) => { ctx.log("using", ctx.secrets.API_TOKEN); return { names: Object.keys(ctx.secrets), length: ctx.secrets.API_TOKEN.length, echo: ctx.secrets.API_TOKEN } }';
    const granted = await register('granted', reader, { secrets: ['API_TOKEN'] });
    expect(granted.body.secrets).toEqual(['API_TOKEN']);
    const res = await call('granted');
    expect(res.body).toMatchObject({ status: 'succeeded', result: { names: ['API_TOKEN'], length: secretValue.length, echo: '[REDACTED]' } });
    expect(res.body.logs).toEqual(['using [REDACTED]']);

    await register('ungranted', 'export default (a, ctx) => Object.keys(ctx.secrets)');
    expect((await call('ungranted')).body).toMatchObject({ status: 'succeeded', result: [] });

    const thrower = await register('thrower', 'export default (a, ctx) => { throw new Error("key=" + ctx.secrets.API_TOKEN) }', { secrets: ['API_TOKEN'] });
    expect(thrower.status).toBe(201);
    const failed = await call('thrower');
    expect(failed.body).toMatchObject({ status: 'failed', error: { code: 'TOOL_ERROR', message: 'Error: key=[REDACTED]' } });

    for (const path of ['/v1/secrets', '/v1/tools', '/v1/tools/granted', `/v1/calls/${res.body.id}`, '/v1/calls?limit=50']) {
      expect(JSON.stringify((await api(planner.url, 'GET', path)).body)).not.toContain(secretValue);
    }
    expect(planner.output() + worker.output()).not.toContain(secretValue);

    expect((await api(planner.url, 'DELETE', '/v1/secrets/OTHER')).status).toBe(204);
    expect((await api(planner.url, 'DELETE', '/v1/secrets/OTHER')).status).toBe(404);
  });

  test('registration refuses bad code, egress entries, secret names and limits with INVALID_TOOL', async () => {
    const cases: Array<Record<string, unknown>> = [
      { code: 'export default (' },
      { code: 'export const notDefault = () => 1' },
      { code: 'import fs from "node:fs"; export default () => fs' },
      { code: 'Array.prototype.x = 1; export default () => 1' },
      { code: ADD_TOOL.code, egress: ['http://api.example.com/path'] },
      { code: ADD_TOOL.code, egress: ['api.example.com:99999'] },
      { code: ADD_TOOL.code, secrets: ['not-a-name'] },
      { code: ADD_TOOL.code, limits: { timeoutMs: 100, cpuMs: 200 } },
    ];
    for (const extra of cases) {
      const res = await register('refused', extra.code as string, extra);
      expect([res.status, res.body.error?.code], JSON.stringify(extra)).toEqual([400, 'INVALID_TOOL']);
    }
    const ok = await register('egress-ok', ADD_TOOL.code, { egress: ['api.example.com', '*.example.org:8443', '10.0.0.7:8080', '[::1]:80'], limits: { timeoutMs: 1000, cpuMs: 500 } });
    expect(ok.status, JSON.stringify(ok.body)).toBe(201);
  });
});
