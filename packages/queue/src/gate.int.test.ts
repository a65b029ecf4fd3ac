import { afterAll, beforeAll, describe, expect, inject, test, vi } from 'vitest';
import { ToolExecError, ToolSpec, silentLogger, type Tool } from '@toolplane/core';
import { ToolBreakers } from './breaker.js';
import { closeRedis, createRedisConnection, waitForRedis, type RedisConnection } from './connection.js';
import { CallGate } from './gate.js';
import { createKeys } from './keys.js';

function tool(name: string, extra: Record<string, unknown> = {}): Tool {
  const spec = ToolSpec.parse({ description: 'd', parameters: { type: 'object' }, code: 'export default () => 1', ...extra });
  return { ...spec, name, version: 1, tenant: 'default', createdAt: new Date().toISOString() };
}

describe('CallGate on a real Redis', () => {
  let redis: RedisConnection;
  let gate: CallGate;
  let breakers: ToolBreakers;
  const keys = createKeys(`gate${Date.now()}`);

  beforeAll(async () => {
    redis = createRedisConnection(inject('redisUrl'), 'worker');
    await waitForRedis(redis);
    gate = new CallGate(redis, keys);
    breakers = new ToolBreakers(redis, keys, { logger: silentLogger() });
  });
  afterAll(async () => {
    breakers.shutdown();
    await closeRedis(redis);
  });
  /** Opens the tool's breaker the way a worker does: its error rate passes the threshold. */
  const trip = (t: Tool) => breakers.recordFailure(t, new ToolExecError('TIMEOUT', 'down'));

  test('a sliding window admits max calls per window and says how long to wait', async () => {
    const t = tool('win', { rateLimit: { max: 3, perMs: 1_000 } });
    const verdicts = [];
    for (let i = 0; i < 4; i++) verdicts.push(await gate.admit(t, `c${i}`, 'default'));
    expect(verdicts.map((v) => v.verdict)).toEqual(['run', 'run', 'run', 'tool_limit']);
    const last = verdicts[3] as { waitMs: number };
    expect(last.waitMs).toBeGreaterThan(900);
    expect(last.waitMs).toBeLessThanOrEqual(1_000);
  });

  test('calls asking in the same turn share one script run and get the verdicts they would get alone, in order', async () => {
    const t = tool('same-turn', { rateLimit: { max: 3, perMs: 10_000 }, tenantRateLimit: { max: 1, perMs: 10_000 } });
    await redis.set(keys.cancelMarker('same-turn', 'c2'), '1');
    // Counted on this connection: the server's command statistics would count other test files' scripts too.
    const scripts = vi.spyOn(redis, 'evalsha');
    const asks = ['c0', 'c1', 'c2', 'c3', 'c4', 'c5'].map((id, i) => gate.admit(t, id, i < 4 ? `t${i}` : 'same', t.tenantRateLimit));
    const verdicts = (await Promise.all(asks)).map((a) => a.verdict);
    const scriptRuns = scripts.mock.calls.length;
    scripts.mockRestore();
    // c2 was cancelled (no slot); c0, c1, c3 take the tool's 3 slots; c4 and c5 find the tool's window full.
    expect(verdicts).toEqual(['run', 'run', 'cancelled', 'run', 'tool_limit', 'tool_limit']);
    expect(await redis.zcard(keys.rateWindow('same-turn'))).toBe(3);
    // One script run for six calls, not six.
    expect(scriptRuns).toBe(1);
  });

  test('a tenant past its own window in a shared run leaves the others their slots', async () => {
    const t = tool('same-turn-tenants', { tenantRateLimit: { max: 1, perMs: 10_000 } });
    const verdicts = (await Promise.all(['a', 'a', 'b', 'a', 'b'].map((tenant, i) => gate.admit(t, `x${i}`, tenant, t.tenantRateLimit)))).map((a) => a.verdict);
    expect(verdicts).toEqual(['run', 'tenant_limit', 'run', 'tenant_limit', 'tenant_limit']);
  });

  test('tenant windows are separate, and a refused call uses no slot', async () => {
    const t = tool('tenants', { tenantRateLimit: { max: 1, perMs: 10_000 } });
    expect((await gate.admit(t, 'a1', 'a', t.tenantRateLimit)).verdict).toBe('run');
    expect((await gate.admit(t, 'a2', 'a', t.tenantRateLimit)).verdict).toBe('tenant_limit');
    expect((await gate.admit(t, 'b1', 'b', t.tenantRateLimit)).verdict).toBe('run');
  });

  test('an open breaker delays; half-open lets exactly one trial through fleet-wide; success closes it', async () => {
    const t = tool('brk', { breaker: { resetTimeoutMs: 100, volumeThreshold: 1 } });
    await trip(t);
    const open = await gate.admit(t, 'x', 'default');
    expect(open.verdict).toBe('open');
    expect(await gate.breakerState('brk')).toBe('open');
    await new Promise((r) => setTimeout(r, 150));
    expect(await gate.breakerState('brk')).toBe('half_open');
    // Ten replicas asking at once: one trial, the rest told to look again soon.
    const asks = await Promise.all(Array.from({ length: 10 }, (_, i) => gate.admit(t, `h${i}`, 'default')));
    expect(asks.filter((a) => a.verdict === 'trial')).toHaveLength(1);
    expect(asks.filter((a) => a.verdict === 'busy_trial')).toHaveLength(9);
    await breakers.run(t, 'trial', () => Promise.resolve());
    expect(await gate.breakerState('brk')).toBe('closed');
    expect((await gate.admit(t, 'after', 'default')).verdict).toBe('run');
  });

  test('a failed trial opens the breaker for another period', async () => {
    const t = tool('brk2', { breaker: { resetTimeoutMs: 100, volumeThreshold: 1 } });
    await trip(t);
    await new Promise((r) => setTimeout(r, 150));
    expect((await gate.admit(t, 't1', 'default')).verdict).toBe('trial');
    await breakers.run(t, 'trial', () => Promise.reject(new ToolExecError('TOOL_ERROR', 'still down'))).catch(() => {});
    expect((await gate.admit(t, 't2', 'default')).verdict).toBe('open');
  });

  test('holds extend but never shorten; cancelled calls are refused', async () => {
    const t = tool('hold');
    await gate.hold('hold', 2_000);
    await gate.hold('hold', 100);
    const held = await gate.admit(t, 'h', 'default');
    expect(held.verdict).toBe('hold');
    expect((held as { waitMs: number }).waitMs).toBeGreaterThan(1_500);
    await redis.set(keys.cancelMarker('hold', 'gone'), '{}');
    expect((await gate.admit(t, 'gone', 'default')).verdict).toBe('cancelled');
  });
});
