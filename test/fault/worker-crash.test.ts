import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { api, eventually, startPlanner, startWorker, uniquePrefix, waitForCalls, type ServiceProcess } from '../support/services.js';

const FAST_RECOVERY = { WORKER_LOCK_DURATION_MS: '1500', WORKER_STALLED_INTERVAL_MS: '500' };

describe('a worker killed with SIGKILL while running calls loses none of them', () => {
  const env = { REDIS_URL: inject('redisUrl'), TOOLPLANE_PREFIX: uniquePrefix(), ...FAST_RECOVERY };
  let planner: ServiceProcess;
  let survivors: ServiceProcess[] = [];

  beforeAll(async () => {
    planner = await startPlanner(env);
    survivors = await Promise.all([1, 2].map(() => startWorker(env)));
  });
  afterAll(async () => {
    await Promise.all([planner, ...survivors].map((p) => p?.kill()));
  });

  // A call whose worker dies under it twice is poison (POISONED): each round lets the survivors
  // finish what the victim held before the next victim starts, so no call is hit twice.
  test('12 kills of a worker holding running calls: every accepted call succeeds', async () => {
    const slow = {
      description: 'runs for 150 ms and reports where',
      parameters: { type: 'object', properties: { n: { type: 'integer' } } },
      code: 'export default ({ n }) => { const t = Date.now(); while (Date.now() - t < 150) {} return n }',
      retries: { attempts: 5, backoffMs: 10 },
      limits: { timeoutMs: 5_000 },
    };
    expect((await api(planner.url, 'PUT', '/v1/tools/slow', slow)).status).toBe(201);
    const ids: string[] = [];
    let n = 0;
    let killedHolding = 0;
    for (let round = 0; round < 12; round++) {
      const victim = await startWorker(env);
      // More calls than the two survivors have slots for (2 × 8), so the victim holds some.
      const batch = await Promise.all(Array.from({ length: 24 }, () => api(planner.url, 'POST', '/v1/calls', { tool: 'slow', arguments: { n: n++ } })));
      ids.push(...batch.map((r) => r.body.id));
      // Kill it while it holds running calls, as a crash would.
      const holding = await eventually(async () => {
        const text = await (await fetch(`${victim.url}/metrics`)).text();
        const m = /toolplane_worker_active_calls\{tool="slow"\} (\d+)/.exec(text);
        return m && Number(m[1]) > 0 ? Number(m[1]) : undefined;
      }, 10_000, 10).catch(() => 0);
      if (holding > 0) killedHolding++;
      await victim.kill('SIGKILL');
      await waitForCalls(planner.url, batch.map((r) => r.body.id as string), 60_000);
    }
    const calls = await waitForCalls(planner.url, ids, 120_000);
    const statuses = calls.map((c) => c.status);
    expect(statuses.filter((s) => s !== 'succeeded')).toEqual([]);
    expect(calls.map((c) => c.result)).toEqual(ids.map((_, i) => i));
    expect(killedHolding).toBeGreaterThanOrEqual(9);
    // At-least-once: a call whose worker died mid-run is run again elsewhere.
    const reRun = calls.filter((c) => c.starts > 1).length;
    console.log(`worker crashes: ${ids.length} calls, ${killedHolding}/12 kills hit running calls, ${reRun} calls ran more than once`);
  }, 240_000);
});
