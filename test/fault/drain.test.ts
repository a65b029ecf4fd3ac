import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
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
  let spare: ServiceProcess | undefined;
  let downstream: Server;

  beforeAll(async () => {
    // A downstream that answers after 800 ms: the call awaits it, so the worker's event loop stays free
    // to handle SIGTERM while the call runs.
    downstream = createServer((_req, res) => void setTimeout(() => res.end('ok'), 800)).listen(0, '127.0.0.1');
    await new Promise((r) => downstream.once('listening', r));
    const port = (downstream.address() as AddressInfo).port;
    planner = await startPlanner(env);
    const waiting = {
      description: 'waits 800 ms on a downstream',
      parameters: { type: 'object' },
      code: `export default async (a, ctx) => { await ctx.fetch('http://127.0.0.1:${port}/'); return 'done' }`,
      egress: [`127.0.0.1:${port}`],
      retries: { attempts: 1 },
    };
    expect((await api(planner.url, 'PUT', '/v1/tools/waiting', waiting)).status).toBe(201);
    expect((await api(planner.url, 'PUT', '/v1/tools/slow', SLOW)).status).toBe(201);
  });
  afterAll(async () => {
    await Promise.all([planner?.kill(), spare?.kill()]);
    await new Promise((r) => downstream?.close(r));
  });

  test('a worker finishes the calls it holds, takes no new ones, and exits 0', async () => {
    const draining = await startWorker(env);
    const { body } = await api(planner.url, 'POST', '/v1/calls', { tool: 'waiting', arguments: {} });
    await eventually(async () => ((await api(planner.url, 'GET', `/v1/calls/${body.id}`)).body.status === 'running' ? true : undefined), 10_000, 20);
    const exit = draining.kill('SIGTERM');
    // Once it says it is draining, a new call must wait for another worker.
    await eventually(async () => ((await fetch(`${draining.url}/readyz`).catch(() => undefined))?.status === 503 ? true : undefined), 5_000, 10);
    const later = await api(planner.url, 'POST', '/v1/calls', { tool: 'waiting', arguments: {} });
    expect(await exit).toBe(0);
    const [held] = await waitForCalls(planner.url, [body.id], 10_000);
    expect(held).toMatchObject({ status: 'succeeded', result: 'done', attempts: 1, starts: 1 });
    expect((await api(planner.url, 'GET', `/v1/calls/${later.body.id}`)).body.status).toBe('queued');
    spare = await startWorker(env);
    const [next] = await waitForCalls(planner.url, [later.body.id], 15_000);
    expect(next).toMatchObject({ status: 'succeeded', starts: 1 });
  });

  test('the planner answers the requests in flight before it exits', async () => {
    spare ??= await startWorker(env);
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
