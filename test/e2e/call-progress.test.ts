import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, inject, test } from 'vitest';
import { ADD_TOOL, api, startPlanner, startWorker, uniquePrefix, type ServiceProcess } from '../support/services.js';
import { readSse, type SseEvent } from '../support/sse.js';

const ADMIN_KEY = 'admin-key-for-progress-tests-0123456789';

/** Reports four steps, a pause apart, logging before each; one more line after the last. */
export const STEPS_TOOL = {
  description: 'Works in four steps and says how far it is',
  parameters: { type: 'object', properties: { pauseMs: { type: 'number' } }, required: ['pauseMs'] },
  code: `export default async (args, ctx) => {
    for (let i = 1; i <= 4; i++) {
      ctx.log('step ' + i);
      ctx.progress(i / 4, 'step ' + i + ' of 4');
      await new Promise((r) => setTimeout(r, args.pauseMs));
    }
    ctx.log('done');
    return 'ok';
  }`,
  limits: { timeoutMs: 20_000, memoryMb: 32 },
  retries: { attempts: 1, backoffMs: 0 },
};

/**
 * `GET /v1/calls/{id}/events` on real processes: status changes, progress in order with the log
 * lines around it, the final record, resuming with `Last-Event-ID`, tenant walls, and what a tool
 * that reports nothing (or far too much) costs in Redis.
 */
describe('call progress as server-sent events', () => {
  const env = { REDIS_URL: inject('redisUrl'), TOOLPLANE_PREFIX: uniquePrefix() };
  let planner: ServiceProcess;
  let worker: ServiceProcess;
  let redis: Redis;
  const keys: Record<string, string> = {};
  const as = (who: string) => ({ authorization: `Bearer ${who === 'admin' ? ADMIN_KEY : keys[who]}` });
  const call = (who: string, method: string, path: string, body?: unknown) => api(planner.url, method, path, body, as(who));
  const events = (who: string, id: string, opts: { lastEventId?: string; until?: string } = {}) =>
    readSse(`${planner.url}/v1/calls/${id}/events`, { headers: as(who), timeoutMs: 30_000, ...opts });
  const start = async (who: string, tool: string, args: unknown): Promise<string> => {
    const res = await call(who, 'POST', '/v1/calls', { tool, arguments: args });
    expect(res.status).toBe(202);
    return res.body.id as string;
  };

  beforeAll(async () => {
    [planner, worker] = await Promise.all([startPlanner({ ...env, TOOLPLANE_ADMIN_KEY: ADMIN_KEY }), startWorker(env)]);
    redis = new Redis(env.REDIS_URL);
    for (const [name, tenant] of [['a', 'tenant-a'], ['b', 'tenant-b']] as const) {
      const created = await api(planner.url, 'POST', '/v1/admin/keys', { name, tenant, scopes: ['tools:read', 'tools:write', 'calls:read', 'calls:write'] }, as('admin'));
      expect(created.status).toBe(201);
      keys[name] = created.body.key;
    }
    expect((await call('a', 'PUT', '/v1/tools/steps', STEPS_TOOL)).status).toBe(201);
    expect((await call('a', 'PUT', '/v1/tools/add', ADD_TOOL)).status).toBe(201);
  });
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') console.log(`planner output:\n${planner.output()}\nworker output:\n${worker.output()}`);
  });
  afterAll(async () => {
    redis?.disconnect();
    await Promise.all([planner?.kill(), worker?.kill()]);
  });

  test('a running tool: status, then progress in order with its log lines, then the final record; the stream ends', async () => {
    const id = await start('a', 'steps', { pauseMs: 150 });
    const seen = await events('a', id);
    const final = seen.at(-1)!;
    expect(final).toMatchObject({ event: 'status', data: { id, status: 'succeeded', result: 'ok' } });
    expect(seen[0]!.event).toBe('status');
    expect(['queued', 'running']).toContain(seen[0]!.data.status);
    // The status changes it went through, in order, and nothing after the final one.
    const statuses = seen.filter((e) => e.event === 'status').map((e) => e.data.status as string);
    expect(statuses.at(-1)).toBe('succeeded');
    expect(statuses).toContain('running');
    const body = seen.filter((e) => e.event !== 'status');
    expect(body.map((e) => (e.event === 'log' ? e.data.line : e.data.fraction))).toEqual(['step 1', 0.25, 'step 2', 0.5, 'step 3', 0.75, 'step 4', 1, 'done']);
    expect(body.filter((e) => e.event === 'progress').map((e) => e.data)).toEqual([1, 2, 3, 4].map((i) => ({ fraction: i / 4, message: `step ${i} of 4`, attempt: 1 })));
    // Every event that moves the position has an id; the final one says the stream is over.
    expect(seen.filter((e) => e.event !== 'log').every((e) => typeof e.id === 'string')).toBe(true);
    expect(final.id).toMatch(/_end$/);
  });

  test('resumes with Last-Event-ID: what came before is not sent again', async () => {
    const id = await start('a', 'steps', { pauseMs: 300 });
    const first = await events('a', id, { until: 'progress' });
    const firstProgress = first.at(-1)!;
    expect(firstProgress).toMatchObject({ event: 'progress', data: { fraction: 0.25 } });
    const rest = await events('a', id, { lastEventId: firstProgress.id! });
    expect(rest.filter((e) => e.event === 'progress').map((e) => e.data.fraction)).toEqual([0.5, 0.75, 1]);
    expect(rest.filter((e) => e.event === 'log').map((e) => e.data.line)).toEqual(['step 2', 'step 3', 'step 4', 'done']);
    expect(rest.at(-1)).toMatchObject({ event: 'status', data: { status: 'succeeded' } });
    // Resuming after the end only repeats the final status.
    const after = await events('a', id, { lastEventId: rest.at(-1)!.id! });
    expect(after.map((e) => [e.event, e.data.status])).toEqual([['status', 'succeeded']]);
  });

  test('a finished call that reported nothing: its logs and final status; no progress stream was written', async () => {
    const id = await start('a', 'add', { a: 2, b: 3 });
    await api(planner.url, 'GET', `/v1/calls/${id}`, undefined, as('a'));
    const res = await call('a', 'POST', '/v1/calls', { tool: 'add', arguments: { a: 1, b: 1 }, wait: true });
    expect(res.body.status).toBe('succeeded');
    const seen: SseEvent[] = await events('a', res.body.id as string);
    expect(seen.map((e) => e.event)).toEqual(['status', 'status']);
    expect(seen.at(-1)!.data).toMatchObject({ status: 'succeeded', result: 2 });
    // The worker wrote no progress stream for calls of a tool that never calls ctx.progress.
    expect(await redis.keys(`${env.TOOLPLANE_PREFIX}:{add}:progress:*`)).toEqual([]);
  });

  test('another tenant gets 404, as for GET /v1/calls/{id}; a malformed id too', async () => {
    const id = await start('a', 'add', { a: 1, b: 2 });
    const other = await fetch(`${planner.url}/v1/calls/${id}/events`, { headers: as('b') });
    expect(other.status).toBe(404);
    expect((await other.json()).error.code).toBe('NOT_FOUND');
    expect((await call('b', 'GET', `/v1/calls/${id}`)).status).toBe(404);
    const bad = await fetch(`${planner.url}/v1/calls/not-an-id/events`, { headers: as('a') });
    expect(bad.status).toBe(404);
    // A garbage Last-Event-ID starts the stream over instead of failing.
    const seen = await events('a', id, { lastEventId: 'x_y_zzz' });
    expect(seen.at(-1)).toMatchObject({ event: 'status', data: { status: 'succeeded' } });
  });

  test('an MCP client that sends a progress token gets notifications/progress for the same tool, then the result', async () => {
    const client = new Client({ name: 'toolplane-progress-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${planner.url}/mcp`), { requestInit: { headers: as('a') } }));
    try {
      const got: Array<{ progress: number; total?: number; message?: string }> = [];
      const result = await client.callTool({ name: 'steps', arguments: { pauseMs: 150 } }, undefined, { onprogress: (p) => got.push(p) });
      expect(result).toMatchObject({ content: [{ type: 'text', text: 'ok' }] });
      expect(got).toEqual([1, 2, 3, 4].map((i) => ({ progress: i / 4, total: 1, message: `step ${i} of 4` })));
      // Without a token the answer stays plain JSON, with no notifications.
      const plain = await client.callTool({ name: 'add', arguments: { a: 2, b: 2 } });
      expect(plain).toMatchObject({ content: [{ type: 'text', text: '4' }] });
    } finally {
      await client.close();
    }
  });

  test('a tool reporting in a tight loop is bounded: at most ~10 reports a second reach Redis', async () => {
    const loop = {
      ...STEPS_TOOL,
      code: `export default async (args, ctx) => {
        const end = Date.now() + 1000;
        let n = 0;
        while (Date.now() < end) { ctx.progress((n % 100) / 100, 'n' + n); n++; if (n % 10000 === 0) await new Promise((r) => setTimeout(r, 1)); }
        ctx.progress(1, 'last');
        await new Promise((r) => setTimeout(r, 150));
        return n;
      }`,
    };
    expect((await call('a', 'PUT', '/v1/tools/loop', loop)).status).toBe(201);
    const id = await start('a', 'loop', { pauseMs: 0 });
    const seen = await events('a', id);
    expect(seen.at(-1)!.data.result).toBeGreaterThan(10_000);
    const progress = seen.filter((e) => e.event === 'progress');
    expect(progress.length).toBeGreaterThanOrEqual(2);
    expect(progress.length).toBeLessThanOrEqual(13);
    expect(progress.at(-1)!.data).toMatchObject({ fraction: 1, message: 'last' });
    const stream = `${env.TOOLPLANE_PREFIX}:{loop}:progress:${id}`;
    expect(await redis.xlen(stream)).toBe(progress.length);
    // It expires after the call: the tool's timeout plus the retention, at most.
    const ttl = await redis.pttl(stream);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(20_000 + 600_000);
  });
});
