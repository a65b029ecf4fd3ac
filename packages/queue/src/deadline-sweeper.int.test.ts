import { afterAll, beforeAll, expect, inject, test } from 'vitest';
import { randomUUID } from 'node:crypto';
import { Worker, type Job } from 'bullmq';
import type { Cluster } from 'ioredis';
import { ToolSpec, type CallJobData, type CallOutput, type Tool } from '@toolplane/core';
import { CallScheduler } from './call-scheduler.js';
import { CallWaiter } from './call-waiter.js';
import { createCalls } from './calls.js';
import { closeRedis, createRedisConnection, waitForRedis, type RedisConnection } from './connection.js';
import { DeadlineSweeper } from './deadline-sweeper.js';
import { createKeys } from './keys.js';
import { ToolRegistry } from './registry.js';
import { startRedisCluster, startRedisServer } from './testing/index.js';
import { freshPrefix } from '../../../test/support/redis.js';

/**
 * The deadline sweeper against the run's real redis-server: calls waiting past their deadline end
 * `DEADLINE_EXCEEDED` at it, seen the same by the record, waiters, the tenant's count and retry.
 */
let redis: RedisConnection;
let subscriber: RedisConnection;
beforeAll(async () => {
  redis = createRedisConnection(inject('redisUrl'), 'worker');
  subscriber = createRedisConnection(inject('redisUrl'), 'subscriber');
  await Promise.all([waitForRedis(redis), waitForRedis(subscriber)]);
});
afterAll(async () => {
  await Promise.all([closeRedis(redis), closeRedis(subscriber)]);
});

const SPEC = ToolSpec.parse({ description: 'test', parameters: { type: 'object' }, code: 'export default (a) => a', retries: { attempts: 1 } });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function setup(url = inject('redisUrl'), conn = redis) {
  const keys = createKeys(freshPrefix('ds'));
  const registry = new ToolRegistry(conn, keys);
  const calls = createCalls(conn, keys, { maxCallsInFlight: 10_000 });
  const sweepers: DeadlineSweeper[] = [];
  const expired: string[] = [];
  const sweeper = (intervalMs?: number) => {
    const s = new DeadlineSweeper(conn, keys, { queues: calls.queues, quotas: calls.quotas, ...(intervalMs ? { intervalMs } : {}) });
    s.on('expired', (job: Job<CallJobData, CallOutput>) => expired.push(job.id!));
    sweepers.push(s);
    return s;
  };
  const tools: Tool[] = [];
  const put = async (name: string, extra: object = {}) => {
    const { tool } = await registry.put(name, ToolSpec.parse({ ...SPEC, ...extra }), 't1');
    await calls.lifecycle.applyToolSettings(tool);
    tools.push(tool);
    return tool;
  };
  const stop = async () => {
    await Promise.all(sweepers.map((s) => s.stop()));
    for (const t of tools) await calls.queues.queue(t.name).obliterate({ force: true }).catch(() => {});
    await Promise.all(tools.map((t) => calls.queues.queue(t.name).close()));
  };
  return { url, keys, registry, calls, sweeper, expired, put, stop };
}

test('waiting, prioritized and delayed calls end DEADLINE_EXCEEDED at their deadline; later deadlines and calls without one wait on', async () => {
  const t = await setup();
  const tool = await t.put('parked');
  const enqueue = async (opts: object) => (await t.calls.producer.enqueue(tool, {}, { tenant: 't1', ...opts })).id;
  const t0 = Date.now();
  const soon = await enqueue({ deadlineMs: 1_000 });
  const urgent = await enqueue({ deadlineMs: 1_000, priority: 3 });
  // Due after 300 ms, so still in BullMQ's delayed set when its deadline passes (no worker runs).
  const delayed = await enqueue({ deadlineMs: 700, delayMs: 300 });
  const later = await enqueue({ deadlineMs: 60_000 });
  const none = await enqueue({});
  // A job in the plain wait list (BullMQ's own add, no priority), indexed by hand like the producer does.
  const queue = t.calls.queues.queue('parked');
  const plain = randomUUID();
  await queue.add('call', { tool: 'parked', version: tool.version, arguments: {}, tenant: 't1', enqueuedAt: t0, argsHash: 'x', deadlineAt: t0 + 1_000 }, { jobId: plain });
  await redis.zadd(t.keys.callDeadlines('parked'), t0 + 1_000, plain);
  expect(await queue.getJobState(plain)).toBe('waiting');
  expect(await queue.getJobState(delayed)).toBe('delayed');
  expect((await t.calls.quotas.usage('t1')).callsInFlight).toBe(5);

  const waiter = new CallWaiter(subscriber, t.keys);
  await waiter.start();
  const woken = waiter.wait(soon, 10_000).done.then((ok) => (ok ? Date.now() : -1));
  t.sweeper().start();

  const at = await woken;
  expect(at).toBeGreaterThanOrEqual(t0 + 1_000);
  expect(at - (t0 + 1_000)).toBeLessThan(1_500);
  await sleep(100);
  for (const id of [soon, urgent, delayed, plain]) {
    const record = await t.calls.reads.get(id, 'parked');
    expect(record, id).toMatchObject({ status: 'failed', error: { code: 'DEADLINE_EXCEEDED', retryable: false }, timings: { runMs: null } });
    expect(record!.error!.message).toMatch(/^call could not start before its deadline \(\d{4}-/);
  }
  expect(t.expired.sort()).toEqual([soon, urgent, delayed, plain].sort());
  // BullMQ's failed set holds them, as when a worker fails a call: the archiver and retry find them there.
  expect((await queue.getFailed()).map((j) => j.id).sort()).toEqual([soon, urgent, delayed, plain].sort());
  const archivable = await t.calls.archive.finishedBefore('parked', Date.now() + 1, 10);
  expect(archivable.map((c) => [c.record.id, c.source, c.record.error?.code]).sort()).toEqual(
    [soon, urgent, delayed, plain].map((id) => [id, 2, 'DEADLINE_EXCEEDED']).sort(),
  );
  expect(await t.calls.reads.get(later)).toMatchObject({ status: 'queued' });
  expect(await t.calls.reads.get(none)).toMatchObject({ status: 'queued' });
  // Out of the tenant's calls in flight (the plain job never was in it).
  expect((await t.calls.quotas.usage('t1')).callsInFlight).toBe(2);
  // The index keeps only the deadline still ahead; the sweep comes back for it then.
  expect(await redis.zrange(t.keys.callDeadlines('parked'), 0, -1)).toEqual([later]);
  expect(Number(await redis.zscore(t.keys.deadlineTools, 'parked'))).toBeGreaterThan(Date.now() + 50_000);
  // Retried like any failed call: queued again with its deadline span from now.
  expect(await t.calls.actions.retry(soon)).toMatchObject({ status: 'queued' });
  await t.stop();
});

test("a running call is the processor's business; the calls queued behind it end at their deadline", async () => {
  const t = await setup();
  const tool = await t.put('slow', { concurrency: 1 });
  const keysOf = t.keys;
  const blocking = createRedisConnection(t.url, 'worker');
  const commands = createRedisConnection(t.url, 'worker');
  await Promise.all([waitForRedis(blocking), waitForRedis(commands)]);
  const finished: string[] = [];
  const scheduler = new CallScheduler(
    commands,
    blocking,
    keysOf,
    async (job) => {
      if ((job.data.arguments as { slow?: boolean }).slow) await sleep(2_500);
      finished.push(job.id!);
      return { result: 'done', logs: [] } as unknown as CallOutput;
    },
    { concurrency: 4, lockDurationMs: 5_000, stalledIntervalMs: 1_000, tools: () => t.registry.names(), quotas: t.calls.quotas },
  );
  scheduler.start();
  try {
    const running = (await t.calls.producer.enqueue(tool, { slow: true }, { tenant: 't1', deadlineMs: 1_000 })).id;
    const queue = t.calls.queues.queue('slow');
    for (let i = 0; i < 100 && (await queue.getJobState(running)) !== 'active'; i++) await sleep(20);
    expect(await queue.getJobState(running)).toBe('active');
    const t0 = Date.now();
    const behind = await t.calls.producer.enqueueBulk(tool, [{}, {}, {}], { tenant: 't1', deadlineMs: 1_000 });
    const patient = (await t.calls.producer.enqueue(tool, {}, { tenant: 't1', deadlineMs: 30_000 })).id;
    t.sweeper().start();
    for (let i = 0; i < 150 && t.expired.length < 3; i++) await sleep(20);
    const endedAt = Date.now();
    expect(t.expired.sort()).toEqual([...behind].sort());
    expect(endedAt - (t0 + 1_000)).toBeLessThan(1_500);
    // Still running past its deadline: the sweeper leaves it alone, and it succeeds.
    expect(await queue.getJobState(running)).toBe('active');
    for (let i = 0; i < 150 && !finished.includes(running); i++) await sleep(20);
    await sleep(100);
    expect(await t.calls.reads.get(running)).toMatchObject({ status: 'succeeded' });
    expect(t.expired).not.toContain(running);
    // The call with the later deadline runs next.
    for (let i = 0; i < 200 && !finished.includes(patient); i++) await sleep(20);
    expect(finished).toEqual([running, patient]);
  } finally {
    await scheduler.drain(5_000);
    await scheduler.close();
    await Promise.all([closeRedis(blocking), closeRedis(commands)]);
    await t.stop();
  }
});

test('one sweeper of the fleet at a time: every call ends once, and the lease passes on when its holder stops', async () => {
  const t = await setup();
  const tool = await t.put('shared');
  const ids = await t.calls.producer.enqueueBulk(tool, Array.from({ length: 40 }, () => ({})), { tenant: 't1', deadlineMs: 300 });
  const [a, b] = [t.sweeper(), t.sweeper()];
  await sleep(400);
  const now = Date.now();
  const [ea, eb] = await Promise.all([a.sweep(now), b.sweep(now)]);
  // One of them holds the lease and ends all 40; the other is told it does not hold it.
  expect([ea, eb].sort()).toEqual([40, undefined].sort());
  expect(new Set(t.expired).size).toBe(40);
  expect(t.expired.sort()).toEqual([...ids].sort());
  const [holder, other] = ea === 40 ? [a, b] : [b, a];
  expect(await other.sweep()).toBeUndefined();
  await holder.stop();
  expect(await other.sweep()).toBe(0);
  await t.stop();
});

test("a tool in any one of the scheduler's sets is looked at: runnable, claimed, on a timer, or busy", async () => {
  const t = await setup();
  const sets = { ready: t.keys.readyTools, claimed: t.keys.claimedTools, timers: t.keys.toolTimers, busy: t.keys.busyTools };
  const ids: string[] = [];
  for (const [name, key] of Object.entries(sets)) {
    const tool = await t.put(`in-${name}`);
    ids.push((await t.calls.producer.enqueue(tool, {}, { tenant: 't1', deadlineMs: 200 })).id);
    // Only in that set, as the scheduler may leave it (a timer for a hold, a claim of a visit…).
    await redis.zrem(t.keys.readyTools, tool.name);
    await redis.zadd(key, Date.now() + 60_000, tool.name);
  }
  await sleep(300);
  expect(await t.sweeper().sweep()).toBe(4);
  expect(t.expired.sort()).toEqual(ids.sort());
  await t.stop();
});

test('a sweep ends about maxEndedPerSweep calls; the next one goes on with the tools it did not get to', async () => {
  const t = await setup();
  const ids: string[] = [];
  for (let n = 0; n < 25; n++) {
    const tool = await t.put(`many${n}`);
    ids.push(...(await t.calls.producer.enqueueBulk(tool, [{}, {}], { tenant: 't1', deadlineMs: 300 })));
  }
  await sleep(400);
  const s = new DeadlineSweeper(redis, t.keys, { queues: t.calls.queues, quotas: t.calls.quotas, maxEndedPerSweep: 10 });
  const expired: string[] = [];
  s.on('expired', (job: Job<CallJobData, CallOutput>) => expired.push(job.id!));
  const first = (await s.sweep())!;
  // Tools are swept some at a time: the sweep stops after the batch that reached the budget.
  expect(first).toBeGreaterThanOrEqual(10);
  expect(first).toBeLessThan(50);
  expect(await s.sweep()).toBe(50 - first);
  expect(await s.sweep()).toBe(0);
  expect(expired.sort()).toEqual(ids.sort());
  await s.stop();
  await t.stop();
});

test('calls queued behind a long wait list without deadlines end too (whole-list scans, a few per run)', async () => {
  const t = await setup();
  const tool = await t.put('deep');
  const queue = t.calls.queues.queue('deep');
  const data = (n: number, deadlineAt?: number) => ({ tool: 'deep', version: tool.version, arguments: { n }, tenant: 't1', enqueuedAt: Date.now(), argsHash: 'x', ...(deadlineAt ? { deadlineAt } : {}) });
  await queue.addBulk(Array.from({ length: 3_000 }, (_, n) => ({ name: 'call', data: data(n) })));
  const deadlineAt = Date.now() + 200;
  const late = await queue.addBulk(Array.from({ length: 50 }, (_, n) => ({ name: 'call', data: data(n, deadlineAt), opts: { jobId: randomUUID() } })));
  await redis.zadd(t.keys.callDeadlines('deep'), ...late.flatMap((job) => [deadlineAt, job.id!]));
  // Announced as a producer does (no worker runs here to take it).
  await redis.zadd(t.keys.readyTools, Date.now(), 'deep');
  await sleep(300);
  expect(await t.sweeper().sweep()).toBe(50);
  expect(t.expired.sort()).toEqual(late.map((job) => job.id!).sort());
  expect(await queue.getWaitingCount()).toBe(3_000);
  await t.stop();
});

test('a call waiting out a retry backoff past its deadline ends with its last attempt in the message', async () => {
  const t = await setup();
  const tool = await t.put('flaky', { retries: { attempts: 3, backoffMs: 60_000 } });
  const id = (await t.calls.producer.enqueue(tool, {}, { tenant: 't1', deadlineMs: 300 })).id;
  const queue = t.calls.queues.queue('flaky');
  const worker = new Worker(queue.name, null, { connection: redis, prefix: t.keys.bullPrefix, autorun: false });
  const job = (await worker.getNextJob('token', { block: false }))!;
  await job.moveToFailed(new Error('TOOL_ERROR: downstream is down'), 'token');
  expect(await queue.getJobState(id)).toBe('delayed');
  await sleep(400);
  expect(await t.sweeper().sweep()).toBe(1);
  const record = await t.calls.reads.get(id);
  expect(record).toMatchObject({ status: 'failed', error: { code: 'DEADLINE_EXCEEDED' }, attempts: 2 });
  expect(record!.error!.message).toMatch(/^call reached its deadline \(.+\) before another attempt; last attempt: downstream is down$/);
  await worker.close();
  await t.stop();
});

test('entries of calls that finished are dropped once due, after the tool left the scheduler', async () => {
  const t = await setup();
  const tool = await t.put('quick');
  const id = (await t.calls.producer.enqueue(tool, {}, { tenant: 't1', deadlineMs: 500 })).id;
  const entry = await redis.zscore(t.keys.callDeadlines('quick'), id);
  await t.calls.actions.cancel(id);
  // Cancelled before it ran, the call leaves the index at once; an entry left behind (a cancel whose
  // removal failed, a worker killed before its finish was recorded) is the sweep's to drop.
  expect(await redis.zscore(t.keys.callDeadlines('quick'), id)).toBeNull();
  await redis.zadd(t.keys.callDeadlines('quick'), entry!, id);
  const s = t.sweeper();
  expect(await s.sweep()).toBe(0);
  // Seen once in the ready set: the sweep keeps the tool's next deadline and comes back to it.
  expect(await redis.zscore(t.keys.deadlineTools, 'quick')).not.toBeNull();
  await redis.zrem(t.keys.readyTools, 'quick');
  await sleep(600);
  expect(await s.sweep()).toBe(0);
  expect(await redis.exists(t.keys.callDeadlines('quick'))).toBe(0);
  expect(await redis.zscore(t.keys.deadlineTools, 'quick')).toBeNull();
  expect(t.expired).toEqual([]);
  await t.stop();
});

test('idle: a sweep is one script of 8 commands whatever the number of tools', async () => {
  const server = await startRedisServer();
  const conn = createRedisConnection(server.url, 'worker');
  await waitForRedis(conn);
  try {
    const t = await setup(server.url, conn);
    for (let i = 0; i < 300; i++) await t.registry.put(`idle${i}`, SPEC, 't1');
    const read = async () => Number(/total_commands_processed:(\d+)/.exec(await conn.info('stats'))![1]);
    const s = t.sweeper(200);
    let sweeps = 0;
    const sweep = s.sweep.bind(s);
    s.sweep = (now?: number) => (sweeps++, sweep(now));
    const before = await read();
    s.start();
    await sleep(2_000);
    await s.stop();
    // Commands run inside scripts count one each: lease (GET, PEXPIRE), a ZSCAN of each of the
    // scheduler's four sets and one ZRANGEBYSCORE; plus the EVALSHA itself (and the first run's EVAL).
    const spent = (await read()) - before - 1;
    expect(sweeps).toBeGreaterThanOrEqual(3);
    expect(spent).toBeLessThanOrEqual(8 * sweeps + 4);
    await t.stop();
  } finally {
    await closeRedis(conn);
    await server.stop();
  }
});

test('on a Redis Cluster: every script stays in its slot, and calls of tools on different masters end', async () => {
  const cluster = await startRedisCluster({ masters: 3 });
  const conn = createRedisConnection(cluster.url, 'worker');
  await waitForRedis(conn);
  try {
    const t = await setup(cluster.url, conn);
    const names = ['alpha', 'bravo', 'charlie', 'delta'];
    const ids: string[] = [];
    for (const name of names) {
      const tool = await t.put(name);
      ids.push(...(await t.calls.producer.enqueueBulk(tool, [{}, {}], { tenant: 't1', deadlineMs: 300 })));
      await t.calls.producer.enqueue(tool, {}, { tenant: 't1', deadlineMs: 60_000 });
    }
    // The tools' slots are served by more than one master.
    const ranges = await (conn as Cluster).cluster('SLOTS');
    const masters = new Set<number>();
    for (const name of names) {
      const slot = Number(await (conn as Cluster).cluster('KEYSLOT', t.keys.callDeadlines(name)));
      masters.add(ranges.find(([from, to]) => slot >= from && slot <= to)![2]![1]);
    }
    expect(masters.size).toBeGreaterThan(1);
    await sleep(400);
    expect(await t.sweeper().sweep()).toBe(ids.length);
    expect(t.expired.sort()).toEqual([...ids].sort());
    for (const id of ids) expect(await t.calls.reads.get(id)).toMatchObject({ status: 'failed', error: { code: 'DEADLINE_EXCEEDED' } });
    expect((await t.calls.quotas.usage('t1')).callsInFlight).toBe(names.length);
    await t.stop();
  } finally {
    await closeRedis(conn);
    await cluster.stop();
  }
});
