import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { createAgentKeys } from '@toolplane/agent';
import { startScriptedModelServer, type ScriptedModelServer } from '@toolplane/agent/testing';
import { ADD_TOOL, api, startPlanner, startWorker, uniquePrefix, type ServiceProcess } from '../support/services.js';
import { pollUntil, waitReady } from '../support/poll.js';
import { readSse } from '../support/sse.js';

describe('runs survive a planner crash', () => {
  let llm: ScriptedModelServer;
  let redis: Redis;
  const services: ServiceProcess[] = [];
  const prefix = uniquePrefix();
  const env = {
    REDIS_URL: inject('redisUrl'),
    TOOLPLANE_PREFIX: prefix,
    OPENAI_BASE_URL: '',
    TOOLPLANE_MODEL: 'restart',
    // A crashed planner's runs are taken over once its lease lapses; short here to keep the test fast.
    RUN_LEASE_MS: '1000',
    RUN_SCAN_INTERVAL_MS: '200',
  };

  beforeAll(async () => {
    llm = await startScriptedModelServer();
    env.OPENAI_BASE_URL = llm.baseUrl;
    redis = new Redis(env.REDIS_URL);
  });
  afterAll(async () => {
    await Promise.all(services.map((s) => s.kill('SIGKILL')));
    await llm?.close();
    await redis?.quit();
  });

  test('a run whose planner is killed mid-step is resumed by the next planner, its tool call run once; an unreadable run ends failed', async () => {
    llm.script('restart', [{ toolCalls: [{ id: 'a', name: 'add', arguments: { a: 20, b: 22 } }] }, { content: 'forty-two' }]);
    // No worker yet: the run's call stays queued while its planner dies.
    const first = await startPlanner(env);
    services.push(first);
    await waitReady(first.url);
    expect((await api(first.url, 'PUT', '/v1/tools/add', ADD_TOOL)).status).toBe(201);
    const { body } = await api(first.url, 'POST', '/v1/runs', { input: 'What is 20 + 22?' });
    const queued = await pollUntil(
      async () => (await api(first.url, 'GET', `/v1/runs/${body.id}`)).body,
      (r) => r.current?.toolCalls[0]?.status === 'queued',
    );
    const callId = queued.current.toolCalls[0].callId;
    await first.kill('SIGKILL');

    // A run whose state can't be read is ended with a clear status rather than left hanging.
    const keys = createAgentKeys(prefix);
    const brokenId = '01m8h8bdenf6x3nad0cg33tk8p';
    await redis.set(keys.run(brokenId), '{not json');
    await redis.zadd(keys.runsActive, Date.now(), brokenId);

    const [second, worker] = await Promise.all([startPlanner(env), startWorker(env)]);
    services.push(second, worker);
    await Promise.all([waitReady(second.url), waitReady(worker.url)]);
    const run = await pollUntil(
      async () => (await api(second.url, 'GET', `/v1/runs/${body.id}`)).body,
      (r) => ['succeeded', 'failed', 'budget_exceeded'].includes(r.status),
    );
    expect(run).toMatchObject({ status: 'succeeded', finalAnswer: 'forty-two' });
    expect(run.steps[0].toolCalls[0]).toMatchObject({ callId, status: 'succeeded', result: 42 });

    const queue = new Queue('{add}', { connection: redis, prefix });
    expect(await queue.getJobCounts('completed', 'waiting', 'active', 'failed')).toEqual({ completed: 1, waiting: 0, active: 0, failed: 0 });
    await queue.close();

    const events = await readSse(`${second.url}/v1/runs/${body.id}/events`, { until: 'finished' });
    expect(events.filter((e) => e.event === 'step').map((e) => e.data.step)).toEqual(run.steps);

    const broken = await pollUntil(
      async () => (await api(second.url, 'GET', `/v1/runs/${brokenId}`)).body,
      (r) => r.status === 'failed',
    );
    expect(broken.error).toMatchObject({ code: 'RESUME_FAILED' });
    expect(await redis.zscore(keys.runsActive, brokenId)).toBeNull();
  });

  test('SIGTERM ends open event streams at once and hands the run over without waiting for the lease', async () => {
    // The model thinks for a while, so the run is mid-turn when its planner stops.
    llm.script('graceful', [{ delayMs: 1_500, toolCalls: [{ id: 'a', name: 'add', arguments: { a: 1, b: 1 } }] }, { content: 'two' }]);
    const planners = await Promise.all([startPlanner({ ...env, RUN_LEASE_MS: '60000' }), startPlanner({ ...env, RUN_LEASE_MS: '60000' })]);
    services.push(...planners);
    const [leaving, staying] = planners as [ServiceProcess, ServiceProcess];
    await Promise.all(planners.map((p) => waitReady(p.url)));
    const { body } = await api(leaving.url, 'POST', '/v1/runs', { input: 'one plus one', model: 'graceful' });
    expect(body.id).toBeDefined();
    let connected!: () => void;
    const firstEvent = new Promise<void>((r) => (connected = r));
    const stream = readSse(`${leaving.url}/v1/runs/${body.id}/events`, { timeoutMs: 30_000, onEvent: () => connected() });
    await firstEvent;
    const startedAt = Date.now();
    expect(await leaving.kill('SIGTERM')).toBe(0);
    expect(Date.now() - startedAt).toBeLessThan(5_000);
    await stream; // ended by the planner, not by the timeout
    // The lease was given up, so the other planner finishes the run long before the 60 s lease would lapse.
    const run = await pollUntil(
      async () => (await api(staying.url, 'GET', `/v1/runs/${body.id}`)).body,
      (r) => r.status === 'succeeded',
      15_000,
    );
    expect(run.finalAnswer).toBe('two');
  });
});
