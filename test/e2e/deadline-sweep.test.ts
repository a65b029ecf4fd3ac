import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { CallGate, TenantQuotas, closeRedis, createKeys, createRedisConnection, type RedisConnection } from '@toolplane/queue';
import { ADD_TOOL, api, eventually, startPlanner, startWorker, sumMetric, uniquePrefix, type ServiceProcess } from '../support/services.js';

/** A tool whose calls take 3 s each, one at a time fleet-wide: anything queued behind one waits. */
const SLOW = {
  description: 'slow',
  parameters: { type: 'object' },
  code: 'export default async () => { await new Promise((r) => setTimeout(r, 3000)); return "done" }',
  concurrency: 1,
  limits: { timeoutMs: 10_000 },
  retries: { attempts: 1 },
};

/** Fails every call: a tool whose downstream never comes back. */
const DOWN = {
  description: 'always fails',
  parameters: { type: 'object' },
  code: "export default () => { throw new Error('downstream is down') }",
  breaker: { volumeThreshold: 2, errorThresholdPercentage: 50, resetTimeoutMs: 60_000 },
  retries: { attempts: 1 },
};

/**
 * Calls waiting past their deadline end at it (the worker fleet's deadline sweep), not when a worker
 * finally takes them: behind a slow tool's backlog, a Retry-After hold, an open breaker.
 */
describe('calls still waiting at their deadline end DEADLINE_EXCEEDED then', () => {
  const env = { REDIS_URL: inject('redisUrl'), TOOLPLANE_PREFIX: uniquePrefix() };
  const keys = createKeys(env.TOOLPLANE_PREFIX);
  let planner: ServiceProcess;
  let worker: ServiceProcess;
  let redis: RedisConnection;
  let quotas: TenantQuotas;

  beforeAll(async () => {
    [planner, worker] = await Promise.all([startPlanner(env), startWorker(env)]);
    redis = createRedisConnection(env.REDIS_URL, 'worker');
    quotas = new TenantQuotas(redis, keys);
  });
  afterAll(async () => {
    await Promise.all([planner, worker].map((p) => p?.kill()));
    await closeRedis(redis);
  });

  const post = async (body: object) => {
    const r = await api(planner.url, 'POST', '/v1/calls', body);
    expect(r.status, JSON.stringify(r.body)).toBeLessThan(300);
    return r.body;
  };
  const record = async (id: string) => (await api(planner.url, 'GET', `/v1/calls/${id}`)).body;
  /** A call of `tool` with a 1 s deadline is answered failed at its deadline; `patient` (one without a near deadline) still waits, then is cancelled. */
  const endsAtItsDeadlineWhile = async (patient: { id: string }, tool: string, args: object) => {
    const t0 = Date.now();
    const late = await post({ tool, arguments: args, deadlineMs: 1_000, wait: 10_000 });
    const answeredMs = Date.now() - t0;
    expect(late).toMatchObject({ status: 'failed', error: { code: 'DEADLINE_EXCEEDED' } });
    expect(answeredMs).toBeGreaterThanOrEqual(1_000);
    expect(answeredMs).toBeLessThan(2_500);
    expect((await record(patient.id)).status).toBe('queued');
    await api(planner.url, 'POST', `/v1/calls/${patient.id}/cancel`);
  };
  const deadlineExceeded = async () =>
    sumMetric([await (await fetch(`${worker.url}/metrics`)).text()], 'toolplane_tool_calls_total', { outcome: 'deadline_exceeded' });

  test("behind a slow tool's backlog: waiters answered at the deadline, the running call and later deadlines untouched, webhooks sent", async () => {
    expect((await api(planner.url, 'PUT', '/v1/tools/slow', SLOW)).status).toBe(201);
    const hooks: string[] = [];
    const receiver: Server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        hooks.push(body);
        res.statusCode = 204;
        res.end();
      });
    });
    receiver.listen(0, '127.0.0.1');
    await once(receiver, 'listening');
    const callbackUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
    try {
      const running = await post({ tool: 'slow', arguments: {} });
      await eventually(async () => ((await record(running.id)).status === 'running' ? true : undefined), 10_000, 20);
      const before = (await quotas.usage('default')).callsInFlight;
      const metricBefore = await deadlineExceeded();
      const patient = await post({ tool: 'slow', arguments: {}, deadlineMs: 60_000 });
      const untimed = await post({ tool: 'slow', arguments: {} });
      const t0 = Date.now();
      const late = await Promise.all([
        post({ tool: 'slow', arguments: {}, deadlineMs: 1_000, wait: 10_000 }),
        post({ tool: 'slow', arguments: {}, deadlineMs: 1_000, wait: 10_000 }),
        post({ tool: 'slow', arguments: {}, deadlineMs: 1_000, wait: 10_000, callbackUrl }),
      ]);
      const answeredMs = Date.now() - t0;
      for (const r of late) expect(r).toMatchObject({ status: 'failed', error: { code: 'DEADLINE_EXCEEDED', retryable: false } });
      // At the deadline, not 3 s later when the running call would have left the slot.
      expect(answeredMs).toBeGreaterThanOrEqual(1_000);
      expect(answeredMs).toBeLessThan(2_500);
      expect((await record(running.id)).status).toBe('running');
      expect((await record(patient.id)).status).toBe('queued');
      expect((await record(untimed.id)).status).toBe('queued');
      // The three left the tenant's calls in flight; the others are still in it.
      expect((await quotas.usage('default')).callsInFlight).toBe(before + 2);
      expect((await deadlineExceeded()) - metricBefore).toBe(3);
      const hook = await eventually(async () => hooks[0], 5_000, 20);
      expect(JSON.parse(hook)).toMatchObject({ type: 'call.finished', data: { id: late[2].id, status: 'failed', error: { code: 'DEADLINE_EXCEEDED' } } });
      // The running call finishes as it would have.
      const done = await eventually(async () => ((await record(running.id)).status === 'succeeded' ? true : undefined), 10_000, 50);
      expect(done).toBe(true);
    } finally {
      receiver.close();
    }
  });

  test('behind a Retry-After hold: calls queued during it end at their deadline, not when the hold ends', async () => {
    expect((await api(planner.url, 'PUT', '/v1/tools/held', ADD_TOOL)).status).toBe(201);
    await new CallGate(redis, keys).hold('held', 60_000);
    // A call that can wait the hold out meets it: the hold pauses the tool's queue fleet-wide, and
    // no worker takes the tool's calls until it ends. (A call whose deadline comes before the hold
    // ends is ended by the worker that meets it, at once.)
    const patient = await post({ tool: 'held', arguments: { a: 1, b: 2 }, deadlineMs: 120_000 });
    const limited = () => fetch(`${worker.url}/metrics`).then(async (r) => sumMetric([await r.text()], 'toolplane_tool_calls_total', { tool: 'held', outcome: 'rate_limited' }));
    await eventually(async () => ((await limited()) >= 1 ? true : undefined), 10_000, 20);
    await endsAtItsDeadlineWhile(patient, 'held', { a: 1, b: 2 });
  });

  test('behind an open breaker: a call with deadlineMs 1000 ends at it; one without waits on', async () => {
    expect((await api(planner.url, 'PUT', '/v1/tools/down', DOWN)).status).toBe(201);
    await Promise.all(Array.from({ length: 4 }, () => post({ tool: 'down', arguments: {}, wait: 5_000 })));
    await eventually(async () => ((await api(planner.url, 'GET', '/v1/tools/down')).body.stats.breaker === 'open' ? true : undefined), 10_000, 50);
    const patient = await post({ tool: 'down', arguments: {} });
    await endsAtItsDeadlineWhile(patient, 'down', {});
  });
});
