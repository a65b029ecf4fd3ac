import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ToolSpec } from '@toolplane/core';
import { createCalls, ToolRegistry, closeRedis, createKeys, createRedisConnection, waitForRedis, type RedisConnection } from '@toolplane/queue';
import { startRedisServer, type RedisServer } from '@toolplane/queue/testing';
import { startPlanner, startWorker, uniquePrefix, type ServiceProcess } from '../support/services.js';

/**
 * Issue 14: two tenants flooding the same tool get starts in proportion. Tenant A floods first,
 * tenant B right after; while both have calls waiting, each should get about half of the starts.
 */
describe('two tenants flooding one tool', () => {
  let redis: RedisServer;
  let planner: ServiceProcess;
  let worker: ServiceProcess;
  let writer: RedisConnection;
  const prefix = uniquePrefix();

  beforeAll(async () => {
    redis = await startRedisServer();
    const env = { REDIS_URL: redis.url, TOOLPLANE_PREFIX: prefix };
    planner = await startPlanner(env);
    worker = await startWorker({ ...env, WORKER_CONCURRENCY: '4' });
    writer = createRedisConnection(redis.url, 'worker');
    await waitForRedis(writer);
  });
  afterAll(async () => {
    await Promise.all([planner?.kill(), worker?.kill()]);
    await closeRedis(writer);
    await redis?.stop();
  });

  test('get starts in proportion within 20 %', async () => {
    const registry = new ToolRegistry(writer, createKeys(prefix));
    const calls = createCalls(writer, createKeys(prefix), { maxCallsInFlight: 0 });
    const spec = ToolSpec.parse({
      description: 'waits 50 ms',
      parameters: { type: 'object' },
      code: 'export default async () => { await new Promise((r) => setTimeout(r, 50)); return 1 }',
      concurrency: 10_000,
    });
    const { tool } = await registry.put('shared', spec, 'default');
    await calls.lifecycle.applyToolSettings(tool);
    await calls.producer.enqueueBulk(tool, Array.from({ length: 400 }, () => ({})), { tenant: 'a' });
    await calls.producer.enqueueBulk(tool, Array.from({ length: 400 }, () => ({})), { tenant: 'b' });
    const bothQueued = Date.now();
    const queue = calls.queues.queue('shared');
    await expect.poll(async () => (await queue.getJobCounts('completed')).completed, { timeout: 60_000, interval: 100 }).toBeGreaterThanOrEqual(240);
    // The first 200 starts after both floods were queued: both tenants had calls waiting all along.
    const jobs = await queue.getJobs(['completed', 'active']);
    const starts = jobs
      .filter((j) => (j.processedOn ?? 0) >= bothQueued)
      .sort((x, y) => x.processedOn! - y.processedOn!)
      .slice(0, 200);
    expect(starts).toHaveLength(200);
    const a = starts.filter((j) => j.data.tenant === 'a').length;
    const b = starts.length - a;
    console.log(`starts while both tenants waited: a ${a}, b ${b}`);
    expect(Math.abs(a - b) / Math.max(a, b)).toBeLessThanOrEqual(0.2);
  });
});
