import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { CallGate, closeRedis, createKeys, createRedisConnection, type RedisConnection } from '@toolplane/queue';
import {
  ADD_TOOL,
  api,
  eventually,
  startPlanner,
  startWorker,
  sumMetric,
  uniquePrefix,
  type ServiceProcess,
} from '../support/services.js';

/** Fails every call: a tool whose downstream never comes back. */
const DOWN = {
  description: 'always fails',
  parameters: { type: 'object' },
  code: "export default () => { throw new Error('downstream is down') }",
  breaker: { volumeThreshold: 2, errorThresholdPercentage: 50, resetTimeoutMs: 60_000 },
  retries: { attempts: 1 },
};

describe('every call has a deadline (schedule-to-close)', () => {
  const env = { REDIS_URL: inject('redisUrl'), TOOLPLANE_PREFIX: uniquePrefix() };
  let planner: ServiceProcess;
  let worker: ServiceProcess;
  let redis: RedisConnection;

  beforeAll(async () => {
    [planner, worker] = await Promise.all([startPlanner(env), startWorker(env)]);
    redis = createRedisConnection(env.REDIS_URL, 'worker');
  });
  afterAll(async () => {
    await Promise.all([planner, worker].map((p) => p?.kill()));
    await closeRedis(redis);
  });

  const post = async (base: string, body: object) => {
    const r = await api(base, 'POST', '/v1/calls', body);
    expect(r.status, JSON.stringify(r.body)).toBeLessThan(300);
    return r.body;
  };
  const status = async (id: string) => (await api(planner.url, 'GET', `/v1/calls/${id}`)).body.status as string;

  test('behind an open breaker, a call with deadlineMs 1500 ends DEADLINE_EXCEEDED on time; one without keeps waiting', async () => {
    expect((await api(planner.url, 'PUT', '/v1/tools/down', DOWN)).status).toBe(201);
    await Promise.all(Array.from({ length: 4 }, () => post(planner.url, { tool: 'down', arguments: {}, wait: 5_000 })));
    await eventually(async () => ((await api(planner.url, 'GET', '/v1/tools/down')).body.stats.breaker === 'open' ? true : undefined), 10_000, 50);

    const patient = await post(planner.url, { tool: 'down', arguments: {} });
    const t0 = Date.now();
    const late = await post(planner.url, { tool: 'down', arguments: {}, deadlineMs: 1_500, wait: 10_000 });
    const elapsed = Date.now() - t0;
    expect(late).toMatchObject({ status: 'failed', error: { code: 'DEADLINE_EXCEEDED' } });
    // Put back until its deadline, not for the breaker's 60 s.
    expect(elapsed).toBeGreaterThanOrEqual(1_400);
    expect(elapsed).toBeLessThan(3_000);
    expect(await status(patient.id)).toBe('queued');
    const text = await (await fetch(`${worker.url}/metrics`)).text();
    expect(sumMetric([text], 'toolplane_tool_calls_total', { tool: 'down', outcome: 'deadline_exceeded' })).toBe(1);
    // Never counted against the breaker: it is still open for the one that waits.
    expect((await api(planner.url, 'GET', '/v1/tools/down')).body.stats.breaker).toBe('open');
    await api(planner.url, 'POST', `/v1/calls/${patient.id}/cancel`);
  });

  test("the planner's CALL_DEFAULT_DEADLINE_MS applies to calls that set none", async () => {
    const strict = await startPlanner({ ...env, CALL_DEFAULT_DEADLINE_MS: '1000' });
    try {
      const t0 = Date.now();
      const late = await post(strict.url, { tool: 'down', arguments: {}, wait: 10_000 });
      expect(late).toMatchObject({ status: 'failed', error: { code: 'DEADLINE_EXCEEDED' } });
      expect(Date.now() - t0).toBeLessThan(2_500);
    } finally {
      await strict.kill();
    }
  });

  test("a held tool: its deadlineMs ends calls that cannot start in time; a call's own deadlineMs overrides it", async () => {
    expect((await api(planner.url, 'PUT', '/v1/tools/held', { ...ADD_TOOL, deadlineMs: 1_500 })).status).toBe(201);
    await new CallGate(redis, createKeys(env.TOOLPLANE_PREFIX)).hold('held', 60_000);
    const t0 = Date.now();
    const late = await post(planner.url, { tool: 'held', arguments: { a: 1, b: 2 }, wait: 10_000 });
    // The hold outlasts the deadline: the call ends when that is known, not after the hold.
    expect(late).toMatchObject({ status: 'failed', error: { code: 'DEADLINE_EXCEEDED' } });
    expect(Date.now() - t0).toBeLessThan(1_500);
    const patient = await post(planner.url, { tool: 'held', arguments: { a: 1, b: 2 }, deadlineMs: 120_000 });
    await new Promise((r) => setTimeout(r, 2_000));
    expect(await status(patient.id)).toBe('queued');
    await api(planner.url, 'POST', `/v1/calls/${patient.id}/cancel`);
  });

  test('a call awaiting approval past its deadlineMs ends DEADLINE_EXCEEDED without running; approving it then is a CONFLICT', async () => {
    expect((await api(planner.url, 'PUT', '/v1/tools/gated', { ...ADD_TOOL, requiresApproval: true })).status).toBe(201);
    const t0 = Date.now();
    const pending = await post(planner.url, { tool: 'gated', arguments: { a: 1, b: 2 }, deadlineMs: 1_000 });
    expect(await status(pending.id)).toBe('awaiting_approval');
    const record = await eventually(async () => {
      const r = (await api(planner.url, 'GET', `/v1/calls/${pending.id}`)).body;
      return r.status === 'failed' ? r : undefined;
    }, 10_000, 50);
    expect(record).toMatchObject({ status: 'failed', error: { code: 'DEADLINE_EXCEEDED' } });
    expect(record.result).toBeUndefined();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1_000);
    expect((await api(planner.url, 'POST', `/v1/calls/${pending.id}/approve`, {})).status).toBe(409);
    // One without a deadline of its own keeps waiting for its approval.
    const patient = await post(planner.url, { tool: 'gated', arguments: { a: 1, b: 2 } });
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await status(patient.id)).toBe('awaiting_approval');
    expect((await api(planner.url, 'POST', `/v1/calls/${patient.id}/approve`, {})).status).toBe(200);
  });

  test('a retried call gets its deadline span again, counted from the retry', async () => {
    const flaky = { ...ADD_TOOL, code: 'export default () => { throw new Error("not yet") }', retries: { attempts: 1 } };
    expect((await api(planner.url, 'PUT', '/v1/tools/flaky', flaky)).status).toBe(201);
    const first = await post(planner.url, { tool: 'flaky', arguments: { a: 1, b: 2 }, deadlineMs: 1_000, wait: 5_000 });
    expect(first).toMatchObject({ status: 'failed', error: { code: 'TOOL_ERROR' } });
    // Retried past the first run's deadline: it runs again (and fails the same way) instead of
    // ending DEADLINE_EXCEEDED without running.
    await new Promise((r) => setTimeout(r, 1_200));
    expect((await api(planner.url, 'POST', `/v1/calls/${first.id}/retry`, {})).status).toBe(202);
    const again = await eventually(async () => {
      const r = (await api(planner.url, 'GET', `/v1/calls/${first.id}`)).body;
      return r.status === 'failed' || r.status === 'succeeded' ? r : undefined;
    }, 10_000, 50);
    expect(again.error?.code).toBe('TOOL_ERROR');
  });

  test('deadlineMs must be a positive integer of at most 7 days', async () => {
    for (const deadlineMs of [0, -5, 1.5, '1000', 7 * 86_400_000 + 1, null]) {
      const r = await api(planner.url, 'POST', '/v1/calls', { tool: 'down', arguments: {}, deadlineMs });
      expect([r.status, r.body.error.code], JSON.stringify(deadlineMs)).toEqual([400, 'INVALID_REQUEST']);
    }
    const tool = await api(planner.url, 'PUT', '/v1/tools/badline', { ...ADD_TOOL, deadlineMs: 0 });
    expect(tool.status).toBe(400);
  });
});
