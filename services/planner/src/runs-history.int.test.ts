import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { EventEmitter, once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { newCallId, silentLogger } from '@toolplane/core';
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
  type RedisConnection,
} from '@toolplane/queue';
import { RunEventFeed, RunStore, createAgentKeys, type RunEvent, type RunRecord } from '@toolplane/agent';
import { Archiver, type HistoryStore } from '@toolplane/history';
import { storeFactory, type StoreFactory } from '@toolplane/history/testing';
import { createPlannerApp, type PlannerDeps, type PlannerEvents } from './app.js';
import { ArgumentValidator } from './validation.js';
import { freshPrefix } from '../../../test/support/redis.js';

// Agent runs end to end through history: the planner's API in this process over the run's shared
// redis-server and an embedded SQLite history store, with the archiver moving runs as main.ts wires it.
const ADMIN_KEY = 'admin-key-for-runs-history-01234';

function finishedRun(id: string, tenant: string): RunRecord {
  const now = new Date().toISOString();
  return {
    id,
    tenant,
    status: 'succeeded',
    input: 'what is 2 + 3?',
    model: 'm',
    protocol: 'tools',
    maxIterations: 5,
    budget: {},
    createdAt: now,
    updatedAt: now,
    finishedAt: now,
    steps: [],
    finalAnswer: '5',
    usage: { promptTokens: 3, completionTokens: 1, totalTokens: 4, costUsd: 0, modelCalls: 1 },
    messages: [{ role: 'user', content: 'what is 2 + 3?' }],
  };
}

describe('agent runs archived to history (sqlite)', () => {
  const prefix = freshPrefix('rh');
  const keys = createKeys(prefix);
  const agentKeys = createAgentKeys(prefix);
  const closing = new AbortController();
  let redis: RedisConnection;
  let subscriber: RedisConnection;
  let factory: StoreFactory;
  let store: HistoryStore;
  let runStore: RunStore;
  let archiver: Archiver;
  let server: Server;
  let base: string;
  const apiKeys: Record<string, string> = {};

  async function get(who: string, path: string, headers: Record<string, string> = {}) {
    const res = await fetch(base + path, { headers: { authorization: `Bearer ${who === 'admin' ? ADMIN_KEY : apiKeys[who]}`, ...headers } });
    return { status: res.status, text: await res.text() };
  }

  beforeAll(async () => {
    redis = createRedisConnection(inject('redisUrl'), 'client');
    subscriber = createRedisConnection(inject('redisUrl'), 'subscriber');
    await Promise.all([waitForRedis(redis), waitForRedis(subscriber)]);
    factory = await storeFactory('sqlite');
    store = await factory.open();
    const calls = createCalls(redis, keys, { history: store });
    runStore = new RunStore(redis, agentKeys, 60_000);
    archiver = new Archiver({ calls: calls.archive, store, redis, keys, tools: async () => [], hotRetentionMs: 0, runs: runStore });
    const feed = new RunEventFeed(subscriber, agentKeys, runStore);
    await feed.start();
    const waiter = new CallWaiter(subscriber, keys);
    await waiter.start();
    const promRegistry = createRegistry();
    const deps = {
      redis,
      registry: new ToolRegistry(redis, keys),
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
      history: store,
      events: new EventEmitter<PlannerEvents>(),
    } as unknown as PlannerDeps;
    server = createPlannerApp(deps).listen(0, '127.0.0.1');
    await once(server, 'listening');
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    for (const [name, tenant] of [['a', 'tenant-a'], ['b', 'tenant-b']] as const) {
      const res = await fetch(`${base}/v1/admin/keys`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_KEY}` },
        body: JSON.stringify({ name, tenant, scopes: ['runs:read'] }),
      });
      expect(res.status).toBe(201);
      apiKeys[name] = ((await res.json()) as { key: string }).key;
    }
  });
  afterAll(async () => {
    closing.abort();
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
    await factory?.close();
    await Promise.all([redis, subscriber].map((c) => c && closeRedis(c)));
  });

  test('a finished run moves to history and leaves Redis; GET and its events read the same, per tenant', async () => {
    const id = newCallId();
    const run = finishedRun(id, 'tenant-a');
    const events: RunEvent[] = [
      { type: 'status', status: 'succeeded' },
      { type: 'finished', run: { ...run, messages: undefined } as never },
    ];
    // A run still going is left where it is.
    const running = { ...finishedRun(newCallId(), 'tenant-a'), status: 'running' as const };
    for (const [r, evs, done] of [[run, events, true], [running, [], false]] as const) {
      expect(await runStore.claim(r.id, 'test', 10_000)).toBe(true);
      expect(await runStore.save(r, 'test', [...evs], done)).toBe(true);
    }
    const hot = await get('a', `/v1/runs/${id}`);
    expect(hot.status).toBe(200);
    const hotEvents = await get('a', `/v1/runs/${id}/events`);
    expect(hotEvents.text).toContain('event: finished');
    expect(await archiver.lagSeconds(Date.now() + 5_000)).toBeGreaterThanOrEqual(5);

    expect(await archiver.archiveOnce()).toBe(1);
    expect(await redis.exists(agentKeys.run(id), agentKeys.runEvents(id))).toBe(0);
    expect(await redis.zcard(agentKeys.runsFinished)).toBe(0);
    expect(await runStore.get(running.id)).toMatchObject({ status: 'running' });
    expect(await store.getRun(id)).toMatchObject({ id, tenant: 'tenant-a', status: 'succeeded' });
    expect(await archiver.lagSeconds(Date.now() + 5_000)).toBe(0);

    // The same answers, now from history; the raw conversation stays out.
    const cold = await get('a', `/v1/runs/${id}`);
    expect([cold.status, JSON.parse(cold.text)]).toEqual([200, JSON.parse(hot.text)]);
    expect(JSON.parse(cold.text)).not.toHaveProperty('messages');
    expect(await get('a', `/v1/runs/${id}/events`)).toEqual(hotEvents);
    const firstId = /^id: (\S+)$/m.exec(hotEvents.text)?.[1] ?? '';
    const resumed = await get('a', `/v1/runs/${id}/events`, { 'last-event-id': firstId });
    expect(resumed.text).not.toContain('event: status');
    expect(resumed.text).toContain('event: finished');
    // Tenant walls hold for archived runs too; an admin sees them.
    expect((await get('b', `/v1/runs/${id}`)).status).toBe(404);
    expect((await get('b', `/v1/runs/${id}/events`)).status).toBe(404);
    expect((await get('admin', `/v1/runs/${id}`)).status).toBe(200);
    // Archiving again moves nothing and duplicates nothing.
    expect(await archiver.archiveOnce()).toBe(0);
  });
});
