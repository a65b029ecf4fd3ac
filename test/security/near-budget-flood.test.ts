import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { watchHealth } from '../support/health.js';
import { api, startPlanner, startWorker, uniquePrefix, waitForCalls, type ServiceProcess } from '../support/services.js';

/**
 * A tenant floods one tool whose calls each stay just under the sandbox's synchronous budget (~3 ms),
 * every way a call can keep its isolate busy. Calls that arrive in one turn take turns on one warm
 * isolate, and a turn spends at most 10 ms starting calls (`isolate-pool.int.test.ts` shows
 * the chain and its bound in one process; through a worker the calls reach the host spread over
 * turns). Here, against real processes at WORKER_CONCURRENCY=400: all calls succeed, and the planner's
 * and the worker's `/healthz` answer within a second throughout.
 */
const SPIN_3MS = 'const end = Date.now() + 3; while (Date.now() < end);';
const CASES: Array<[string, string]> = [
  ['a plain loop', `export default () => { ${SPIN_3MS} return 1 }`],
  ['a microtask chain', 'export default () => { const end = Date.now() + 3; const step = () => (Date.now() < end ? Promise.resolve().then(step) : 1); return step() }'],
  ['a thenable', `export default () => ({ then(resolve) { ${SPIN_3MS} resolve(1) } })`],
  ['toJSON', `export default () => ({ toJSON() { ${SPIN_3MS} return 1 } })`],
  ['the top level, run again per call', `${SPIN_3MS}\nexport default () => 1`],
  ['a getter read when the result is copied out', `export default () => ({ get v() { ${SPIN_3MS} return 1 } })`],
  ['a Proxy read when the result is copied out', `export default () => new Proxy({}, { ownKeys() { ${SPIN_3MS} return [] } })`],
  ['native operations in a loop', `const big = Array.from({ length: 200 }, (_, i) => ({ i, s: 'x'.repeat(20) }));\nexport default () => { const end = Date.now() + 3; while (Date.now() < end) JSON.parse(JSON.stringify(big)); return 1 }`],
];

describe('a flood of calls just under the sync budget', () => {
  let planner: ServiceProcess;
  let worker: ServiceProcess;
  const env = { REDIS_URL: inject('redisUrl'), TOOLPLANE_PREFIX: uniquePrefix() };

  beforeAll(async () => {
    [planner, worker] = await Promise.all([startPlanner(env), startWorker({ ...env, WORKER_CONCURRENCY: '400', SANDBOX_HOSTS: '1' })]);
  });
  afterAll(async () => {
    await Promise.all([planner, worker].map((p) => p?.kill()));
  });

  test.each(CASES)('%s: 400 calls at once all succeed, every /healthz within 1 s', async (name, code) => {
    const tool = `flood-${name.replaceAll(/[^a-z]+/g, '-')}`;
    expect((await api(planner.url, 'PUT', `/v1/tools/${tool}`, { description: name, parameters: { type: 'object' }, code, retries: { attempts: 1 } })).status).toBe(201);
    const watch = watchHealth([planner.url, worker.url]);
    let records: Array<{ status: string; result?: unknown; error?: unknown }>;
    try {
      const ids = await Promise.all(Array.from({ length: 400 }, async () => (await api(planner.url, 'POST', '/v1/calls', { tool, arguments: {} })).body.id as string));
      records = await waitForCalls(planner.url, ids, 60_000);
    } finally {
      expect(await watch.stop()).toEqual([]);
    }
    expect(records.filter((r) => r.status !== 'succeeded')).toEqual([]);
  });
});
