import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import { Agent, createServer, request, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { ToolSpec, silentLogger } from '@toolplane/core';
import { createHttpMetrics, createRegistry, type HttpMetrics } from '@toolplane/metrics';
import {
  ApiKeyStore,
  CallWaiter,
  ToolRegistry,
  closeRedis,
  createCalls,
  createKeys,
  createRedisConnection,
  idempotentCallId,
  waitForRedis,
  type Calls,
  type RedisConnection,
} from '@toolplane/queue';
import { createPlannerApp, type PlannerDeps } from './app.js';
import { PlannerToolGateway } from './run-tools.js';
import { ArgumentValidator } from './validation.js';
import { freshPrefix } from '../../../test/support/redis.js';

// The three ways a call is submitted — POST /v1/calls, MCP tools/call and an agent run's tool
// gateway — against one planner in this process over the run's redis-server (no worker: accepted
// calls stay queued), and a second planner whose Redis is a closed port.
const ADMIN_KEY = 'admin-key-for-submit-paths-0123';
const SCOPES = ['tools:read', 'tools:write', 'calls:read', 'calls:write'] as const;
const ADD = ToolSpec.parse({
  description: 'adds',
  parameters: { type: 'object', properties: { a: { type: 'number' }, b: { type: 'number' } }, required: ['a', 'b'] },
  code: 'export default (x) => x.a + x.b',
});

type Outcome = { code: string; status?: number; id?: string };

type Planner = { base: string; server: Server; gateway: PlannerToolGateway; metrics: HttpMetrics };

async function startPlanner(redis: RedisConnection, subscriber: RedisConnection, prefix: string, maxCallsInFlight: number): Promise<Planner & { calls: Calls; registry: ToolRegistry; waiter: CallWaiter }> {
  const keys = createKeys(prefix);
  const registry = new ToolRegistry(redis, keys);
  const calls = createCalls(redis, keys, { maxCallsInFlight });
  const waiter = new CallWaiter(subscriber, keys);
  const promRegistry = createRegistry();
  const metrics = createHttpMetrics(promRegistry);
  const validator = new ArgumentValidator();
  const deps = {
    redis,
    registry,
    calls,
    waiter,
    validator,
    promRegistry,
    httpMetrics: metrics,
    logger: silentLogger(),
    maxBodyBytes: 1024 * 1024,
    adminKey: ADMIN_KEY,
    apiKeys: new ApiKeyStore(redis, keys),
    keys,
    apiRateLimitPerS: 0,
    maxJsonDepth: 64,
  } as unknown as PlannerDeps;
  const server = createPlannerApp(deps).listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const gateway = new PlannerToolGateway({ registry, calls, waiter, validator, httpMetrics: metrics });
  return { base, server, gateway, metrics, calls, registry, waiter };
}

async function http(base: string, key: string, method: string, path: string, body?: unknown) {
  const res = await fetch(base + path, {
    method,
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${key}` },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : undefined) as any };
}

/** The code each entry point answers with (`OK` when the call was accepted). */
function entryPoints(p: Planner, keyOf: (tenant: string) => string) {
  return {
    async rest(tenant: string, tool: string, args: unknown, extra: Record<string, unknown> = {}): Promise<Outcome> {
      const r = await http(p.base, keyOf(tenant), 'POST', '/v1/calls', { tool, arguments: args, ...extra });
      return r.status === 202 ? { code: 'OK', status: r.status, id: r.body.id } : { code: r.body.error.code, status: r.status };
    },
    async mcp(tenant: string, tool: string, args: unknown, meta?: Record<string, unknown>): Promise<Outcome & { text?: string }> {
      const params = { name: tool, arguments: args, ...(meta ? { _meta: meta } : {}) };
      const r = await http(p.base, keyOf(tenant), 'POST', '/mcp', { jsonrpc: '2.0', id: 1, method: 'tools/call', params });
      if (r.body.error) return { code: r.body.error.data.code };
      const result = r.body.result;
      return result.isError ? { code: result.structuredContent.error.code, text: result.content[0].text } : { code: 'OK' };
    },
    async agent(tenant: string, tool: string, args: unknown, idempotencyKey: string = randomUUID()): Promise<Outcome> {
      const r = await p.gateway.submit({ tool, arguments: args, idempotencyKey, tenant });
      return 'error' in r ? { code: r.error.code } : { code: 'OK', id: r.callId };
    },
  };
}

async function enqueuedCount(metrics: HttpMetrics, tool: string): Promise<number> {
  return (await metrics.enqueued.get()).values.find((v) => v.labels.tool === tool)?.value ?? 0;
}

describe('one submission path: REST, MCP and agent runs answer alike', () => {
  const prefix = freshPrefix('sc');
  let redis: RedisConnection;
  let subscriber: RedisConnection;
  let live: Awaited<ReturnType<typeof startPlanner>>;
  let down: Awaited<ReturnType<typeof startPlanner>>;
  let deadRedis: RedisConnection;
  let deadSubscriber: RedisConnection;
  const apiKeys: Record<string, string> = {};
  const keyOf = (tenant: string) => apiKeys[tenant]!;
  const tools = ['add', 'b-add', 'off', 'pinned', 'full-add'];

  beforeAll(async () => {
    redis = createRedisConnection(inject('redisUrl'), 'client');
    subscriber = createRedisConnection(inject('redisUrl'), 'subscriber');
    await Promise.all([waitForRedis(redis), waitForRedis(subscriber)]);
    // Three calls in flight per tenant: the tenant `full` fills them, everyone else stays below.
    live = await startPlanner(redis, subscriber, prefix, 3);
    await live.waiter.start();
    for (const tenant of ['tenant-a', 'tenant-b', 'full', 'pins']) {
      const created = await http(live.base, ADMIN_KEY, 'POST', '/v1/admin/keys', { name: tenant, tenant, scopes: SCOPES });
      expect(created.status).toBe(201);
      apiKeys[tenant] = created.body.key;
    }
    await live.registry.put('add', ADD, 'tenant-a');
    await live.registry.put('b-add', ADD, 'tenant-b');
    await live.registry.put('off', { ...ADD, enabled: false }, 'tenant-a');
    await live.registry.put('full-add', ADD, 'full');

    // A port nobody listens on: every Redis command fails as it would with Redis down.
    const closed = createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const deadUrl = `redis://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise((r) => closed.close(r));
    deadRedis = createRedisConnection(deadUrl, 'client');
    deadSubscriber = createRedisConnection(deadUrl, 'subscriber');
    deadRedis.on('error', () => {});
    deadSubscriber.on('error', () => {});
    down = await startPlanner(deadRedis, deadSubscriber, prefix, 3);
  });
  afterAll(async () => {
    for (const p of [live, down]) {
      p?.server.closeAllConnections();
      await new Promise((r) => p?.server.close(r));
    }
    for (const tool of tools) {
      await live?.calls.queues.queue(tool).obliterate({ force: true });
      await live?.calls.queues.queue(tool).close();
    }
    deadRedis?.disconnect();
    deadSubscriber?.disconnect();
    await Promise.all([redis, subscriber].map((c) => c && closeRedis(c)));
  });

  test.each([
    { refusal: 'unknown tool', tenant: 'tenant-a', tool: 'nope', args: { a: 1, b: 2 }, code: 'TOOL_NOT_FOUND', status: 404 },
    { refusal: "another tenant's tool", tenant: 'tenant-a', tool: 'b-add', args: { a: 1, b: 2 }, code: 'TOOL_NOT_FOUND', status: 404 },
    { refusal: 'invalid arguments', tenant: 'tenant-a', tool: 'add', args: { a: 'one' }, code: 'INVALID_ARGUMENTS', status: 400 },
    { refusal: 'a tool an operator disabled', tenant: 'tenant-a', tool: 'off', args: { a: 1, b: 2 }, code: 'UNAVAILABLE', status: 503 },
  ])('$refusal: $code from every entry point', async ({ tenant, tool, args, code, status }) => {
    const via = entryPoints(live, keyOf);
    const before = await enqueuedCount(live.metrics, tool);
    expect(await via.rest(tenant, tool, args)).toEqual({ code, status });
    expect((await via.mcp(tenant, tool, args)).code).toBe(code);
    expect(await via.agent(tenant, tool, args)).toEqual({ code });
    expect(await enqueuedCount(live.metrics, tool)).toBe(before);
  });

  test('waiting requests on one kept-alive connection leave no listener behind on its socket', async () => {
    const sockets: Socket[] = [];
    const accepted = (socket: Socket) => sockets.push(socket);
    live.server.on('connection', accepted);
    // One connection of its own, kept alive across the requests.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const body = JSON.stringify({ tool: 'add', arguments: { a: 1, b: 2 }, idempotencyKey: 'kept-alive', wait: 1 });
    const post = () =>
      new Promise<{ status: number; id: string }>((resolve, reject) => {
        const req = request(`${live.base}/v1/calls`, { method: 'POST', agent, headers: { 'content-type': 'application/json', authorization: `Bearer ${keyOf('tenant-a')}` } }, (res) => {
          let text = '';
          res.on('data', (chunk: Buffer) => (text += chunk.toString()));
          res.on('end', () => resolve({ status: res.statusCode!, id: (JSON.parse(text) as { id: string }).id }));
        });
        req.on('error', reject);
        req.end(body);
      });
    let id = '';
    try {
      // One call (a repeated idempotency key), waited on 30 times in a row.
      for (let i = 0; i < 30; i++) {
        const res = await post();
        expect(res.status).toBe(202);
        id = res.id;
      }
      expect(sockets).toHaveLength(1);
      expect(sockets[0]!.listenerCount('close')).toBeLessThan(10);
    } finally {
      live.server.off('connection', accepted);
      agent.destroy();
      // Its slot of the tenant's calls in flight goes back for the tests after this one.
      await http(live.base, keyOf('tenant-a'), 'POST', `/v1/calls/${id}/cancel`, {});
    }
  });

  test('a client that hangs up during a wait ends the wait: its entry in the waiter goes at once', async () => {
    expect(live.waiter.size).toBe(0);
    const body = JSON.stringify({ tool: 'add', arguments: { a: 1, b: 2 }, idempotencyKey: 'hangs-up', wait: 30_000 });
    const req = request(`${live.base}/v1/calls`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${keyOf('tenant-a')}` } });
    req.on('error', () => {});
    req.end(body);
    await expect.poll(() => live.waiter.size, { timeout: 5_000 }).toBe(1);
    req.destroy();
    await expect.poll(() => live.waiter.size, { timeout: 2_000 }).toBe(0);
    const id = idempotentCallId('tenant-a', 'add', 'hangs-up');
    await http(live.base, keyOf('tenant-a'), 'POST', `/v1/calls/${id}/cancel`, {});
  });

  test('a key without calls:write: FORBIDDEN over REST and MCP, nothing enqueued', async () => {
    const created = await http(live.base, ADMIN_KEY, 'POST', '/v1/admin/keys', { name: 'reader', tenant: 'tenant-a', scopes: ['tools:read'] });
    apiKeys.reader = created.body.key;
    const via = entryPoints(live, (t) => (t === 'reader' ? apiKeys.reader! : keyOf(t)));
    const before = await enqueuedCount(live.metrics, 'add');
    expect(await via.rest('reader', 'add', { a: 1, b: 2 })).toEqual({ code: 'FORBIDDEN', status: 403 });
    expect((await via.mcp('reader', 'add', { a: 1, b: 2 })).code).toBe('FORBIDDEN');
    expect(await enqueuedCount(live.metrics, 'add')).toBe(before);
  });

  test("a tenant's ceiling: QUOTA_EXCEEDED from every entry point", async () => {
    const via = entryPoints(live, keyOf);
    expect((await via.rest('full', 'full-add', { a: 1, b: 1 })).code).toBe('OK');
    expect((await via.rest('full', 'full-add', { a: 1, b: 2 }, { idempotencyKey: 'k' })).code).toBe('OK');
    expect((await via.agent('full', 'full-add', { a: 1, b: 2 })).code).toBe('OK');
    expect(await via.rest('full', 'full-add', { a: 1, b: 3 })).toEqual({ code: 'QUOTA_EXCEEDED', status: 429 });
    expect((await via.mcp('full', 'full-add', { a: 1, b: 3 })).code).toBe('QUOTA_EXCEEDED');
    expect(await via.agent('full', 'full-add', { a: 1, b: 3 })).toEqual({ code: 'QUOTA_EXCEEDED' });
    expect(await enqueuedCount(live.metrics, 'full-add')).toBe(3);
  });

  test('Redis down: UNAVAILABLE (503) from every entry point, within a second', async () => {
    const via = entryPoints(down, () => ADMIN_KEY);
    const started = Date.now();
    expect(await via.rest('default', 'add', { a: 1, b: 2 })).toEqual({ code: 'UNAVAILABLE', status: 503 });
    expect((await via.mcp('default', 'add', { a: 1, b: 2 })).code).toBe('UNAVAILABLE');
    expect(await via.agent('default', 'add', { a: 1, b: 2 })).toEqual({ code: 'UNAVAILABLE' });
    // Each path gives up on its own; three in a row stay far below three one-second timeouts each.
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  test('idempotency: a repeated key is the same call on every path, counted once', async () => {
    const via = entryPoints(live, keyOf);
    // REST twice.
    const first = await via.rest('tenant-a', 'add', { a: 1, b: 2 }, { idempotencyKey: 'rest-key' });
    const again = await via.rest('tenant-a', 'add', { a: 1, b: 2 }, { idempotencyKey: 'rest-key' });
    expect(first.code).toBe('OK');
    expect(again.id).toBe(first.id);
    // Agent runs twice with one key.
    const step = await via.agent('tenant-a', 'add', { a: 1, b: 2 }, 'step-key');
    expect(await via.agent('tenant-a', 'add', { a: 1, b: 2 }, 'step-key')).toEqual(step);
    expect(step.id).not.toBe(first.id);
    // The first and the duplicates are one enqueue each.
    const counted = await enqueuedCount(live.metrics, 'add');

    // MCP with the key in `_meta`: the call is held until it ends; cancelling it over REST ends it.
    const id = idempotentCallId('tenant-a', 'add', 'mcp-key');
    const held = via.mcp('tenant-a', 'add', { a: 1, b: 2 }, { 'io.toolplane/idempotencyKey': 'mcp-key' });
    for (let i = 0; i < 200 && (await live.calls.reads.get(id)) === undefined; i++) await new Promise((r) => setTimeout(r, 10));
    expect((await http(live.base, keyOf('tenant-a'), 'POST', `/v1/calls/${id}/cancel`)).body.status).toBe('cancelled');
    const ended = await held;
    expect(ended.code).toBe('CANCELLED');
    expect(ended.text).toContain(id);
    // The same key again over MCP and over REST: the same, already cancelled call.
    const repeat = await via.mcp('tenant-a', 'add', { a: 1, b: 2 }, { 'io.toolplane/idempotencyKey': 'mcp-key' });
    expect([repeat.code, repeat.text?.includes(id)]).toEqual(['CANCELLED', true]);
    expect((await via.rest('tenant-a', 'add', { a: 1, b: 2 }, { idempotencyKey: 'mcp-key' })).id).toBe(id);
    expect(await enqueuedCount(live.metrics, 'add')).toBe(counted + 1);
  });

  test('version pins the schema and the version the call runs; an unknown version is TOOL_NOT_FOUND', async () => {
    const key = keyOf('pins');
    await live.registry.put('pinned', ADD, 'pins');
    const v2 = await live.registry.put('pinned', ToolSpec.parse({ ...ADD, parameters: { type: 'object', properties: { s: { type: 'string' } }, required: ['s'] } }), 'pins');
    expect(v2.tool.version).toBe(2);
    const onV1 = await http(live.base, key, 'POST', '/v1/calls', { tool: 'pinned', arguments: { a: 1, b: 2 }, version: 1 });
    expect(onV1.status).toBe(202);
    expect((await http(live.base, key, 'GET', `/v1/calls/${onV1.body.id}`)).body).toMatchObject({ tool: 'pinned', version: 1 });
    // v1's schema, not the current one's.
    const wrong = await http(live.base, key, 'POST', '/v1/calls', { tool: 'pinned', arguments: { s: 'x' }, version: 1 });
    expect([wrong.status, wrong.body.error.code]).toEqual([400, 'INVALID_ARGUMENTS']);
    const current = await http(live.base, key, 'POST', '/v1/calls', { tool: 'pinned', arguments: { s: 'x' } });
    expect((await http(live.base, key, 'GET', `/v1/calls/${current.body.id}`)).body.version).toBe(2);
    const unknown = await http(live.base, key, 'POST', '/v1/calls', { tool: 'pinned', arguments: { a: 1, b: 2 }, version: 7 });
    expect([unknown.status, unknown.body.error.code]).toEqual([404, 'TOOL_NOT_FOUND']);
    expect(unknown.body.error.message).toContain('no version 7');
    expect(unknown.body.error.details).toEqual({ tool: 'pinned', version: 7, currentVersion: 2 });
    const bad = await http(live.base, key, 'POST', '/v1/calls', { tool: 'pinned', arguments: { a: 1, b: 2 }, version: 0 });
    expect([bad.status, bad.body.error.code]).toEqual([400, 'INVALID_REQUEST']);
  });

  test('callbackUrl is kept on the call record; anything but an absolute http(s) URL of at most 2048 characters is refused', async () => {
    const key = keyOf('tenant-b');
    const url = 'https://hooks.example.com/toolplane?x=1';
    const made = await http(live.base, key, 'POST', '/v1/calls', { tool: 'b-add', arguments: { a: 1, b: 2 }, callbackUrl: url });
    expect(made.status).toBe(202);
    expect((await http(live.base, key, 'GET', `/v1/calls/${made.body.id}`)).body.callbackUrl).toBe(url);
    for (const callbackUrl of ['ftp://hooks.example.com/x', '/relative', 'javascript:alert(1)', `https://hooks.example.com/${'a'.repeat(2030)}`]) {
      const r = await http(live.base, key, 'POST', '/v1/calls', { tool: 'b-add', arguments: { a: 1, b: 2 }, callbackUrl });
      expect([r.status, r.body.error.code, r.body.error.details.issues[0].path]).toEqual([400, 'INVALID_REQUEST', 'callbackUrl']);
    }
  });
});
