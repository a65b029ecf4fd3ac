import { afterAll, beforeAll, expect, test } from 'vitest';
import { Worker } from 'bullmq';
import { Cluster } from 'ioredis';
import { ToolExecError, ToolSpec, silentLogger, type Tool } from '@toolplane/core';
import { ApiKeyStore } from './api-keys.js';
import { ToolBreakers } from './breaker.js';
import { CallWaiter, announceCallDone } from './call-waiter.js';
import { createCalls } from './calls.js';
import { checkNoEviction, closeRedis, coalesceWrites, createRedisConnection, waitForRedis, type RedisConnection } from './connection.js';
import { CallGate } from './gate.js';
import { createKeys } from './keys.js';
import { readQueueDepths } from './queue-depth.js';
import { ToolRegistry } from './registry.js';
import { SecretStore } from './secrets.js';
import { TenantQuotas } from './tenant-quotas.js';
import { startRedisCluster, type RedisCluster } from './testing/index.js';
import { freshPrefix } from '../../../test/support/redis.js';

// Every class that touches Redis, run against a real 3-master cluster with the connection roles the
// services use. A command or script whose keys span slots fails here with CROSSSLOT.
let cluster: RedisCluster;
let client: RedisConnection;
let worker: RedisConnection;
let subscriber: RedisConnection;
const keys = createKeys(freshPrefix());

beforeAll(async () => {
  cluster = await startRedisCluster({ masters: 3 });
  client = createRedisConnection(cluster.url, 'client');
  worker = createRedisConnection(cluster.url, 'worker');
  subscriber = createRedisConnection(cluster.url, 'subscriber');
  // As the services have them: each turn's commands leave each node's socket in one write.
  coalesceWrites(client);
  coalesceWrites(worker);
  await Promise.all([client, worker, subscriber].map((c) => waitForRedis(c)));
});
afterAll(async () => {
  await Promise.all([client, worker, subscriber].map((c) => c && closeRedis(c)));
  await cluster?.stop();
});

const SPEC = ToolSpec.parse({
  description: 'echoes',
  parameters: { type: 'object' },
  code: 'export default (a) => a',
});

/** The node (by port) that serves a key's slot. */
async function nodeOf(key: string): Promise<number> {
  const c = client as Cluster;
  const slot = Number(await c.cluster('KEYSLOT', key));
  const ranges = await c.cluster('SLOTS');
  return ranges.find(([from, to]) => slot >= from && slot <= to)![2]![1];
}

test('the cluster is made of 3 masters with noeviction, and connections of every role reach it', async () => {
  expect(client).toBeInstanceOf(Cluster);
  expect((client as Cluster).nodes('master')).toHaveLength(3);
  await expect(checkNoEviction(client)).resolves.toBe('ok');
  // The first command of a fail-fast client to a node it has not talked to yet must not be refused.
  for (let i = 0; i < 20; i++) await client.get(`${keys.bullPrefix}:probe:${i}`);
});

test('checkNoEviction looks at every master, not just one', async () => {
  const victim = cluster.nodes[2]!;
  const direct = createRedisConnection(victim.url, 'client');
  await waitForRedis(direct);
  try {
    await direct.config('SET', 'maxmemory-policy', 'allkeys-lru');
    await expect(checkNoEviction(client)).rejects.toThrow(/allkeys-lru/);
  } finally {
    await direct.config('SET', 'maxmemory-policy', 'noeviction');
    await closeRedis(direct);
  }
});

test('registry, secrets and pub/sub work across nodes', async () => {
  const registry = new ToolRegistry(client, keys);
  const changed: string[] = [];
  subscriber.on('message', (channel: string, msg: string) => channel === keys.registryChanged && changed.push(msg));
  await subscriber.subscribe(keys.registryChanged, keys.callDone);

  const { tool, created } = await registry.put('echo', SPEC);
  expect(created).toBe(true);
  await registry.put('echo', SPEC);
  expect((await registry.get('echo'))?.version).toBe(2);
  expect((await registry.list()).map((t) => t.name)).toEqual(['echo']);
  expect(await registry.names()).toEqual(['echo']);
  expect(tool.version).toBe(1);
  // The registry script publishes from whichever node holds `{prefix}`; the subscriber may sit on another.
  await expect.poll(() => changed.length, { timeout: 5_000 }).toBeGreaterThanOrEqual(2);
  // A planner's registry keeps versions in memory and hears another replica's change across nodes.
  const follower = new ToolRegistry(worker, keys);
  await follower.followChanges(subscriber);
  expect((await follower.get('echo'))?.version).toBe(2);
  await registry.put('echo', SPEC);
  await expect.poll(async () => (await follower.get('echo'))?.version, { timeout: 5_000 }).toBe(3);

  const secrets = new SecretStore(client, keys, { encryptionKey: Buffer.alloc(32, 7) });
  await secrets.put('default', 'TOKEN', 's3cret');
  expect(await secrets.read('default', ['TOKEN', 'NOPE'])).toEqual({ TOKEN: 's3cret' });

  const waiter = new CallWaiter(subscriber, keys);
  await waiter.start();
  const { done } = waiter.wait('abc', 5_000);
  await announceCallDone(worker, keys, 'abc');
  await expect(done).resolves.toBe(true);
});

test("API keys and their request limit: a key's counters of two seconds meet in one script on its node", async () => {
  const store = new ApiKeyStore(client, keys);
  const { key, record } = await store.create({ name: 'ci', tenant: 'default', scopes: ['tools:read'] });
  expect((await store.verify(key))?.tenant).toBe('default');
  const second = Math.floor(Date.now() / 1000) * 1000;
  const admitted = [];
  for (const at of [second + 900, second + 900, second + 900, second + 1_050, second + 1_050]) admitted.push(await store.admitRequest(record.id, 2, at));
  // Past the boundary the previous second still weighs 2 × 0.95: one more, not two.
  expect(admitted).toEqual([true, true, false, true, false]);
  expect(await store.revoke(record.id)).toBe(true);
});

test('calls of tools on different nodes: enqueue, idempotency, approval, cancel, listing, depths, gate', async () => {
  const registry = new ToolRegistry(client, keys);
  const calls = createCalls(client, keys);
  const gate = new CallGate(worker, keys);
  const breakers = new ToolBreakers(worker, keys, { logger: silentLogger() });
  // Enough tools that their queues land on every master.
  const names = ['alpha', 'bravo', 'charlie', 'delta', 'echo2', 'foxtrot'];
  const tools: Tool[] = [];
  for (const name of names) tools.push((await registry.put(name, ToolSpec.parse({ ...SPEC, rateLimit: { max: 2, perMs: 60_000 } }))).tool);
  const homes = new Set(await Promise.all(names.map((n) => nodeOf(`${keys.bullPrefix}:${keys.queueName(n)}:wait`))));
  expect(homes.size).toBeGreaterThanOrEqual(2);

  for (const tool of tools) {
    // Every key of one tool lives in the tool queue's slot.
    const home = await nodeOf(`${keys.bullPrefix}:${keys.queueName(tool.name)}:id`);
    for (const key of [keys.rateWindow(tool.name), keys.breakerOpen(tool.name), keys.cancelMarker(tool.name, 'x')]) {
      expect(await nodeOf(key)).toBe(home);
    }
    await calls.lifecycle.applyToolSettings(tool);
    const first = await calls.producer.enqueue(tool, { n: 1 }, { tenant: 'acme', idempotencyKey: 'k1' });
    const again = await calls.producer.enqueue(tool, { n: 1 }, { tenant: 'acme', idempotencyKey: 'k1' });
    expect(again).toEqual({ id: first.id, duplicate: true });
    expect((await calls.reads.get(first.id))?.status).toBe('queued');

    // Gate: two runs in the window, then the limit; trip, half-open trial, close.
    expect((await gate.admit(tool, 'c1', 'acme')).verdict).toBe('run');
    expect((await gate.admit(tool, 'c2', 'acme')).verdict).toBe('run');
    expect((await gate.admit(tool, 'c3', 'acme')).verdict).toBe('tool_limit');
    for (let i = 0; i < tool.breaker.volumeThreshold; i++) await breakers.recordFailure(tool, new ToolExecError('TIMEOUT', 'down'));
    expect(await gate.breakerState(tool.name)).toBe('open');
    await breakers.run(tool, 'trial', () => Promise.resolve());
    expect(await gate.breakerState(tool.name)).toBe('closed');
    expect(await gate.hold(tool.name, 1_000)).toBeGreaterThan(0);
  }
  breakers.shutdown();

  const approvalTool = (await registry.put('approve-me', { ...SPEC, requiresApproval: true })).tool;
  const pending = await calls.producer.enqueue(approvalTool, {}, { tenant: 'acme' });
  expect((await calls.reads.get(pending.id))?.status).toBe('awaiting_approval');
  expect((await calls.actions.approve(pending.id))?.status).toBe('queued');
  const rejected = await calls.producer.enqueue(approvalTool, {}, { tenant: 'acme' });
  expect((await calls.actions.reject(rejected.id))?.status).toBe('failed');
  const cancelled = await calls.producer.enqueue(tools[0]!, { n: 2 }, { tenant: 'acme' });
  expect((await calls.actions.cancel(cancelled.id))?.status).toBe('cancelled');

  const listed = await calls.reads.list({ tenant: 'acme', limit: 100 });
  expect(listed.calls).toHaveLength(names.length + 3);
  expect((await calls.reads.list({ tenant: 'acme', tool: 'approve-me', limit: 100 })).calls).toHaveLength(2);

  // Every key of one tenant lives in one slot, so each quota script runs on one node.
  const tenantHome = await nodeOf(keys.tenantCalls('acme'));
  for (const key of [keys.tenantToolCalls('acme', 'alpha'), keys.tenantInFlight('acme'), keys.tenantResults('acme'), keys.tenantResultSizes('acme'), keys.tenantResultBytes('acme'), keys.tenantResultsFull('acme')]) {
    expect(await nodeOf(key)).toBe(tenantHome);
  }
  const quotas = new TenantQuotas(worker, keys, { maxResultBytes: 100 });
  await quotas.storeResult('acme', listed.calls[0]!.id, { result: 'x'.repeat(10), logs: [] }, 60_000);
  await expect(quotas.storeResult('acme', 'other', { result: 'x'.repeat(100), logs: [] }, 60_000)).rejects.toMatchObject({ code: 'QUOTA_EXCEEDED' });
  expect(await quotas.release('acme', [listed.calls[0]!.id])).toBeGreaterThan(0);

  const depths = await readQueueDepths(client, keys, [...names, 'approve-me']);
  expect(depths.map((d) => d.counts.waiting)).toEqual([...names.map(() => 1), 1]);

  // A real BullMQ worker consumes one of the queues over the cluster.
  const conn = createRedisConnection(cluster.url, 'worker');
  const consumer = new Worker(keys.queueName('bravo'), async () => 'ok', { connection: conn, prefix: keys.bullPrefix });
  try {
    await expect.poll(async () => (await readQueueDepths(client, keys, ['bravo']))[0]!.counts.completed, { timeout: 10_000 }).toBe(1);
  } finally {
    await consumer.close();
    await closeRedis(conn);
  }
  for (const q of names) await calls.queues.queue(q).obliterate({ force: true });
});
