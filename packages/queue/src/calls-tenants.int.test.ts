import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ToolSpec, type Tool } from '@toolplane/core';
import { createCalls } from './calls.js';
import { closeRedis, createRedisConnection, waitForRedis, type RedisConnection } from './connection.js';
import { createKeys } from './keys.js';
import { ToolRegistry } from './registry.js';
import { startRedisServer, type RedisServer } from './testing/redis-server.js';
import { freshPrefix } from '../../../test/support/redis.js';
import { commandsDuring } from '../../../test/support/redis-monitor.js';

// A redis-server of this file's own: MONITOR below must see only this file's commands (the run's
// shared server carries other files' traffic, BullMQ's binary arguments included).
let server: RedisServer;
let redis: RedisConnection;
beforeAll(async () => {
  server = await startRedisServer();
  redis = createRedisConnection(server.url, 'worker');
  await waitForRedis(redis);
});
afterAll(async () => {
  await closeRedis(redis);
  await server.stop();
});

const SPEC = ToolSpec.parse({ description: 'echoes', parameters: { type: 'object' }, code: 'export default (a) => a' });

async function setup(opts: { maxCallsInFlight?: number } = {}) {
  const keys = createKeys(freshPrefix('ct'));
  const registry = new ToolRegistry(redis, keys);
  const calls = createCalls(redis, keys, opts);
  const tools: Tool[] = [];
  const cleanup = async () => {
    for (const t of tools) {
      await calls.queues.queue(t.name).obliterate({ force: true });
      await calls.queues.queue(t.name).close();
    }
  };
  const put = async (name: string, tenant: string, extra: Partial<ToolSpec> = {}) => {
    const { tool } = await registry.put(name, { ...SPEC, ...extra }, tenant);
    tools.push(tool);
    return tool;
  };
  return { keys, registry, calls, put, cleanup };
}

/** Every command Redis runs while `fn` runs, as text. */
async function commandsOf(fn: () => Promise<void>): Promise<string[]> {
  return (await commandsDuring(server.url, redis, fn)).map((c) => c.args.join(' '));
}

describe("one tenant's calls, seen from another", () => {
  test("a listing reads its own tenant's index and never touches another tenant's entries", async () => {
    const { keys, calls, put, cleanup } = await setup();
    const toolA = await put('a-echo', 'tenant-a');
    const toolB = await put('b-echo', 'tenant-b');
    const idsA: string[] = [];
    for (let i = 0; i < 30; i++) idsA.push((await calls.producer.enqueue(toolA, { i }, { tenant: 'tenant-a' })).id);
    const idsB: string[] = [];
    for (let i = 0; i < 3; i++) idsB.push((await calls.producer.enqueue(toolB, { i }, { tenant: 'tenant-b' })).id);

    let pages: Array<{ calls: Array<{ id: string }> }> = [];
    const commands = await commandsOf(async () => {
      pages = await Promise.all([
        calls.reads.list({ tenant: 'tenant-b', limit: 50 }),
        calls.reads.list({ tenant: 'tenant-b', tool: 'a-echo', limit: 50 }),
        calls.reads.list({ tenant: 'tenant-b', tool: 'b-echo', status: 'queued', limit: 50 }),
      ]);
    });
    // Calls made in the same millisecond have no order among themselves: compare as sets.
    expect(pages[0]!.calls.map((c) => c.id).sort()).toEqual([...idsB].sort());
    expect(pages[1]!.calls).toEqual([]);
    expect(pages[2]!.calls.map((c) => c.id).sort()).toEqual([...idsB].sort());
    // Not one command of B's listings named A's index, A's tool queue or one of A's calls.
    const mine = commands.filter((line) => line.includes(keys.bullPrefix));
    // The monitor does see what a listing reads: B's own calls.
    expect(mine.filter((line) => idsB.some((id) => line.includes(id))).length).toBeGreaterThan(0);
    const leaks = mine.filter((line) => line.includes('{tenant:tenant-a}') || line.includes('{a-echo}') || idsA.some((id) => line.includes(id)));
    expect(leaks).toEqual([]);

    // A's own listing still pages through all of A's calls, newest first, each once.
    const seen: Array<{ id: string; createdAt: string }> = [];
    let cursor: string | undefined;
    do {
      const page = await calls.reads.list({ tenant: 'tenant-a', limit: 7, ...(cursor ? { cursor } : {}) });
      seen.push(...page.calls);
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen.map((c) => c.id).sort()).toEqual([...idsA].sort());
    const times = seen.map((c) => Date.parse(c.createdAt));
    expect(times).toEqual([...times].sort((x, y) => y - x));
    await cleanup();
  });

  test("an idempotency key is the tenant's own: B's key equal to A's makes B's own call and leaves A's alone", async () => {
    const { calls, put, cleanup } = await setup();
    // Only an admin can call another tenant's tool; the queue library lets this test do it directly.
    const tool = await put('shared', 'tenant-a');
    const a = await calls.producer.enqueue(tool, { from: 'a' }, { tenant: 'tenant-a', idempotencyKey: 'order-42' });
    const b = await calls.producer.enqueue(tool, { from: 'b' }, { tenant: 'tenant-b', idempotencyKey: 'order-42' });
    expect(b.id).not.toBe(a.id);
    expect(b.duplicate).toBe(false);
    expect(await calls.reads.get(b.id)).toMatchObject({ tenant: 'tenant-b' });
    expect((await calls.queues.queue('shared').getJob(a.id))?.data).toMatchObject({ tenant: 'tenant-a', arguments: { from: 'a' } });
    // Within a tenant the key still means "the same call".
    expect(await calls.producer.enqueue(tool, { from: 'a' }, { tenant: 'tenant-a', idempotencyKey: 'order-42' })).toEqual({ id: a.id, duplicate: true });
    expect((await calls.reads.list({ tenant: 'tenant-a', limit: 10 })).calls.map((c) => c.id)).toEqual([a.id]);
    expect((await calls.reads.list({ tenant: 'tenant-b', limit: 10 })).calls.map((c) => c.id)).toEqual([b.id]);
    await cleanup();
  });

  test('a tool name taken over by another tenant starts a new version, so its result cache is not the first tenant\'s', async () => {
    const { keys, registry, put, cleanup } = await setup();
    const first = await put('cached', 'tenant-a', { cacheTtlMs: 60_000 });
    await registry.delete('cached');
    const second = await put('cached', 'tenant-b', { cacheTtlMs: 60_000 });
    expect(second.tenant).toBe('tenant-b');
    expect(second.version).toBeGreaterThan(first.version);
    expect(keys.resultCache('cached', second.version, 'h')).not.toBe(keys.resultCache('cached', first.version, 'h'));
    await cleanup();
  });
});

describe('the cap of calls in flight on the enqueue path', () => {
  test('past the cap enqueue is refused; a cancelled or rejected call frees its slot; a repeat is never refused', async () => {
    const { calls, put, cleanup } = await setup({ maxCallsInFlight: 2 });
    const tool = await put('held', 'tenant-a', { requiresApproval: true });
    const first = await calls.producer.enqueue(tool, { n: 1 }, { tenant: 'tenant-a', idempotencyKey: 'k1' });
    const second = await calls.producer.enqueue(tool, { n: 2 }, { tenant: 'tenant-a' });
    expect((await calls.reads.get(first.id))?.status).toBe('awaiting_approval');
    await expect(calls.producer.enqueue(tool, { n: 3 }, { tenant: 'tenant-a' })).rejects.toMatchObject({ code: 'QUOTA_EXCEEDED' });
    await expect(calls.producer.enqueueBulk(tool, [{ n: 3 }], { tenant: 'tenant-a' })).rejects.toMatchObject({ code: 'QUOTA_EXCEEDED' });
    // The refused calls left nothing behind.
    expect((await calls.reads.list({ tenant: 'tenant-a', limit: 10 })).calls).toHaveLength(2);
    expect(await calls.producer.enqueue(tool, { n: 1 }, { tenant: 'tenant-a', idempotencyKey: 'k1' })).toEqual({ id: first.id, duplicate: true });
    // Another tenant is not held back by tenant-a's calls.
    await calls.producer.enqueue(tool, { n: 1 }, { tenant: 'tenant-b' });

    expect((await calls.actions.cancel(first.id))?.status).toBe('cancelled');
    const third = await calls.producer.enqueue(tool, { n: 3 }, { tenant: 'tenant-a' });
    await expect(calls.producer.enqueue(tool, { n: 4 }, { tenant: 'tenant-a' })).rejects.toMatchObject({ code: 'QUOTA_EXCEEDED' });
    expect((await calls.actions.reject(second.id))?.status).toBe('failed');
    await calls.producer.enqueue(tool, { n: 4 }, { tenant: 'tenant-a' });
    expect((await calls.quotas.usage('tenant-a')).callsInFlight).toBe(2);
    expect((await calls.reads.get(third.id))?.status).toBe('awaiting_approval');
    await cleanup();
  });
});
