import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { EventEmitter, once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ToolSpec, newCallId, silentLogger } from '@toolplane/core';
import { createHttpMetrics, createRegistry } from '@toolplane/metrics';
import {
  ApiKeyStore,
  CallGate,
  CallWaiter,
  SecretStore,
  ToolRegistry,
  UpstreamStore,
  closeRedis,
  createCalls,
  createKeys,
  createRedisConnection,
  waitForRedis,
  watchToolChanges,
  type Calls,
  type RedisConnection,
} from '@toolplane/queue';
import { RunEventFeed, RunStore, createAgentKeys, type RunRecord } from '@toolplane/agent';
import { createPlannerApp, type PlannerDeps, type PlannerEvents } from './app.js';
import { ArgumentValidator } from './validation.js';
import { freshPrefix } from '../../../test/support/redis.js';

// The planner's HTTP API in this process over the run's shared redis-server: each surface a tenant
// reaches, probed by tenant B against tenant A. No worker is needed: calls stay queued or pending.
const ADMIN_KEY = 'admin-key-for-tenant-walls-0123';
const TENANT_SCOPES = ['tools:read', 'tools:write', 'calls:read', 'calls:write', 'calls:approve', 'runs:read', 'runs:write'] as const;
const SPEC = ToolSpec.parse({ description: 'echoes', parameters: { type: 'object' }, code: 'export default (a) => a' });

describe('tenant B against tenant A, surface by surface', () => {
  const prefix = freshPrefix('tw');
  const keys = createKeys(prefix);
  const agentKeys = createAgentKeys(prefix);
  const closing = new AbortController();
  let redis: RedisConnection;
  let subscriber: RedisConnection;
  let registry: ToolRegistry;
  let calls: Calls;
  let runStore: RunStore;
  let server: Server;
  let base: string;
  const apiKeys: Record<string, string> = {};

  const as = (who: string) => ({ authorization: `Bearer ${who === 'admin' ? ADMIN_KEY : apiKeys[who]}` });
  async function call(who: string, method: string, path: string, body?: unknown) {
    const res = await fetch(base + path, {
      method,
      headers: { 'content-type': 'application/json', ...as(who) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : undefined) as any };
  }
  async function mcp(who: string, method: string, params: Record<string, unknown> = {}) {
    const res = await fetch(`${base}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...as(who) },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    });
    return (await res.json()) as any;
  }

  beforeAll(async () => {
    redis = createRedisConnection(inject('redisUrl'), 'client');
    subscriber = createRedisConnection(inject('redisUrl'), 'subscriber');
    await Promise.all([waitForRedis(redis), waitForRedis(subscriber)]);
    registry = new ToolRegistry(redis, keys);
    calls = createCalls(redis, keys);
    const waiter = new CallWaiter(subscriber, keys);
    await waiter.start();
    const events = new EventEmitter<PlannerEvents>();
    await watchToolChanges(subscriber, keys, (tool) => events.emit('toolsChanged', tool));
    runStore = new RunStore(redis, agentKeys, 60_000);
    const feed = new RunEventFeed(subscriber, agentKeys, runStore);
    await feed.start();
    const promRegistry = createRegistry();
    const deps = {
      redis,
      registry,
      secrets: new SecretStore(redis, keys),
      calls,
      gate: new CallGate(redis, keys),
      waiter,
      validator: new ArgumentValidator(),
      codeChecker: { check: () => Promise.resolve({ ok: true }) },
      promRegistry,
      httpMetrics: createHttpMetrics(promRegistry),
      logger: silentLogger(),
      maxBodyBytes: 1024 * 1024,
      adminKey: ADMIN_KEY,
      apiKeys: new ApiKeyStore(redis, keys),
      keys,
      apiRateLimitPerS: 0,
      maxJsonDepth: 64,
      runs: { store: runStore, feed, manager: undefined, closing: closing.signal },
      upstreams: new UpstreamStore(redis, keys),
      events,
    } as unknown as PlannerDeps;
    server = createPlannerApp(deps).listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    for (const [name, tenant] of [['a', 'tenant-a'], ['b', 'tenant-b']] as const) {
      const created = await call('admin', 'POST', '/v1/admin/keys', { name, tenant, scopes: TENANT_SCOPES });
      expect(created.status).toBe(201);
      apiKeys[name] = created.body.key;
    }
    await registry.put('a-echo', SPEC, 'tenant-a');
    await registry.put('a-held', { ...SPEC, requiresApproval: true }, 'tenant-a');
    await registry.put('b-echo', SPEC, 'tenant-b');
  });
  afterAll(async () => {
    closing.abort();
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
    for (const tool of ['a-echo', 'a-held', 'b-echo']) {
      await calls?.queues.queue(tool).obliterate({ force: true });
      await calls?.queues.queue(tool).close();
    }
    await Promise.all([redis, subscriber].map((c) => c && closeRedis(c)));
  });

  test("listing and audit: B's listing holds none of A's calls, B may not name A, an admin lists one tenant at a time", async () => {
    const own = await call('a', 'POST', '/v1/calls', { tool: 'a-echo', arguments: { n: 1 } });
    expect(own.status).toBe(202);
    expect((await call('b', 'POST', '/v1/calls', { tool: 'b-echo', arguments: {} })).status).toBe(202);

    const ids = (r: { body: { calls: Array<{ id: string }> } }) => r.body.calls.map((c) => c.id);
    expect(ids(await call('b', 'GET', '/v1/calls'))).not.toContain(own.body.id);
    expect(ids(await call('b', 'GET', '/v1/calls?tool=a-echo'))).toEqual([]);
    const named = await call('b', 'GET', '/v1/calls?tenant=tenant-a');
    expect([named.status, named.body.error.code]).toEqual([403, 'FORBIDDEN']);
    expect(ids(await call('a', 'GET', '/v1/calls'))).toEqual([own.body.id]);
    expect(ids(await call('a', 'GET', '/v1/calls?tenant=tenant-a'))).toEqual([own.body.id]);
    // An admin key lists its own tenant unless it names another.
    expect(ids(await call('admin', 'GET', '/v1/calls'))).toEqual([]);
    expect(ids(await call('admin', 'GET', '/v1/calls?tenant=tenant-a'))).toEqual([own.body.id]);
  });

  test("approvals: B can neither see, approve, reject nor cancel A's call awaiting approval", async () => {
    const held = await call('a', 'POST', '/v1/calls', { tool: 'a-held', arguments: { pay: 100 } });
    expect(held.status).toBe(202);
    for (const action of ['approve', 'reject', 'cancel', 'retry']) {
      expect((await call('b', 'POST', `/v1/calls/${held.body.id}/${action}`, {})).status, action).toBe(404);
    }
    expect((await call('b', 'GET', `/v1/calls/${held.body.id}`)).status).toBe(404);
    expect((await call('a', 'GET', `/v1/calls/${held.body.id}`)).body.status).toBe('awaiting_approval');
    expect((await call('a', 'POST', `/v1/calls/${held.body.id}/approve`, {})).body.status).toBe('queued');
  });

  test("MCP: B's tools/list has none of A's tools, B cannot call them, and B's stream hears nothing of A's changes", async () => {
    const listed = await mcp('b', 'tools/list');
    expect(listed.result.tools.map((t: { name: string }) => t.name)).toEqual(['b-echo']);
    const called = await mcp('b', 'tools/call', { name: 'a-echo', arguments: {} });
    expect(called.error).toMatchObject({ message: expect.stringContaining('TOOL_NOT_FOUND') as string, data: { code: 'TOOL_NOT_FOUND' } });

    const streams = { a: await openStream('a'), b: await openStream('b') };
    try {
      // B's own registration in the set-up may still be on its way under load: only what comes after A's change counts.
      await new Promise((r) => setTimeout(r, 300));
      const bBefore = streams.b.text().length;
      await registry.put('a-new', SPEC, 'tenant-a');
      await expect.poll(() => streams.a.text(), { timeout: 5_000 }).toContain('notifications/tools/list_changed');
      // A notice goes to every stream it is for in one loop: had B's been sent, it would be here by now.
      await new Promise((r) => setTimeout(r, 300));
      expect(streams.b.text().slice(bBefore)).not.toContain('notifications/tools/list_changed');
      // B's own change does reach B: its stream works.
      await registry.put('b-new', SPEC, 'tenant-b');
      await expect.poll(() => streams.b.text(), { timeout: 5_000 }).toContain('notifications/tools/list_changed');
    } finally {
      streams.a.close();
      streams.b.close();
      await registry.delete('a-new');
      await registry.delete('b-new');
    }
  });

  test("runs: B gets 404 for A's run and its events", async () => {
    const id = newCallId();
    const run = {
      id,
      tenant: 'tenant-a',
      status: 'succeeded',
      input: 'secret plans',
      model: 'm',
      protocol: 'tools',
      maxIterations: 5,
      budget: {},
      createdAt: new Date().toISOString(),
      updatedAt: new Date().toISOString(),
      steps: [],
      finalAnswer: 'the plans',
      usage: { promptTokens: 0, completionTokens: 0, totalTokens: 0, costUsd: 0, modelCalls: 0 },
      messages: [],
    } as unknown as RunRecord;
    expect(await runStore.claim(id, 'test', 10_000)).toBe(true);
    expect(await runStore.save(run, 'test', [{ type: 'status', status: 'succeeded' }], true)).toBe(true);
    expect((await call('b', 'GET', `/v1/runs/${id}`)).status).toBe(404);
    expect((await call('b', 'GET', `/v1/runs/${id}/events`)).status).toBe(404);
    expect((await call('a', 'GET', `/v1/runs/${id}`)).body).toMatchObject({ id, finalAnswer: 'the plans' });
  });

  /** An MCP notification stream (GET /mcp) as `who`, with everything it has received so far. */
  async function openStream(who: string): Promise<{ text: () => string; close: () => void }> {
    const abort = new AbortController();
    const res = await fetch(`${base}/mcp`, { headers: { accept: 'text/event-stream', ...as(who) }, signal: abort.signal });
    expect(res.status).toBe(200);
    let text = '';
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    void (async () => {
      for (;;) {
        const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }));
        if (done) return;
        text += value;
      }
    })();
    return { text: () => text, close: () => abort.abort() };
  }
});
