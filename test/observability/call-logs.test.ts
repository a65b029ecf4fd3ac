import { afterAll, beforeAll, expect, inject, test } from 'vitest';
import { ADD_TOOL, api, eventually, startPlanner, startWorker, uniquePrefix, type ServiceProcess } from '../support/services.js';

let planner: ServiceProcess;
let worker: ServiceProcess;
const env = { REDIS_URL: inject('redisUrl'), TOOLPLANE_PREFIX: uniquePrefix() };

beforeAll(async () => {
  [planner, worker] = await Promise.all([startPlanner(env), startWorker({ ...env, LOG_LEVEL: 'debug' })]);
});
afterAll(async () => {
  await Promise.all([planner?.kill(), worker?.kill()]);
});

test('every worker log line about a call is JSON and carries its callId', async () => {
  await api(planner.url, 'PUT', '/v1/tools/add', ADD_TOOL);
  await api(planner.url, 'PUT', '/v1/tools/fail', {
    ...ADD_TOOL,
    code: 'export default function () { throw new Error("boom") }',
    retries: { attempts: 1 },
  });
  const ok = await api(planner.url, 'POST', '/v1/calls', { tool: 'add', arguments: { a: 1, b: 2 }, wait: 20_000 });
  const failed = await api(planner.url, 'POST', '/v1/calls', { tool: 'fail', arguments: { a: 1, b: 2 }, wait: 20_000 });
  expect([ok.body.status, failed.body.status]).toEqual(['succeeded', 'failed']);

  // Log lines travel through a pipe: give them a moment to arrive after the answer.
  const expected = [ok.body.id, failed.body.id].sort();
  const aboutCalls = await eventually(async () => {
    const lines = worker
      .output()
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as { msg: string; callId?: string });
    const found = lines.filter((l) => /\bcall\b/.test(l.msg));
    return found.length >= 2 ? found : undefined;
  }, 5_000, 50);
  expect(aboutCalls.every((l) => typeof l.callId === 'string')).toBe(true);
  expect([...new Set(aboutCalls.map((l) => l.callId))].sort()).toEqual(expected);
});
