import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { api, startPlanner, startWorker, uniquePrefix, waitForCalls, type ServiceProcess } from '../support/services.js';

describe('limits adapt to a downstream that asks to slow down', () => {
  const env = { REDIS_URL: inject('redisUrl'), TOOLPLANE_PREFIX: uniquePrefix() };
  let planner: ServiceProcess;
  let worker: ServiceProcess;
  let downstream: Server;
  let port: number;
  let busy = true;
  const hits: number[] = [];

  beforeAll(async () => {
    // Answers 429 with Retry-After: 2 until told otherwise, then 200.
    downstream = createServer((_req, res) => {
      hits.push(Date.now());
      if (busy) res.writeHead(429, { 'retry-after': '2' }).end();
      else res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    }).listen(0, '127.0.0.1');
    await new Promise((r) => downstream.once('listening', r));
    port = (downstream.address() as AddressInfo).port;
    [planner, worker] = await Promise.all([startPlanner(env), startWorker(env)]);
  });
  afterAll(async () => {
    await Promise.all([planner?.kill(), worker?.kill()]);
    await new Promise((r) => downstream?.close(r));
  });

  test('a 429 with Retry-After holds the whole tool back, fleet-wide, for the time asked; GET /v1/tools shows it', async () => {
    const tool = {
      description: 'calls a rate-limited downstream',
      parameters: { type: 'object' },
      code: `export default async (a, ctx) => { const r = await ctx.fetch('http://127.0.0.1:${port}/'); if (r.status === 429) throw new Error('busy'); return r.status }`,
      egress: [`127.0.0.1:${port}`],
      retries: { attempts: 5, backoffMs: 10 },
    };
    expect((await api(planner.url, 'PUT', '/v1/tools/downstream', tool)).status).toBe(201);
    const first = await api(planner.url, 'POST', '/v1/calls', { tool: 'downstream', arguments: {} });
    const held = await (async () => {
      for (let i = 0; i < 100; i++) {
        const stats = (await api(planner.url, 'GET', '/v1/tools/downstream')).body.stats;
        if (stats.rateLimitHoldMs > 0) return stats.rateLimitHoldMs;
        await new Promise((r) => setTimeout(r, 20));
      }
      return 0;
    })();
    expect(held).toBeGreaterThan(500);
    expect(held).toBeLessThanOrEqual(2_000);
    busy = false;
    const heldAt = Date.now();
    const later = await Promise.all(Array.from({ length: 5 }, () => api(planner.url, 'POST', '/v1/calls', { tool: 'downstream', arguments: {} })));
    const calls = await waitForCalls(planner.url, [first.body.id, ...later.map((r) => r.body.id)], 20_000);
    expect(calls.map((c) => c.status)).toEqual(Array(6).fill('succeeded'));
    // Nobody hit the downstream again until the hold it asked for was over.
    const after429 = hits.filter((t) => t > heldAt);
    expect(Math.min(...after429) - heldAt).toBeGreaterThanOrEqual(held - 100);
  });
});
