import { afterAll, beforeAll, expect, test } from 'vitest';
import { startRedisServer, type RedisServer } from '@toolplane/queue/testing';
import { startCallRig } from './testing/call-rig.js';
import { storeFactory, type StoreFactory } from './testing/index.js';

const CALLS = 30_000;

// A Redis of its own: memory figures on the shared one would include other suites' keys.
let redis: RedisServer;
let factory: StoreFactory;
beforeAll(async () => {
  [redis, factory] = await Promise.all([startRedisServer(), storeFactory('sqlite')]);
});
afterAll(async () => {
  await Promise.all([redis?.stop(), factory?.close()]);
});

async function usedMemory(url: string): Promise<number> {
  const { Redis } = await import('ioredis');
  const c = new Redis(url);
  try {
    return Number(/used_memory:(\d+)/.exec(await c.info('memory'))![1]);
  } finally {
    c.disconnect();
  }
}

test(`${CALLS} calls with a short hot retention: Redis returns to where it started, every call readable and listed once`, async () => {
  const store = await factory.open();
  const rig = await startCallRig(redis.url, store);
  try {
    rig.work(100);
    // Baseline after the tool, its queue and the worker exist: what stays whatever the call count.
    await rig.calls.producer.enqueueBulk(rig.tool, [{ warm: true }], { tenant: 'acme' });
    const q = rig.calls.queues.queue(rig.tool.name);
    await expect.poll(() => q.getCompletedCount(), { timeout: 10_000 }).toBe(1);
    const archiver = rig.archiver({ hotRetentionMs: 200, intervalMs: 100 });
    await archiver.archiveOnce(Date.now() + 1_000);
    const baseline = await usedMemory(redis.url);

    archiver.start();
    const started = Date.now();
    const ids: string[] = [];
    let peak = baseline;
    for (let i = 0; i < CALLS; i += 1_000) {
      ids.push(...(await rig.calls.producer.enqueueBulk(rig.tool, Array.from({ length: 1_000 }, (_, j) => ({ n: i + j })), { tenant: 'acme' })));
      peak = Math.max(peak, await usedMemory(redis.url));
    }
    await expect.poll(() => store.countCalls('acme'), { timeout: 120_000, interval: 250 }).toBe(CALLS + 1);
    await expect.poll(async () => (await q.getJobCountByTypes('completed', 'failed', 'waiting', 'active')), { timeout: 10_000 }).toBe(0);
    const seconds = (Date.now() - started) / 1000;
    const after = await usedMemory(redis.url);
    console.log(
      `history memory test: ${CALLS} calls in ${seconds.toFixed(1)} s; Redis used_memory baseline ${(baseline / 1e6).toFixed(2)} MB, ` +
        `peak ${(peak / 1e6).toFixed(2)} MB, after archiving ${(after / 1e6).toFixed(2)} MB`,
    );
    expect(after - baseline).toBeLessThan(5 * 1024 * 1024);

    // Every call by id (from history now) and listed by paging: in order, each once.
    const records = await Promise.all(ids.map((id) => rig.calls.reads.get(id)));
    expect(records.filter((r) => r?.status === 'succeeded')).toHaveLength(CALLS);
    const listed: string[] = [];
    let cursor: string | undefined;
    let prev: [number, string] | undefined;
    do {
      const page = await rig.calls.reads.list({ tenant: 'acme', limit: 500, ...(cursor ? { cursor } : {}) });
      for (const c of page.calls) {
        const pos: [number, string] = [Date.parse(c.createdAt), c.id];
        if (prev) expect(pos[0] < prev[0] || (pos[0] === prev[0] && pos[1] < prev[1])).toBe(true);
        prev = pos;
        listed.push(c.id);
      }
      cursor = page.nextCursor;
    } while (cursor);
    expect(listed).toHaveLength(CALLS + 1);
    expect(new Set(listed).size).toBe(CALLS + 1);
  } finally {
    await rig.close();
  }
}, 180_000);
