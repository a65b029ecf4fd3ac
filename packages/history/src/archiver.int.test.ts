import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import type { CallRecord } from '@toolplane/core';
import type { CallReads } from '@toolplane/queue';
import { startCallRig, type CallRig } from './testing/call-rig.js';
import { storeFactory, type StoreFactory } from './testing/index.js';
import type { HistoryDriver, HistoryStore } from './types.js';

/** Lists every page of the tenant's calls through the API's read path (Redis and history merged). */
async function listAll(reads: CallReads, tenant: string, limit = 37): Promise<CallRecord[]> {
  const out: CallRecord[] = [];
  let cursor: string | undefined;
  do {
    const page = await reads.list({ tenant, limit, ...(cursor ? { cursor } : {}) });
    out.push(...page.calls);
    cursor = page.nextCursor;
  } while (cursor);
  return out;
}

/** Enqueues `n` calls and waits until all have finished. */
async function runCalls(rig: CallRig, n: number, args: (i: number) => unknown = (i) => ({ i })): Promise<string[]> {
  const ids = await rig.calls.producer.enqueueBulk(rig.tool, Array.from({ length: n }, (_, i) => args(i)), { tenant: 'acme' });
  const q = rig.calls.queues.queue(rig.tool.name);
  await expect.poll(async () => (await q.getCompletedCount()) + (await q.getFailedCount()), { timeout: 30_000, interval: 50 }).toBe(n);
  return ids;
}

/** What a call leaves in Redis that the archiver must take away. */
async function redisTrace(rig: CallRig, ids: readonly string[]) {
  const k = rig.keys;
  const q = rig.calls.queues.queue(rig.tool.name);
  const [idKeys, usage] = await Promise.all([
    Promise.all(ids.map((id) => rig.redis.exists(k.callIndex(id)))),
    rig.calls.quotas.usage('acme'),
  ]);
  return {
    jobs: (await q.getCompletedCount()) + (await q.getFailedCount()),
    idKeys: idKeys.reduce((a, b) => a + b, 0),
    indexed: await rig.redis.zcard(k.tenantCalls('acme')),
    resultBytes: usage.resultBytes,
  };
}

describe.each<HistoryDriver>(['sqlite', 'postgres'])('archiver (%s)', (driver) => {
  let factory: StoreFactory;
  beforeAll(async () => {
    factory = await storeFactory(driver);
  });
  afterAll(() => factory?.close());

  test('moves finished calls to history and releases Redis; reads stay the same', async () => {
    const store = await factory.open();
    const rig = await startCallRig(inject('redisUrl'), store);
    try {
      rig.work();
      const ids = await runCalls(rig, 200, (i) => (i % 10 === 0 ? { fail: true, i } : { i }));
      const before = await listAll(rig.calls.reads, 'acme');
      expect(before).toHaveLength(200);
      const hot = await Promise.all(ids.map((id) => rig.calls.reads.get(id)));
      const archiver = rig.archiver();
      expect(await archiver.archiveOnce()).toBe(200);
      expect(await redisTrace(rig, ids)).toEqual({ jobs: 0, idKeys: 0, indexed: 0, resultBytes: 0 });
      expect(await store.countCalls('acme')).toBe(200);
      // Transparent: the same records by id and the same listing, now answered from history.
      expect(await Promise.all(ids.map((id) => rig.calls.reads.get(id)))).toEqual(hot);
      const after = await listAll(rig.calls.reads, 'acme');
      expect(after.map((c) => `${c.createdAt} ${c.id}`)).toEqual(before.map((c) => `${c.createdAt} ${c.id}`));
      expect(after).toEqual(before);
      const failed = await rig.calls.reads.list({ tenant: 'acme', limit: 100, status: 'failed', errorCode: 'TOOL_ERROR' });
      expect(failed.calls).toHaveLength(20);
      expect(await archiver.lagSeconds()).toBe(0);
    } finally {
      await rig.close();
    }
  });

  test('listing pages once, in order, while calls move from Redis to history between pages', async () => {
    const store = await factory.open();
    const rig = await startCallRig(inject('redisUrl'), store);
    try {
      rig.work();
      const first = await runCalls(rig, 60);
      await rig.archiver().archiveOnce(); // the older half is in history, the newer half hot
      const second = await runCalls(rig, 60);
      const seen: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await rig.calls.reads.list({ tenant: 'acme', limit: 11, ...(cursor ? { cursor } : {}) });
        seen.push(...page.calls.map((c) => c.id));
        cursor = page.nextCursor;
        if (++pages === 3) await rig.archiver().archiveOnce(); // mid-listing, the rest moves
      } while (cursor);
      expect(new Set(seen).size).toBe(seen.length);
      expect(seen.sort()).toEqual([...first, ...second].sort());
    } finally {
      await rig.close();
    }
  });

  test('a call with an idempotency key is not run again when repeated after it was archived', async () => {
    const store = await factory.open();
    const rig = await startCallRig(inject('redisUrl'), store);
    try {
      rig.work();
      const a = await rig.calls.producer.enqueue(rig.tool, { x: 1 }, { tenant: 'acme', idempotencyKey: 'k1' });
      await expect.poll(async () => (await rig.calls.reads.get(a.id))?.status, { timeout: 10_000 }).toBe('succeeded');
      expect(await rig.archiver().archiveOnce()).toBe(1);
      const again = await rig.calls.producer.enqueue(rig.tool, { x: 1 }, { tenant: 'acme', idempotencyKey: 'k1' });
      expect(again).toEqual({ id: a.id, duplicate: true });
      expect(await rig.calls.queues.queue(rig.tool.name).getJobCountByTypes('waiting', 'active', 'completed')).toBe(0);
      expect((await rig.calls.reads.get(a.id))?.status).toBe('succeeded');
    } finally {
      await rig.close();
    }
  });

  test('killed between the store write and the Redis drop: the next archiver finishes it, each call once', async () => {
    const store = await factory.open();
    const rig = await startCallRig(inject('redisUrl'), store);
    try {
      rig.work();
      const ids = await runCalls(rig, 300);
      // The first archiver's process dies right after its second batch reached the store.
      let batches = 0;
      const dying: HistoryStore = Object.create(store) as HistoryStore;
      dying.putCalls = async (calls) => {
        await store.putCalls(calls);
        if (++batches === 2) throw new Error('killed');
      };
      const first = rig.archiver({ store: dying, batchSize: 100 });
      await expect(first.archiveOnce()).rejects.toThrow('killed');
      expect(await store.countCalls()).toBe(200);
      expect((await redisTrace(rig, ids)).jobs).toBe(200); // nothing of the unacknowledged batch left Redis
      // Its lease lapses; another process's archiver takes over and writes the batch again.
      const second = rig.archiver({ batchSize: 100 });
      second.start();
      await expect.poll(async () => (await redisTrace(rig, ids)).jobs, { timeout: 10_000 }).toBe(0);
      expect(await store.countCalls()).toBe(300);
      expect(await redisTrace(rig, ids)).toEqual({ jobs: 0, idKeys: 0, indexed: 0, resultBytes: 0 });
      const listed = await listAll(rig.calls.reads, 'acme', 100);
      expect(listed.map((c) => c.id).sort()).toEqual([...ids].sort());
    } finally {
      await rig.close();
    }
  });

  test('two archivers at once: one holds the lease, nothing is written twice or lost', async () => {
    const store = await factory.open();
    const rig = await startCallRig(inject('redisUrl'), store);
    try {
      rig.work();
      const ids = await runCalls(rig, 150);
      const a = rig.archiver({ batchSize: 20 });
      const b = rig.archiver({ batchSize: 20 });
      a.start();
      b.start();
      await expect.poll(async () => (await redisTrace(rig, ids)).jobs, { timeout: 10_000 }).toBe(0);
      expect(await store.countCalls()).toBe(150);
    } finally {
      await rig.close();
    }
  });

  test('the store down: nothing is dropped, lag rises, an error is reported; back up, everything moves once', async () => {
    const store = await factory.open();
    const rig = await startCallRig(inject('redisUrl'), store);
    // Postgres is really stopped (30 s, as an outage would); the embedded file cannot be, so its
    // writes fail for a few seconds instead.
    const outageMs = driver === 'postgres' ? 30_000 : 3_000;
    let down = false;
    const flaky: HistoryStore = Object.create(store) as HistoryStore;
    flaky.putCalls = async (calls) => {
      if (down) throw new Error('store unavailable');
      await store.putCalls(calls);
    };
    const errors: unknown[] = [];
    const lags: number[] = [];
    try {
      rig.work();
      const archiver = rig.archiver({
        store: driver === 'postgres' ? store : flaky,
        maxBackoffMs: 1_000,
        hooks: { onError: (e) => errors.push(e), onLag: (s) => lags.push(s) },
      });
      if (driver === 'postgres') await factory.postgres!.pause();
      down = true;
      archiver.start();
      const ids = await runCalls(rig, 500);
      await new Promise((r) => setTimeout(r, outageMs));
      expect(errors.length).toBeGreaterThan(0);
      expect((await redisTrace(rig, ids)).jobs).toBe(500); // Redis holds every call meanwhile
      expect(Math.max(...lags)).toBeGreaterThan(outageMs / 1000 / 2);
      // Reads by id still answer from Redis while the store is down.
      expect((await rig.calls.reads.getHot(ids[0]!))?.status).toBe('succeeded');
      if (driver === 'postgres') await factory.postgres!.resume();
      down = false;
      await expect.poll(async () => (await redisTrace(rig, ids)).jobs, { timeout: 20_000 }).toBe(0);
      expect(await store.countCalls()).toBe(500);
      expect(await redisTrace(rig, ids)).toEqual({ jobs: 0, idKeys: 0, indexed: 0, resultBytes: 0 });
      await expect.poll(() => lags.at(-1), { timeout: 5_000 }).toBe(0);
    } finally {
      await rig.close();
    }
  }, 90_000);

  test('a tool is read again only once one of its calls can be due: idle tools cost nothing round after round', async () => {
    const store = await factory.open();
    const rig = await startCallRig(inject('redisUrl'), store);
    // Counts the archiver's reads of tool queues (our own methods, on the real Redis).
    let reads = 0;
    const { archive } = rig.calls;
    const [finishedBefore, oldestFinished] = [archive.finishedBefore.bind(archive), archive.oldestFinished.bind(archive)];
    archive.finishedBefore = (...a) => (reads++, finishedBefore(...a));
    archive.oldestFinished = (...a) => (reads++, oldestFinished(...a));
    try {
      rig.work();
      const ids = await runCalls(rig, 3);
      const archiver = rig.archiver({ hotRetentionMs: 60_000 });
      expect(await archiver.archiveOnce()).toBe(0);
      expect(await archiver.lagSeconds()).toBe(0);
      const firstRound = reads;
      expect(firstRound).toBeGreaterThan(0);
      // Nothing can be due for about a minute: later rounds do not touch the tool.
      for (let i = 0; i < 3; i++) {
        expect(await archiver.archiveOnce()).toBe(0);
        expect(await archiver.lagSeconds()).toBe(0);
      }
      expect(reads).toBe(firstRound);
      // Once the calls are due they move, and the lag counts them while they have not.
      const later = Date.now() + 61_000;
      expect(await archiver.lagSeconds(later)).toBeGreaterThan(0);
      expect(await archiver.archiveOnce(later)).toBe(3);
      expect(await redisTrace(rig, ids)).toEqual({ jobs: 0, idKeys: 0, indexed: 0, resultBytes: 0 });
    } finally {
      await rig.close();
    }
  });
});
