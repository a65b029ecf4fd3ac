import { describe, expect, inject, test } from 'vitest';
import { DelayedError, type Job } from 'bullmq';
import { ToolExecError, ToolSpec, type CallJobData, type CallOutput, type Tool } from '@toolplane/core';
import { CallScheduler } from './call-scheduler.js';
import { createCalls } from './calls.js';
import { closeRedis, createRedisConnection, waitForRedis, type RedisConnection } from './connection.js';
import { createKeys } from './keys.js';
import { ToolRegistry } from './registry.js';
import type { CallProcessor } from './tool-worker.js';
import { startRedisServer } from './testing/redis-server.js';
import { sharedRedis, freshPrefix } from '../../../test/support/redis.js';

/**
 * The scheduler against the run's real redis-server, with a processor that runs no sandbox: what
 * it owns is which calls start when, over which connections, and what idle tools cost.
 */
const redis = sharedRedis();

const SPEC = ToolSpec.parse({ description: 'test', parameters: { type: 'object' }, code: 'export default (a) => a', concurrency: 10_000 });

/** A scheduler on its own key prefix; on the run's shared server unless `url` names another. */
async function setup(processor: CallProcessor, concurrency: number, url = inject('redisUrl')) {
  const keys = createKeys(freshPrefix('cs'));
  const producer = url === inject('redisUrl') ? redis : createRedisConnection(url, 'worker');
  const registry = new ToolRegistry(producer, keys);
  const calls = createCalls(producer, keys, { maxCallsInFlight: 0 });
  const blocking = createRedisConnection(url, 'worker');
  const commands = createRedisConnection(url, 'worker');
  await Promise.all([waitForRedis(blocking), waitForRedis(commands)]);
  const scheduler = new CallScheduler(commands, blocking, keys, processor, {
    concurrency,
    lockDurationMs: 5_000,
    stalledIntervalMs: 1_000,
    tools: () => registry.names(),
  });
  const tools: Tool[] = [];
  const put = async (name: string, spec = SPEC) => {
    const { tool } = await registry.put(name, spec, 'default');
    await calls.lifecycle.applyToolSettings(tool);
    tools.push(tool);
    return tool;
  };
  const stop = async () => {
    await scheduler.drain(5_000);
    await scheduler.close();
    for (const t of tools) await calls.queues.queue(t.name).obliterate({ force: true }).catch(() => {});
    await Promise.all(tools.map((t) => calls.queues.queue(t.name).close()));
    await Promise.all([closeRedis(blocking), closeRedis(commands)]);
    if (producer !== redis) await closeRedis(producer);
  };
  return { keys, calls, scheduler, put, stop };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(10);
  }
}

/**
 * Redis clients connected now, and commands processed so far, on a server of the test's own (the
 * run's shared one has other files' traffic).
 */
async function serverFigures(conn: RedisConnection): Promise<{ clients: number; commands: number }> {
  const info = await conn.info();
  const read = (name: string) => Number(new RegExp(`${name}:(\\d+)`).exec(info)?.[1]);
  return { clients: read('connected_clients'), commands: read('total_commands_processed') };
}

describe('CallScheduler', () => {
  test('300 tools with one call each: every call runs, on the same two connections', async () => {
    const own = await startRedisServer();
    const probe = createRedisConnection(own.url, 'worker');
    const done = new Set<string>();
    const { calls, scheduler, put, stop } = await setup(async (job) => {
      done.add(job.id!);
      return { result: job.data.tool, logs: [] };
    }, 20, own.url);
    try {
      const tools = await Promise.all(Array.from({ length: 300 }, (_, i) => put(`t${i}`)));
      const before = await serverFigures(probe);
      scheduler.start();
      const ids = await Promise.all(tools.map(async (tool) => (await calls.producer.enqueue(tool, {}, { tenant: 'default' })).id));
      await until(() => ids.every((id) => done.has(id)));
      const after = await serverFigures(probe);
      expect(after.clients - before.clients).toBe(0);
    } finally {
      await stop();
      await closeRedis(probe);
      await own.stop();
    }
  });

  test('the process-wide budget holds over 50 busy tools', async () => {
    let running = 0;
    let most = 0;
    let finished = 0;
    const { calls, scheduler, put, stop } = await setup(async () => {
      most = Math.max(most, ++running);
      await sleep(5);
      running--;
      finished++;
      return { result: null, logs: [] };
    }, 7);
    try {
      const tools = await Promise.all(Array.from({ length: 50 }, (_, i) => put(`busy${i}`)));
      for (const tool of tools) await calls.producer.enqueueBulk(tool, Array.from({ length: 10 }, () => ({})), { tenant: 'default' });
      scheduler.start();
      await until(() => finished === 500);
      expect(most).toBe(7);
    } finally {
      await stop();
    }
  });

  test('fair: a call of another tool starts within about one call of a backlog', async () => {
    const started: Array<{ tool: string; at: number }> = [];
    const { calls, scheduler, put, stop } = await setup(async (job) => {
      started.push({ tool: job.data.tool, at: performance.now() });
      await sleep(job.data.tool === 'slow' ? 20 : 0);
      return { result: null, logs: [] };
    }, 4);
    try {
      const [slow, quick] = await Promise.all([put('slow'), put('quick')]);
      await calls.producer.enqueueBulk(slow, Array.from({ length: 2_000 }, () => ({})), { tenant: 'default' });
      scheduler.start();
      await until(() => started.length >= 20);
      const asked = performance.now();
      await calls.producer.enqueue(quick, {}, { tenant: 'default' });
      await until(() => started.some((s) => s.tool === 'quick'));
      const quickAt = started.find((s) => s.tool === 'quick')!.at;
      // One slow call runs 20 ms; the scheduler's own round trips add a few.
      expect(quickAt - asked).toBeLessThan(200);
      const slowBefore = started.filter((s) => s.tool === 'slow' && s.at > asked && s.at < quickAt).length;
      expect(slowBefore).toBeLessThanOrEqual(8);
    } finally {
      await stop();
    }
  });

  test('delayed and put-back calls run when their time comes', async () => {
    const runs = new Map<string, number>();
    const { calls, scheduler, put, stop } = await setup(async (job, token) => {
      const n = (runs.get(job.id!) ?? 0) + 1;
      runs.set(job.id!, n);
      if (n === 1 && job.data.arguments && (job.data.arguments as { putBack?: boolean }).putBack) {
        await job.moveToDelayed(Date.now() + 300, token);
        throw new DelayedError();
      }
      return { result: n, logs: [] };
    }, 4);
    try {
      const tool = await put('later');
      scheduler.start();
      const t0 = Date.now();
      const delayed = (await calls.producer.enqueue(tool, {}, { tenant: 'default', delayMs: 400 })).id;
      const putBack = (await calls.producer.enqueue(tool, { putBack: true }, { tenant: 'default' })).id;
      await until(() => runs.get(delayed) === 1 && runs.get(putBack) === 2, 10_000);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
      expect(Date.now() - t0).toBeLessThan(3_000);
    } finally {
      await stop();
    }
  });

  test('a call that finished for good leaves its deadline index; one waiting for another attempt keeps its entry', async () => {
    const runs = new Map<string, number>();
    const { keys, calls, scheduler, put, stop } = await setup(async (job) => {
      const n = (runs.get(job.id!) ?? 0) + 1;
      runs.set(job.id!, n);
      const mode = (job.data.arguments as { mode: string }).mode;
      if (mode === 'reject') throw new ToolExecError('REJECTED', 'not this one');
      if (mode === 'retry' && n === 1) throw new ToolExecError('TOOL_ERROR', 'first attempt fails');
      return { result: n, logs: [] };
    }, 4);
    try {
      const tool = await put('deadlined', ToolSpec.parse({ ...SPEC, retries: { attempts: 2, backoffMs: 1_500 } }));
      const index = keys.callDeadlines(tool.name);
      const enqueue = async (mode: string) => (await calls.producer.enqueue(tool, { mode }, { tenant: 'default', deadlineMs: 60_000 })).id;
      const [ok, rejected, retried] = [await enqueue('ok'), await enqueue('reject'), await enqueue('retry')];
      expect(await redis.zcard(index)).toBe(3);
      scheduler.start();
      await until(() => runs.get(ok) === 1 && runs.get(rejected) === 1 && runs.get(retried) === 1, 10_000);
      // The retried call waits out its backoff with its deadline still indexed.
      await expect.poll(async () => await redis.zrange(index, 0, -1), { timeout: 5_000 }).toEqual([retried]);
      await until(() => runs.get(retried) === 2, 10_000);
      await expect.poll(async () => await redis.zcard(index), { timeout: 5_000 }).toBe(0);
    } finally {
      await stop();
    }
  });

  test('idle tools cost nothing: commands per second with 500 idle tools are those of 2', async () => {
    const idleRate = async (n: number) => {
      const own = await startRedisServer();
      const probe = createRedisConnection(own.url, 'worker');
      const { scheduler, put, stop } = await setup(async () => ({ result: null, logs: [] }), 4, own.url);
      try {
        await Promise.all(Array.from({ length: n }, (_, i) => put(`idle${i}`)));
        scheduler.start();
        // The start-up repair sweep reads every tool once: measure after it, not during it (on a
        // loaded machine it outlasted a fixed half second and counted against the idle figure).
        let last = (await serverFigures(probe)).commands;
        for (let i = 0; i < 20; i++) {
          await sleep(500);
          const now = (await serverFigures(probe)).commands;
          if (now - last < 20) break;
          last = now;
        }
        const a = await serverFigures(probe);
        await sleep(2_000);
        const b = await serverFigures(probe);
        // Less the INFO commands of the probe itself.
        return (b.commands - a.commands - 2) / 2;
      } finally {
        await stop();
        await closeRedis(probe);
        await own.stop();
      }
    };
    const two = await idleRate(2);
    const many = await idleRate(500);
    expect(many).toBeLessThanOrEqual(Math.max(2 * two, two + 5));
  });
});

/** A processor that records each call as it starts, and takes `runMs`. */
function recording(runMs: number) {
  const started: Array<Job<CallJobData, CallOutput>> = [];
  const processor: CallProcessor = async (job) => {
    started.push(job);
    await sleep(runMs);
    return { result: null, logs: [] };
  };
  return { started, processor };
}

/**
 * In which order the scheduler starts calls: the tool that has waited longest first, then turns
 * across tools; priorities within a tool.
 */
describe('CallScheduler order', () => {
  test('the tool that has waited longest starts first; then tools take turns', async () => {
    // Longer than the scheduler's 10 ms look at who else waits, so each turn sees the others.
    const { started, processor } = recording(50);
    const { calls, scheduler, put, stop } = await setup(processor, 1);
    try {
      // Announced in the order c, b, a: not the order of their names.
      for (const name of ['c', 'b', 'a']) {
        const tool = await put(name);
        await calls.producer.enqueueBulk(tool, [{}, {}, {}, {}], { tenant: 'default' });
        await sleep(5);
      }
      scheduler.start();
      await until(() => started.length >= 12);
      const order = started.map((job) => job.data.tool);
      // Tools in the order of their first start.
      expect([...new Set(order)]).toEqual(['c', 'b', 'a']);
      // While others wait, a tool runs one call, plus at most one more on a stale look at the line.
      let streak = 1;
      for (let i = 1; i < order.length; i++) {
        const othersWaiting = order.slice(i).some((t) => t !== order[i - 1]);
        streak = order[i] === order[i - 1] ? streak + 1 : 1;
        if (othersWaiting) expect(streak, order.join('')).toBeLessThanOrEqual(2);
      }
      // Every tool had its turns before any ran out: no tool finished its four calls before all had started two.
      const startedTwo = Math.max(...['a', 'b', 'c'].map((t) => order.indexOf(t, order.indexOf(t) + 1)));
      const firstDone = Math.min(...['a', 'b', 'c'].map((t) => order.lastIndexOf(t)));
      expect(startedTwo, order.join('')).toBeLessThan(firstDone);
    } finally {
      await stop();
    }
  });

  test('priorities order the calls of a tool; a more urgent call queued later overtakes', async () => {
    const { started, processor } = recording(20);
    const { calls, scheduler, put, stop } = await setup(processor, 1);
    try {
      const tool = await put('prio');
      for (const priority of [5, 1, 4, 2, 3]) await calls.producer.enqueue(tool, { priority }, { tenant: 'default', priority });
      scheduler.start();
      await until(() => started.length >= 1);
      // Queued while the most urgent call runs: it comes before the four still waiting.
      await calls.producer.enqueue(tool, { priority: 0.5 }, { tenant: 'default', priority: 1 });
      await until(() => started.length >= 6);
      const order = started.map((job) => (job.data.arguments as { priority: number }).priority);
      expect(order).toEqual([1, 0.5, 2, 3, 4, 5]);
    } finally {
      await stop();
    }
  });
});
