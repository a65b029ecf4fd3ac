import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { createCalls, ToolRegistry, createKeys, createRedisConnection, closeRedis, type RedisConnection } from '@toolplane/queue';
import {
  ADD_TOOL,
  api,
  maxInWindow,
  startPlanner,
  startWorker,
  uniquePrefix,
  waitForCalls,
  type ServiceProcess,
} from '../support/services.js';

const TRIVIAL = {
  description: 'echoes its index',
  parameters: { type: 'object', properties: { i: { type: 'integer' } } },
  code: 'export default (args) => args.i ?? 0',
};

describe('rate limits and concurrency caps hold across 4 worker processes', () => {
  const env = { REDIS_URL: inject('redisUrl'), TOOLPLANE_PREFIX: uniquePrefix() };
  let planner: ServiceProcess;
  let workers: ServiceProcess[] = [];
  let redis: RedisConnection;

  beforeAll(async () => {
    planner = await startPlanner(env);
    workers = await Promise.all([1, 2, 3, 4].map(() => startWorker(env)));
    redis = createRedisConnection(env.REDIS_URL, 'worker');
  });
  afterAll(async () => {
    await Promise.all([planner, ...workers].map((p) => p?.kill()));
    await closeRedis(redis);
  });

  async function enqueueMany(tool: string, n: number, args: (i: number) => object = (i) => ({ i })): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < n; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, n - i) }, (_, j) => api(planner.url, 'POST', '/v1/calls', { tool, arguments: args(i + j) })),
      );
      for (const r of batch) {
        expect(r.status).toBe(202);
        ids.push(r.body.id);
      }
    }
    return ids;
  }

  test('20 calls/s: 400 calls all complete, never more than 20 starts in any second, within 25 s', async () => {
    expect((await api(planner.url, 'PUT', '/v1/tools/limited', { ...TRIVIAL, rateLimit: { max: 20, perMs: 1000 } })).status).toBe(201);
    const started = Date.now();
    const ids = await enqueueMany('limited', 400);
    const calls = await waitForCalls(planner.url, ids, 40_000);
    const elapsed = Date.now() - started;
    expect(calls.every((c) => c.status === 'succeeded')).toBe(true);
    const starts = calls.map((c) => c.timings.startedAt as number);
    expect(maxInWindow(starts, 1000)).toBeLessThanOrEqual(20);
    expect(elapsed).toBeLessThan(25_000);
    console.log(`rate limit: 400 calls in ${elapsed} ms, busiest second ${maxInWindow(starts, 1000)} starts`);
  }, 60_000);

  test('two tenants with tenantRateLimit 5/s each get 5/s each at the same time', async () => {
    expect((await api(planner.url, 'PUT', '/v1/tools/pertenant', { ...TRIVIAL, tenantRateLimit: { max: 5, perMs: 1000 } })).status).toBe(201);
    // Tenants come from API keys; until those exist the producer library sets them directly.
    const keys = createKeys(env.TOOLPLANE_PREFIX);
    const tool = (await new ToolRegistry(redis, keys).get('pertenant'))!;
    const calls = createCalls(redis, keys);
    const started = Date.now();
    const ids: Record<string, string[]> = { a: [], b: [] };
    for (let i = 0; i < 20; i++) {
      for (const tenant of ['a', 'b']) ids[tenant]!.push((await calls.producer.enqueue(tool, { i }, { tenant })).id);
    }
    const [a, b] = await Promise.all([waitForCalls(planner.url, ids.a!, 20_000), waitForCalls(planner.url, ids.b!, 20_000)]);
    const elapsed = Date.now() - started;
    expect([...a!, ...b!].every((c) => c.status === 'succeeded')).toBe(true);
    const startsA = a!.map((c) => c.timings.startedAt as number);
    const startsB = b!.map((c) => c.timings.startedAt as number);
    expect(maxInWindow(startsA, 1000)).toBeLessThanOrEqual(5);
    expect(maxInWindow(startsB, 1000)).toBeLessThanOrEqual(5);
    // 20 calls at 5/s take about 3-4 s for each tenant; run one after the other they would take twice that.
    expect(elapsed).toBeLessThan(7_500);
    expect(Math.min(Math.max(...startsA), Math.max(...startsB))).toBeGreaterThan(Math.max(Math.min(...startsA), Math.min(...startsB)));
  }, 30_000);

  test('concurrency 3 is never exceeded across 4 workers', async () => {
    const busy = {
      description: 'busy for 60 ms',
      parameters: { type: 'object' },
      code: 'export default () => { const start = Date.now(); while (Date.now() - start < 60) {} return [start, Date.now()] }',
      concurrency: 3,
    };
    expect((await api(planner.url, 'PUT', '/v1/tools/capped', busy)).status).toBe(201);
    const ids = await enqueueMany('capped', 30, () => ({}));
    const calls = await waitForCalls(planner.url, ids, 30_000);
    expect(calls.every((c) => c.status === 'succeeded')).toBe(true);
    const events = calls.flatMap((c) => [[c.result[0], 1], [c.result[1], -1]] as Array<[number, number]>);
    events.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
    let running = 0;
    let peak = 0;
    for (const [, d] of events) peak = Math.max(peak, (running += d));
    expect(peak).toBeLessThanOrEqual(3);
    expect(peak).toBeGreaterThanOrEqual(2);
  }, 40_000);

  test("a slow limited tool does not delay an unlimited tool's calls", async () => {
    expect((await api(planner.url, 'PUT', '/v1/tools/trickle', { ...TRIVIAL, rateLimit: { max: 1, perMs: 1000 } })).status).toBe(201);
    expect((await api(planner.url, 'PUT', '/v1/tools/add', ADD_TOOL)).status).toBe(201);
    await enqueueMany('trickle', 20);
    const t0 = Date.now();
    const res = await api(planner.url, 'POST', '/v1/calls', { tool: 'add', arguments: { a: 1, b: 2 }, wait: 10_000 });
    expect(res.body).toMatchObject({ status: 'succeeded', result: 3 });
    // The trickle backlog needs 20 s; the unlimited call must not wait behind it.
    expect(Date.now() - t0).toBeLessThan(3_000);
    const stats = (await api(planner.url, 'GET', '/v1/tools/trickle')).body.stats;
    expect(stats.queue.waiting + stats.queue.delayed + stats.queue.active).toBeGreaterThan(10);
  });
});
