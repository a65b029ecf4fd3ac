import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startRedisServer, type RedisServer } from '@toolplane/queue/testing';
import { api, eventually, startPlanner, startWorker, uniquePrefix, waitForCalls, type ServiceProcess } from '../support/services.js';

describe('Redis killed and restarted from its AOF', () => {
  let redis: RedisServer;
  let planner: ServiceProcess;
  let workers: ServiceProcess[] = [];
  let env: Record<string, string> & { REDIS_URL: string; TOOLPLANE_PREFIX: string };

  beforeAll(async () => {
    redis = await startRedisServer({ aof: true });
    env = { REDIS_URL: redis.url, TOOLPLANE_PREFIX: uniquePrefix(), WORKER_LOCK_DURATION_MS: '2000', WORKER_STALLED_INTERVAL_MS: '500' };
    planner = await startPlanner(env);
    workers = await Promise.all([1, 2].map(() => startWorker(env)));
  });
  afterAll(async () => {
    await Promise.all([planner, ...workers].map((p) => p?.kill()));
    await redis?.stop();
  });

  test('3 restarts during a stream of 1,000 accepted calls: all 1,000 succeed', async () => {
    const tool = { description: 'doubles', parameters: { type: 'object', properties: { n: { type: 'integer' } } }, code: 'export default ({ n }) => n * 2', retries: { attempts: 10, backoffMs: 100 } };
    expect((await api(planner.url, 'PUT', '/v1/tools/double', tool)).status).toBe(201);
    const accepted: Array<{ id: string; n: number }> = [];
    let unavailable = 0;
    const submit = async (n: number) => {
      for (;;) {
        const r = await api(planner.url, 'POST', '/v1/calls', { tool: 'double', arguments: { n } }).catch(() => undefined);
        if (r?.status === 202) return accepted.push({ id: r.body.id, n });
        if (r) {
          expect(r.status).toBe(503);
          expect(r.body.error.code).toBe('UNAVAILABLE');
        }
        unavailable++;
        await new Promise((res) => setTimeout(res, 50));
      }
    };
    const chaos = (async () => {
      for (let i = 0; i < 3; i++) {
        await eventually(async () => (accepted.length >= (i + 1) * 220 ? true : undefined), 60_000, 10);
        await redis.kill();
        await new Promise((r) => setTimeout(r, 500));
        await redis.restart();
      }
    })();
    for (let n = 0; n < 1000; n += 10) await Promise.all(Array.from({ length: 10 }, (_, j) => submit(n + j)));
    await chaos;
    expect(accepted).toHaveLength(1000);
    const calls = await waitForCalls(planner.url, accepted.map((a) => a.id), 120_000);
    expect(calls.filter((c) => c.status !== 'succeeded').map((c) => c.status)).toEqual([]);
    expect(calls.map((c) => c.result)).toEqual(accepted.map((a) => a.n * 2));
    console.log(`redis restarts: 1000 accepted, ${unavailable} requests answered 503 during the outages`);
  }, 240_000);
});
