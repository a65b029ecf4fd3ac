import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { api, eventually, startPlanner, startWorker, uniquePrefix, waitForCalls, type ServiceProcess } from '../support/services.js';

const SLOW = {
  description: 'runs for 800 ms',
  parameters: { type: 'object' },
  code: 'export default () => { const t = Date.now(); while (Date.now() - t < 800) {} return "done" }',
  retries: { attempts: 1 },
};

describe('SIGTERM drains', () => {
  const env = { REDIS_URL: inject('redisUrl'), TOOLPLANE_PREFIX: uniquePrefix() };
  let planner: ServiceProcess;
  let spare: ServiceProcess;

  beforeAll(async () => {
    planner = await startPlanner(env);
    expect((await api(planner.url, 'PUT', '/v1/tools/slow', SLOW)).status).toBe(201);
  });
  afterAll(async () => {
    await Promise.all([planner?.kill(), spare?.kill()]);
  });

  test('a worker finishes the calls it holds, takes no new ones, and exits 0', async () => {
    const draining = await startWorker(env);
    const { body } = await api(planner.url, 'POST', '/v1/calls', { tool: 'slow', arguments: {} });
    await eventually(async () => ((await api(planner.url, 'GET', `/v1/calls/${body.id}`)).body.status === 'running' ? true : undefined), 10_000, 20);
    const exit = draining.kill('SIGTERM');
    // Queued while it drains: must wait for another worker, not be taken by the draining one.
    const later = await api(planner.url, 'POST', '/v1/calls', { tool: 'slow', arguments: {} });
    expect(await exit).toBe(0);
    const [held] = await waitForCalls(planner.url, [body.id], 10_000);
    expect(held).toMatchObject({ status: 'succeeded', result: 'done', attempts: 1, starts: 1 });
    expect((await api(planner.url, 'GET', `/v1/calls/${later.body.id}`)).body.status).toBe('queued');
    spare = await startWorker(env);
    const [next] = await waitForCalls(planner.url, [later.body.id], 15_000);
    expect(next).toMatchObject({ status: 'succeeded', starts: 1 });
  });

  test('the planner answers the requests in flight before it exits', async () => {
    const second = await startPlanner(env);
    const waiting = api(second.url, 'POST', '/v1/calls', { tool: 'slow', arguments: {}, wait: 10_000 });
    await new Promise((r) => setTimeout(r, 200));
    const exit = second.kill('SIGTERM');
    const answered = await waiting;
    expect(answered.status).toBe(200);
    expect(answered.body).toMatchObject({ status: 'succeeded', result: 'done' });
    expect(await exit).toBe(0);
  });
});
