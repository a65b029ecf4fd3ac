import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import {
  ADD_TOOL,
  api,
  eventually,
  startPlanner,
  startWorker,
  sumMetric,
  uniquePrefix,
  waitForCalls,
  type ServiceProcess,
} from '../support/services.js';

/** Fails until `recoverAt` (an argument), the way a tool fails while its downstream is down. */
const FLAKY = {
  description: 'fails until recoverAt',
  parameters: { type: 'object', properties: { recoverAt: { type: 'number' } }, required: ['recoverAt'] },
  code: "export default ({ recoverAt }) => { if (Date.now() < recoverAt) throw new Error('downstream is down'); return 'ok' }",
};

describe('breakers, retries, cancellation, idempotency, cache and approval', () => {
  const env = { REDIS_URL: inject('redisUrl'), TOOLPLANE_PREFIX: uniquePrefix() };
  let planner: ServiceProcess;
  let workers: ServiceProcess[] = [];

  beforeAll(async () => {
    planner = await startPlanner(env);
    workers = await Promise.all([1, 2].map(() => startWorker(env)));
    expect((await api(planner.url, 'PUT', '/v1/tools/add', ADD_TOOL)).status).toBe(201);
  });
  afterAll(async () => {
    await Promise.all([planner, ...workers].map((p) => p?.kill()));
  });

  const metricsTexts = () => Promise.all(workers.map(async (w) => (await fetch(`${w.url}/metrics`)).text()));
  const post = async (body: object) => {
    const r = await api(planner.url, 'POST', '/v1/calls', body);
    expect(r.status, JSON.stringify(r.body)).toBeLessThan(300);
    return r.body;
  };

  test('an open breaker delays calls instead of failing them; all succeed after recovery', async () => {
    const tool = { ...FLAKY, breaker: { volumeThreshold: 4, errorThresholdPercentage: 50, resetTimeoutMs: 800 }, retries: { attempts: 2, backoffMs: 50 } };
    expect((await api(planner.url, 'PUT', '/v1/tools/flaky', tool)).status).toBe(201);
    const recoverAt = Date.now() + 3_000;
    const early = await Promise.all(Array.from({ length: 8 }, () => post({ tool: 'flaky', arguments: { recoverAt } })));
    const state = await eventually(async () => {
      const s = (await api(planner.url, 'GET', '/v1/tools/flaky')).body.stats.breaker;
      return s === 'open' ? s : undefined;
    }, 10_000, 50);
    expect(state).toBe('open');
    const whileOpen = await Promise.all(Array.from({ length: 20 }, () => post({ tool: 'flaky', arguments: { recoverAt } })));
    const later = await waitForCalls(planner.url, whileOpen.map((c) => c.id), 30_000);
    expect(later.map((c) => c.status)).toEqual(Array(20).fill('succeeded'));
    expect(sumMetric(await metricsTexts(), 'toolplane_tool_calls_total', { tool: 'flaky', outcome: 'circuit_open' })).toBeGreaterThan(0);
    // Calls made before the breaker opened used their attempts on real failures; none is lost either way.
    const first = await waitForCalls(planner.url, early.map((c) => c.id), 30_000);
    expect(first.every((c) => ['succeeded', 'failed'].includes(c.status))).toBe(true);
    expect((await api(planner.url, 'GET', '/v1/tools/flaky')).body.stats.breaker).toBe('closed');
  });

  test('a failed call is kept, listed, and runs again on retry', async () => {
    expect((await api(planner.url, 'PUT', '/v1/tools/once', { ...FLAKY, retries: { attempts: 2, backoffMs: 10 } })).status).toBe(201);
    const recoverAt = Date.now() + 1_000;
    const call = await post({ tool: 'once', arguments: { recoverAt }, wait: 10_000 });
    expect(call).toMatchObject({ status: 'failed', attempts: 2, error: { code: 'TOOL_ERROR', message: expect.stringContaining('downstream is down') } });
    const listed = await api(planner.url, 'GET', '/v1/calls?status=failed&tool=once');
    expect(listed.body.calls.map((c: { id: string }) => c.id)).toContain(call.id);
    await eventually(async () => (Date.now() > recoverAt ? true : undefined));
    const retried = await api(planner.url, 'POST', `/v1/calls/${call.id}/retry`);
    expect(retried.status).toBe(202);
    const [after] = await waitForCalls(planner.url, [call.id]);
    expect(after).toMatchObject({ status: 'succeeded', result: 'ok' });
    const again = await api(planner.url, 'POST', `/v1/calls/${call.id}/retry`);
    expect([again.status, again.body.error.code]).toEqual([409, 'CONFLICT']);
  });

  test('the audit trail pages newest first with a cursor', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push((await post({ tool: 'add', arguments: { a: i, b: 0 } })).id);
    await waitForCalls(planner.url, ids);
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await api(planner.url, 'GET', `/v1/calls?tool=add&limit=3${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.status).toBe(200);
      seen.push(...page.body.calls.map((c: { id: string }) => c.id));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(seen.slice(0, 7)).toEqual([...ids].reverse());
    expect((await api(planner.url, 'GET', '/v1/calls?status=bogus')).body.error.code).toBe('INVALID_REQUEST');
  });

  test('a running call is cancelled within a second and its worker takes the next call', async () => {
    const hang = { description: 'awaits forever', parameters: { type: 'object' }, code: 'export default async () => { await new Promise(() => {}) }', limits: { timeoutMs: 30_000 }, retries: { attempts: 1 } };
    expect((await api(planner.url, 'PUT', '/v1/tools/hang', hang)).status).toBe(201);
    const { id } = await post({ tool: 'hang', arguments: {} });
    await eventually(async () => ((await api(planner.url, 'GET', `/v1/calls/${id}`)).body.status === 'running' ? true : undefined), 10_000, 20);
    const t0 = Date.now();
    const cancelled = await api(planner.url, 'POST', `/v1/calls/${id}/cancel`);
    expect(cancelled.body).toMatchObject({ id, status: 'cancelled', error: { code: 'CANCELLED' } });
    expect(Date.now() - t0).toBeLessThan(1_000);
    const next = await post({ tool: 'add', arguments: { a: 1, b: 1 }, wait: 5_000 });
    expect(next).toMatchObject({ status: 'succeeded', result: 2 });
    expect(Date.now() - t0).toBeLessThan(2_000);
  });

  test('a queued call is cancelled at once and never runs', async () => {
    const { id } = await post({ tool: 'add', arguments: { a: 1, b: 1 }, delayMs: 60_000 });
    const res = await api(planner.url, 'POST', `/v1/calls/${id}/cancel`);
    expect(res.body).toMatchObject({ id, status: 'cancelled' });
    expect((await api(planner.url, 'GET', `/v1/calls/${id}`)).body.status).toBe('cancelled');
  });

  test('50 concurrent requests with one idempotency key make one execution', async () => {
    const counter = { description: 'counts', parameters: { type: 'object' }, code: 'export default () => Date.now()' };
    expect((await api(planner.url, 'PUT', '/v1/tools/idem', counter)).status).toBe(201);
    const answers = await Promise.all(
      Array.from({ length: 50 }, () => post({ tool: 'idem', arguments: {}, idempotencyKey: 'order-42', wait: 10_000 })),
    );
    expect(new Set(answers.map((a) => a.id)).size).toBe(1);
    expect(new Set(answers.map((a) => a.result)).size).toBe(1);
    expect(sumMetric(await metricsTexts(), 'toolplane_tool_calls_total', { tool: 'idem' })).toBe(1);
  });

  test('a deterministic tool answers repeated arguments from the cache', async () => {
    const random = { description: 'random', parameters: { type: 'object' }, code: 'export default () => Math.random()', cacheTtlMs: 60_000 };
    expect((await api(planner.url, 'PUT', '/v1/tools/cached', random)).status).toBe(201);
    const first = await post({ tool: 'cached', arguments: { x: 1, y: 2 }, wait: 5_000 });
    const second = await post({ tool: 'cached', arguments: { y: 2, x: 1 }, wait: 5_000 });
    const other = await post({ tool: 'cached', arguments: { x: 2 }, wait: 5_000 });
    expect(first.cached).toBeUndefined();
    expect(second).toMatchObject({ status: 'succeeded', cached: true, result: first.result });
    expect(other.result).not.toBe(first.result);
  });

  test('a call that needs approval waits, runs after approve, and fails REJECTED after reject', async () => {
    expect((await api(planner.url, 'PUT', '/v1/tools/guarded', { ...ADD_TOOL, requiresApproval: true })).status).toBe(201);
    const call = await post({ tool: 'guarded', arguments: { a: 2, b: 2 } });
    const waiting = await api(planner.url, 'GET', `/v1/calls/${call.id}`);
    expect(waiting.body).toMatchObject({ status: 'awaiting_approval', argsHash: expect.stringMatching(/^[0-9a-f]{64}$/) });
    const wrong = await api(planner.url, 'POST', `/v1/calls/${call.id}/approve`, { argsHash: '0'.repeat(64) });
    expect([wrong.status, wrong.body.error.code]).toEqual([409, 'CONFLICT']);
    const approved = await api(planner.url, 'POST', `/v1/calls/${call.id}/approve`, { argsHash: waiting.body.argsHash });
    expect(approved.status).toBe(200);
    const [done] = await waitForCalls(planner.url, [call.id]);
    expect(done).toMatchObject({ status: 'succeeded', result: 4 });

    const other = await post({ tool: 'guarded', arguments: { a: 1, b: 1 } });
    const rejected = await api(planner.url, 'POST', `/v1/calls/${other.id}/reject`);
    expect(rejected.body).toMatchObject({ status: 'failed', error: { code: 'REJECTED' } });
    const twice = await api(planner.url, 'POST', `/v1/calls/${other.id}/approve`);
    expect([twice.status, twice.body.error.code]).toEqual([409, 'CONFLICT']);
  });
});
