import { afterAll, afterEach, beforeAll, describe, expect, inject, test } from 'vitest';
import { CallErrorCode, RETRYABLE_CODES, ToolExecError, ToolSpec, silentLogger, type Tool } from '@toolplane/core';
import { ToolBreakers, TrialFailedError, countsAgainstTool, readBreakerState, stateShownBy, type BreakerState } from './breaker.js';
import { closeRedis, createRedisConnection, waitForRedis, type RedisConnection } from './connection.js';
import { CallGate } from './gate.js';
import { createKeys } from './keys.js';
import { commandsDuring } from '../../../test/support/redis-monitor.js';

/**
 * The breaker's decisions with real opossum and the real Redis of the test setup, no worker
 * processes: what counts, when it trips, the fleet-wide states and what a trial's outcome does.
 * Two `ToolBreakers` and two `CallGate`s on their own connections stand for two worker replicas.
 */
const keys = createKeys(`breaker${Date.now()}`);
let redisA: RedisConnection;
let redisB: RedisConnection;
let gateA: CallGate;
let gateB: CallGate;
const made: ToolBreakers[] = [];
/** What each replica's breakers reported (the `toolplane_circuit_state` gauge), per tool. */
let reported: Array<[string, BreakerState]> = [];

function replica(redis: RedisConnection): ToolBreakers {
  const breakers = new ToolBreakers(redis, keys, { logger: silentLogger(), onState: (tool, state) => reported.push([tool, state]) });
  made.push(breakers);
  return breakers;
}

let names = 0;
/** A fresh tool: trips once 5 calls have run and more than half of them failed; half-open after 100 ms. */
function tool(breaker: Record<string, number> = {}): Tool {
  const spec = ToolSpec.parse({
    description: 'test',
    parameters: { type: 'object' },
    code: 'export default () => 1',
    breaker: { errorThresholdPercentage: 50, volumeThreshold: 5, resetTimeoutMs: 100, ...breaker },
  });
  return { ...spec, name: `flaky${++names}`, tenant: 'default', version: 1, createdAt: new Date(0).toISOString() };
}

const fail = (code: CallErrorCode) => () => Promise.reject(new ToolExecError(code, 'failed'));
const ok = () => Promise.resolve('fine');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const state = (t: Tool) => readBreakerState(redisA, keys, t.name);

/** Runs `n` calls of `fn` through the breaker as calls the gate let through while closed. */
async function runs(breakers: ToolBreakers, t: Tool, n: number, fn: () => Promise<unknown>): Promise<void> {
  for (let i = 0; i < n; i++) await breakers.run(t, 'run', fn).catch(() => {});
}

/** Trips `t` fleet-wide through `breakers` and waits until it is half-open. */
async function halfOpen(breakers: ToolBreakers, t: Tool): Promise<void> {
  await runs(breakers, t, 5, fail('TOOL_ERROR'));
  expect(await state(t)).toBe('open');
  await sleep(t.breaker.resetTimeoutMs + 50);
  expect(await state(t)).toBe('half_open');
}

beforeAll(async () => {
  redisA = createRedisConnection(inject('redisUrl'), 'worker');
  redisB = createRedisConnection(inject('redisUrl'), 'worker');
  await Promise.all([waitForRedis(redisA), waitForRedis(redisB)]);
  gateA = new CallGate(redisA, keys);
  gateB = new CallGate(redisB, keys);
});
afterEach(() => {
  for (const b of made.splice(0)) b.shutdown();
  reported = [];
});
afterAll(async () => {
  await Promise.all([closeRedis(redisA), closeRedis(redisB)]);
});

describe('what counts against a tool', () => {
  test.each(CallErrorCode.options)('%s: counted exactly when retryable, or POISONED', async (code) => {
    const t = tool();
    await runs(replica(redisA), t, 5, fail(code));
    const counts = RETRYABLE_CODES[code] || code === 'POISONED';
    expect(countsAgainstTool(new ToolExecError(code, 'x'))).toBe(counts);
    expect(await state(t)).toBe(counts ? 'open' : 'closed');
  });

  test('anything thrown without a code is the platform failing: it counts', async () => {
    for (const thrown of [new Error('redis went away'), 'a thrown string']) {
      const t = tool();
      await runs(replica(redisA), t, 5, () => Promise.reject(thrown));
      expect(await state(t)).toBe('open');
    }
  });

  test('it trips once the volume is reached and more than the threshold failed; failures that do not count weigh as successes', async () => {
    const breakers = replica(redisA);
    const t = tool();
    await runs(breakers, t, 4, fail('TIMEOUT'));
    // Below the volume of 5: closed whatever the rate.
    expect(await state(t)).toBe('closed');
    await runs(breakers, t, 6, fail('REJECTED'));
    await runs(breakers, t, 1, fail('TIMEOUT'));
    // 5 failures that count in 11 calls: 45 %, not above 50 %.
    expect(await state(t)).toBe('closed');
    await runs(breakers, t, 2, fail('TIMEOUT'));
    // 7 in 13: 54 %.
    expect(await state(t)).toBe('open');
    expect(reported).toEqual([[t.name, 'open']]);
  });

  test('successes do not trip it, and run gives the call its value', async () => {
    const breakers = replica(redisA);
    const t = tool();
    for (let i = 0; i < 10; i++) expect(await breakers.run(t, 'run', () => Promise.resolve(i))).toBe(i);
    expect(await state(t)).toBe('closed');
  });

  test('a call BullMQ failed after it stalled twice counts (recordFailure, POISONED)', async () => {
    const breakers = replica(redisA);
    const t = tool();
    for (let i = 0; i < 5; i++) await breakers.recordFailure(t, new ToolExecError('POISONED', 'stalled twice'));
    expect(await state(t)).toBe('open');
  });

  test('forgetting a deleted tool drops what was measured of it', async () => {
    const breakers = replica(redisA);
    const t = tool();
    await runs(breakers, t, 4, fail('TOOL_ERROR'));
    breakers.forget(t.name);
    await runs(breakers, t, 1, fail('TOOL_ERROR'));
    expect(await state(t)).toBe('closed');
  });

  test('a new version of a tool starts its measurements afresh', async () => {
    const breakers = replica(redisA);
    const t = tool();
    await runs(breakers, t, 4, fail('TOOL_ERROR'));
    await runs(breakers, { ...t, version: 2 }, 1, fail('TOOL_ERROR'));
    expect(await state(t)).toBe('closed');
  });
});

describe('fleet-wide states and the trial', () => {
  test('open holds every replica back, half-open lets exactly one trial through fleet-wide, its success closes the breaker', async () => {
    const a = replica(redisA);
    const t = tool();
    await runs(a, t, 5, fail('TOOL_ERROR'));
    const open = await gateB.admit(t, 'o', 'default');
    expect(open.verdict).toBe('open');
    expect((open as { waitMs: number }).waitMs).toBeGreaterThan(0);
    expect((open as { waitMs: number }).waitMs).toBeLessThanOrEqual(100);
    await sleep(150);
    // Two replicas, five calls each asking at once: one trial in all.
    const asks = await Promise.all([...Array.from({ length: 5 }, (_, i) => gateA.admit(t, `a${i}`, 'default')), ...Array.from({ length: 5 }, (_, i) => gateB.admit(t, `b${i}`, 'default'))]);
    expect(asks.filter((x) => x.verdict === 'trial')).toHaveLength(1);
    expect(asks.filter((x) => x.verdict === 'busy_trial')).toHaveLength(9);
    for (const x of asks.filter((y) => y.verdict === 'busy_trial')) expect((x as { waitMs: number }).waitMs).toBeGreaterThanOrEqual(50);
    expect(await replica(redisB).run(t, 'trial', ok)).toBe('fine');
    expect(await state(t)).toBe('closed');
    expect((await gateA.admit(t, 'after', 'default')).verdict).toBe('run');
  });

  test('a trial failing in a way worth another attempt opens the breaker again, and the call waits out the new period', async () => {
    const breakers = replica(redisA);
    const t = tool();
    await halfOpen(breakers, t);
    expect((await gateA.admit(t, 'trial', 'default')).verdict).toBe('trial');
    const failed = await breakers.run(t, 'trial', fail('TIMEOUT')).catch((err: unknown) => err);
    expect(failed).toBeInstanceOf(TrialFailedError);
    expect((failed as TrialFailedError).waitMs).toBe(100);
    expect(((failed as TrialFailedError).cause as ToolExecError).code).toBe('TIMEOUT');
    expect(await state(t)).toBe('open');
    expect((await gateA.admit(t, 'next', 'default')).verdict).toBe('open');
    // The new open period ends like the first one, with a trial of its own.
    await sleep(150);
    expect((await gateA.admit(t, 'trial2', 'default')).verdict).toBe('trial');
  });

  test('a poison trial opens the breaker again and fails as it is (it is never run again)', async () => {
    const breakers = replica(redisA);
    const t = tool();
    await halfOpen(breakers, t);
    expect((await gateA.admit(t, 'trial', 'default')).verdict).toBe('trial');
    const failed = await breakers.run(t, 'trial', fail('POISONED')).catch((err: unknown) => err);
    expect(failed).toBeInstanceOf(ToolExecError);
    expect((failed as ToolExecError).code).toBe('POISONED');
    expect(await state(t)).toBe('open');
  });

  test('a trial that ends saying nothing of the tool (bad input, a cached answer) gives the trial back', async () => {
    const breakers = replica(redisA);
    const t = tool();
    await halfOpen(breakers, t);
    expect((await gateA.admit(t, 't1', 'default')).verdict).toBe('trial');
    const failed = await breakers.run(t, 'trial', fail('REJECTED')).catch((err: unknown) => err);
    expect((failed as ToolExecError).code).toBe('REJECTED');
    expect(await state(t)).toBe('half_open');
    expect((await gateB.admit(t, 't2', 'default')).verdict).toBe('trial');
    await breakers.notRun(t, 'trial');
    expect(await state(t)).toBe('half_open');
    expect((await gateB.admit(t, 't3', 'default')).verdict).toBe('trial');
  });

  test('calls that were running when it tripped, failing late, neither extend the open period nor free the running trial', async () => {
    const a = replica(redisA);
    const b = replica(redisB);
    const t = tool({ resetTimeoutMs: 300 });
    await runs(a, t, 5, fail('TOOL_ERROR'));
    const openFor = await redisA.pttl(keys.breakerOpen(t.name));
    // Replica B's calls, admitted before the trip, fail now and pass B's own threshold.
    await runs(b, t, 5, fail('TOOL_ERROR'));
    expect(await redisA.pttl(keys.breakerOpen(t.name))).toBeLessThanOrEqual(openFor);
    await sleep(350);
    expect((await gateA.admit(t, 'trial', 'default')).verdict).toBe('trial');
    // More late failures on B while A's trial runs: still one trial.
    await runs(b, t, 5, fail('TOOL_ERROR'));
    expect(await state(t)).toBe('half_open');
    expect((await gateB.admit(t, 'second', 'default')).verdict).toBe('busy_trial');
    await a.run(t, 'trial', ok);
    expect(await state(t)).toBe('closed');
    // Replica B reported only what it changed: it opened nothing.
    expect(reported).toEqual([[t.name, 'open']]);
  });

  test('while closed, the breaker adds no Redis command to a call: the one gate script is all', async () => {
    const breakers = replica(redisA);
    const t = tool();
    // The gate's script is loaded (a first EVALSHA may answer NOSCRIPT and be followed by an EVAL).
    await gateA.admit(t, 'warm', 'default');
    const commands = await commandsDuring(inject('redisUrl'), redisA, async () => {
      for (let i = 0; i < 10; i++) {
        const admission = await gateA.admit(t, `c${i}`, 'default');
        breakers.noteAdmission(t.name, admission.verdict);
        expect(await breakers.run(t, 'run', ok)).toBe('fine');
      }
    });
    // What clients sent; the commands a script runs inside show up too, from `lua`.
    const seen = commands.filter((c) => c.source !== 'lua').map((c) => c.args.join(' '));
    const ofTool = seen.filter((line) => line.includes(`{${t.name}}`));
    expect(ofTool).toHaveLength(10);
    for (const line of ofTool) expect(line).toMatch(/^evalsha /i);
  });

  test('the state each gate verdict shows is reported for the metric; other verdicts report nothing', () => {
    const breakers = replica(redisA);
    for (const verdict of ['run', 'trial', 'busy_trial', 'open', 'hold', 'tool_limit', 'tenant_limit', 'cancelled'] as const) breakers.noteAdmission('x', verdict);
    expect(reported).toEqual([
      ['x', 'closed'],
      ['x', 'half_open'],
      ['x', 'half_open'],
      ['x', 'open'],
    ]);
    expect(stateShownBy('hold')).toBeUndefined();
  });
});
