import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startRedisServer, type RedisServer } from '@toolplane/queue/testing';
import { ADD_TOOL, api, startPlanner, startWorker, uniquePrefix, waitForCalls, type ServiceProcess } from '../support/services.js';

describe('Redis outages', () => {
  let redis: RedisServer;
  let planner: ServiceProcess;
  let workers: ServiceProcess[] = [];

  beforeAll(async () => {
    redis = await startRedisServer({ aof: true });
    const env = { REDIS_URL: redis.url, TOOLPLANE_PREFIX: uniquePrefix() };
    planner = await startPlanner(env);
    workers = await Promise.all([1, 2].map(() => startWorker(env)));
    expect((await api(planner.url, 'PUT', '/v1/tools/add', ADD_TOOL)).status).toBe(201);
    expect((await api(planner.url, 'POST', '/v1/calls', { tool: 'add', arguments: { a: 1, b: 1 }, wait: 5_000 })).body.status).toBe('succeeded');
  });
  afterAll(async () => {
    await Promise.all([planner, ...workers].map((p) => p?.kill()));
    await redis?.stop();
  });

  test('with Redis stopped, 100 calls each answer 503 within a second; after a 60 s outage workers run calls again within 10 s', async () => {
    await redis.kill();
    const outageStart = Date.now();
    const timings = await Promise.all(
      Array.from({ length: 100 }, async () => {
        const t0 = performance.now();
        const r = await api(planner.url, 'POST', '/v1/calls', { tool: 'add', arguments: { a: 1, b: 2 } });
        return { ms: performance.now() - t0, status: r.status, code: r.body?.error?.code };
      }),
    );
    expect(timings.every((t) => t.status === 503 && t.code === 'UNAVAILABLE')).toBe(true);
    expect(Math.max(...timings.map((t) => t.ms))).toBeLessThan(1_000);
    expect((await api(planner.url, 'GET', '/readyz')).status).toBe(503);
    expect((await api(planner.url, 'GET', '/healthz')).status).toBe(200);

    await new Promise((r) => setTimeout(r, Math.max(0, 60_000 - (Date.now() - outageStart))));
    expect(planner.proc.exitCode).toBeNull();
    expect(workers.every((w) => w.proc.exitCode === null)).toBe(true);
    await redis.restart();
    const back = Date.now();
    let id: string | undefined;
    while (!id && Date.now() - back < 10_000) {
      const r = await api(planner.url, 'POST', '/v1/calls', { tool: 'add', arguments: { a: 20, b: 22 } });
      if (r.status === 202) id = r.body.id;
      else await new Promise((res) => setTimeout(res, 100));
    }
    expect(id).toBeDefined();
    const [call] = await waitForCalls(planner.url, [id!], 10_000 - (Date.now() - back));
    expect(call).toMatchObject({ status: 'succeeded', result: 42 });
    console.log(`redis outage: first call after the restart finished ${Date.now() - back} ms after Redis came back`);
  }, 120_000);
});
