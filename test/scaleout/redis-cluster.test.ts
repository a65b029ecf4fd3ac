import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Cluster, Redis } from 'ioredis';
import { startRedisCluster, type RedisCluster } from '@toolplane/queue/testing';
import {
  ADD_TOOL,
  api,
  eventually,
  maxInWindow,
  startPlanner,
  startWorker,
  sumMetric,
  uniquePrefix,
  waitForCalls,
  type ServiceProcess,
} from '../support/services.js';

// Short locks so a killed worker's calls are taken over within about 2 s instead of 10 + 3 s.
const FAST_RECOVERY = { WORKER_LOCK_DURATION_MS: '1500', WORKER_STALLED_INTERVAL_MS: '500' };

/** Runs `n` calls of `tool` without waiting; returns their ids. */
async function post(base: string, tool: string, n: number, args: (i: number) => unknown): Promise<string[]> {
  const replies = await Promise.all(Array.from({ length: n }, (_, i) => api(base, 'POST', '/v1/calls', { tool, arguments: args(i) })));
  for (const r of replies) expect(r.status).toBe(202);
  return replies.map((r) => r.body.id as string);
}

async function metrics(svc: ServiceProcess): Promise<string> {
  return (await fetch(`${svc.url}/metrics`)).text();
}

describe('planner and workers on a 3-master Redis Cluster', () => {
  let cluster: RedisCluster;
  let admin: Cluster;
  let planner: ServiceProcess;
  const workers: ServiceProcess[] = [];
  let env: { REDIS_URL: string; TOOLPLANE_PREFIX: string } & Record<string, string>;
  // A downstream that answers after `?ms=`: calls that take a while without burning the CPU we share.
  let slowServer: Server;
  let slowPort: number;

  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3 });
    admin = new Cluster([{ host: '127.0.0.1', port: cluster.nodes[0]!.port }]);
    env = { REDIS_URL: cluster.url, TOOLPLANE_PREFIX: uniquePrefix(), ...FAST_RECOVERY };
    slowServer = createServer((req, res) => {
      const ms = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('ms') ?? 0);
      setTimeout(() => res.end('{"ok":true}'), ms);
    });
    await new Promise<void>((r) => slowServer.listen(0, '127.0.0.1', r));
    slowPort = (slowServer.address() as AddressInfo).port;
    planner = await startPlanner(env);
    workers.push(...(await Promise.all([1, 2].map(() => startWorker(env)))));
  });
  afterAll(async () => {
    await Promise.all([planner, ...workers].map((p) => p?.kill()));
    admin?.disconnect();
    slowServer?.close();
    await cluster?.stop();
  });

  /** The port of the master that serves `key`, from the cluster's own slot map. */
  async function nodeOf(key: string): Promise<number> {
    const slot = Number(await admin.cluster('KEYSLOT', key));
    const ranges = await admin.cluster('SLOTS');
    return ranges.find(([from, to]) => slot >= from && slot <= to)![2]![1];
  }

  const slowTool = (ms: number) => ({
    description: `answers after ${ms} ms`,
    parameters: { type: 'object', properties: { n: { type: 'integer' } } },
    code: `export default async ({ n }, ctx) => { await ctx.fetch("http://127.0.0.1:${slowPort}/?ms=${ms}"); return n }`,
    egress: [`127.0.0.1:${slowPort}`],
    retries: { attempts: 5, backoffMs: 10 },
    limits: { timeoutMs: 10_000 },
  });

  test('6 tools whose queues live on different masters: every call succeeds', async () => {
    const tools = ['add-a', 'add-b', 'add-c', 'add-d', 'add-e', 'add-f'];
    for (const t of tools) expect((await api(planner.url, 'PUT', `/v1/tools/${t}`, ADD_TOOL)).status).toBe(201);
    // Every key of one BullMQ queue shares the `{tool}` hash tag, hence one slot and one master.
    const homes = new Map<string, number>();
    for (const t of tools) {
      const base = `${env.TOOLPLANE_PREFIX}:{${t}}`;
      const slots = new Set(await Promise.all(['wait', 'active', 'id', 'meta', 'events'].map((s) => admin.cluster('KEYSLOT', `${base}:${s}`))));
      expect(slots.size).toBe(1);
      homes.set(t, await nodeOf(`${base}:wait`));
    }
    expect(new Set(homes.values()).size).toBeGreaterThanOrEqual(2);

    const ids = (await Promise.all(tools.map((t) => post(planner.url, t, 10, (i) => ({ a: i, b: 1 }))))).flat();
    const calls = await waitForCalls(planner.url, ids, 30_000);
    expect(calls.filter((c) => c.status !== 'succeeded')).toEqual([]);
    expect(calls.map((c) => c.result)).toEqual(tools.flatMap(() => Array.from({ length: 10 }, (_, i) => i + 1)));
    // The jobs really are on the masters the slot map names: a plain connection to any other node would get MOVED.
    for (const t of tools) {
      const direct = new Redis(homes.get(t)!, '127.0.0.1');
      try {
        expect(await direct.zcard(`${env.TOOLPLANE_PREFIX}:{${t}}:completed`)).toBe(10);
      } finally {
        direct.disconnect();
      }
    }
    // `wait: true` goes through the done channel, published on one node and heard through another.
    const waited = await api(planner.url, 'POST', '/v1/calls', { tool: 'add-c', arguments: { a: 2, b: 3 }, wait: 10_000 });
    expect(waited.body).toMatchObject({ status: 'succeeded', result: 5 });
    // The planner's queue gauges read every tool's queue, each on its own master.
    const text = await (await fetch(`${planner.url}/metrics`)).text();
    for (const t of tools) expect(sumMetric([text], 'toolplane_queue_jobs', { tool: t, state: 'completed' })).toBeGreaterThanOrEqual(10);
  });

  test('a tool limited to 5/s starts no more than 5 calls in any second, across both workers', async () => {
    const tool = { ...ADD_TOOL, rateLimit: { max: 5, perMs: 1000 } };
    expect((await api(planner.url, 'PUT', '/v1/tools/limited', tool)).status).toBe(201);
    const ids = await post(planner.url, 'limited', 20, (i) => ({ a: i, b: 0 }));
    const calls = await waitForCalls(planner.url, ids, 20_000);
    expect(calls.filter((c) => c.status !== 'succeeded')).toEqual([]);
    const starts = calls.map((c) => c.timings.startedAt as number);
    expect(maxInWindow(starts, 1000)).toBeLessThanOrEqual(5);
    // 20 calls at 5/s need at least 3 s: the limit held, it did not just happen to be unused.
    expect(Math.max(...starts) - Math.min(...starts)).toBeGreaterThanOrEqual(3_000);
  });

  test('killing one worker of 3 mid-run loses no call', async () => {
    expect((await api(planner.url, 'PUT', '/v1/tools/slow-kill', slowTool(300))).status).toBe(201);
    const victim = await startWorker(env);
    const ids = await post(planner.url, 'slow-kill', 60, (n) => ({ n }));
    // Kill it while it holds running calls, as a crash would.
    await eventually(async () => {
      const m = /toolplane_worker_active_calls\{tool="slow-kill"\} (\d+)/.exec(await metrics(victim));
      return m && Number(m[1]) > 0 ? true : undefined;
    }, 10_000, 20);
    await victim.kill('SIGKILL');
    const calls = await waitForCalls(planner.url, ids, 30_000);
    expect(calls.filter((c) => c.status !== 'succeeded')).toEqual([]);
    expect(calls.map((c) => c.result)).toEqual(ids.map((_, i) => i));
    // At least one call was running on the victim and ran again elsewhere.
    expect(calls.some((c) => c.starts > 1)).toBe(true);
  });

  test('a worker added mid-run takes a share of the backlog within 2 s', async () => {
    expect((await api(planner.url, 'PUT', '/v1/tools/slow-scale', slowTool(250))).status).toBe(201);
    const success = { tool: 'slow-scale', outcome: 'success' };
    // 2 workers × 8 slots × 4 calls/s = 64 calls/s: 320 calls keep them busy for about 5 s.
    const ids = await post(planner.url, 'slow-scale', 320, (n) => ({ n }));
    await eventually(async () => (sumMetric(await Promise.all(workers.map(metrics)), 'toolplane_tool_calls_total', success) > 0 ? true : undefined), 10_000, 20);
    const added = await startWorker(env);
    // What was left when it joined is what it can share in (it starts slower on a loaded machine).
    const doneAtJoin = sumMetric(await Promise.all(workers.map(metrics)), 'toolplane_tool_calls_total', success);
    workers.push(added);
    const joined = Date.now();
    await eventually(async () => (sumMetric([await metrics(added)], 'toolplane_tool_calls_total', success) > 0 ? true : undefined), 5_000, 50);
    const firstAfterMs = Date.now() - joined;
    const calls = await waitForCalls(planner.url, ids, 30_000);
    expect(calls.filter((c) => c.status !== 'succeeded')).toEqual([]);
    const perWorker = await Promise.all(workers.map(async (w) => sumMetric([await metrics(w)], 'toolplane_tool_calls_total', success)));
    const share = perWorker.at(-1)! / (ids.length - doneAtJoin);
    console.log(`scale-out: new worker's first call after ${firstAfterMs} ms; calls per worker ${perWorker.join(', ')} (${doneAtJoin} done at its join)`);
    expect(firstAfterMs).toBeLessThan(2_000);
    // A third of what was left is its fair share (~0.35 measured alone; under the full suite the
    // machine's two cores are shared by three masters, a planner, three workers and other tests).
    expect(share).toBeGreaterThan(0.1);
  });
});
