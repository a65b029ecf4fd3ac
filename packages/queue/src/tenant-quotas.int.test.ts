import { describe, expect, test } from 'vitest';
import { RequestError, ToolExecError } from '@toolplane/core';
import { createKeys, type Keys } from './keys.js';
import { TenantQuotas, type CallAdmission } from './tenant-quotas.js';
import { sharedRedis, freshPrefix } from '../../../test/support/redis.js';

const redis = sharedRedis();

const freshKeys = (): Keys => createKeys(freshPrefix('q'));
const call = (tenant: string, ids: string[], extra: Partial<CallAdmission> = {}): CallAdmission => ({
  tenant,
  tool: 'echo',
  ids,
  createdAt: Date.now(),
  inFlightMs: 60_000,
  retentionMs: 60_000,
  ...extra,
});
const output = (bytes: number) => ({ result: 'x'.repeat(bytes - JSON.stringify({ result: '', logs: [] }).length), logs: [] });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('calls in flight per tenant', () => {
  test('past the cap a new call is refused with QUOTA_EXCEEDED; other tenants and repeats are not affected', async () => {
    const quotas = new TenantQuotas(redis, freshKeys(), { maxCallsInFlight: 3 });
    for (const id of ['a1', 'a2', 'a3']) expect(await quotas.admit(call('tenant-a', [id]))).toBe('admitted');
    const refused = await quotas.admit(call('tenant-a', ['a4'])).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(RequestError);
    expect(refused).toMatchObject({ code: 'QUOTA_EXCEEDED', details: { quota: 'calls_in_flight', limit: 3, inFlight: 3 } });
    // The same call again (an idempotency key repeated) is answered, not refused nor counted twice.
    expect(await quotas.admit(call('tenant-a', ['a2']))).toBe('duplicate');
    // Another tenant's calls go on.
    expect(await quotas.admit(call('tenant-b', ['b1']))).toBe('admitted');
    expect((await quotas.usage('tenant-a')).callsInFlight).toBe(3);
    expect((await quotas.usage('tenant-b')).callsInFlight).toBe(1);
  });

  test('a call that ends gives its slot back, once, however often its end is reported', async () => {
    const quotas = new TenantQuotas(redis, freshKeys(), { maxCallsInFlight: 2 });
    await quotas.admit(call('t', ['c1']));
    await quotas.admit(call('t', ['c2']));
    await expect(quotas.admit(call('t', ['c3']))).rejects.toMatchObject({ code: 'QUOTA_EXCEEDED' });
    await quotas.release('t', ['c1']);
    await quotas.release('t', ['c1']);
    expect((await quotas.usage('t')).callsInFlight).toBe(1);
    expect(await quotas.admit(call('t', ['c3']))).toBe('admitted');
    // A stored result ends a call too.
    await quotas.storeResult('t', 'c2', output(100), 60_000);
    expect((await quotas.usage('t')).callsInFlight).toBe(1);
  });

  test('an entry whose end is never reported (a crashed process) goes stale instead of holding its slot', async () => {
    const quotas = new TenantQuotas(redis, freshKeys(), { maxCallsInFlight: 1 });
    await quotas.admit(call('t', ['lost'], { inFlightMs: 50 }));
    await expect(quotas.admit(call('t', ['next']))).rejects.toMatchObject({ code: 'QUOTA_EXCEEDED' });
    await sleep(80);
    expect(await quotas.admit(call('t', ['next']))).toBe('admitted');
  });

  test('a batch is admitted whole or not at all; a re-admission (retry) is counted without a duplicate check', async () => {
    const keys = freshKeys();
    const quotas = new TenantQuotas(redis, keys, { maxCallsInFlight: 3 });
    await quotas.admit(call('t', ['x1']));
    await expect(quotas.admit(call('t', ['x2', 'x3', 'x4']))).rejects.toMatchObject({ code: 'QUOTA_EXCEEDED' });
    expect((await quotas.usage('t')).callsInFlight).toBe(1);
    expect(await redis.zcard(keys.tenantCalls('t'))).toBe(1);
    expect(await quotas.admit(call('t', ['x2', 'x3']))).toBe('admitted');
    // x1 ran and failed; running it again makes it in flight again.
    await quotas.release('t', ['x1']);
    expect(await quotas.admit(call('t', ['x1'], { record: false }))).toBe('admitted');
    await expect(quotas.admit(call('t', ['x1'], { record: false }))).resolves.toBe('admitted');
    expect((await quotas.usage('t')).callsInFlight).toBe(3);
  });
});

describe('stored result bytes per tenant', () => {
  test('a result past the quota is refused (not retryable), the tenant is full until bytes come back, others go on', async () => {
    const keys = freshKeys();
    const quotas = new TenantQuotas(redis, keys, { maxResultBytes: 1_000 });
    await quotas.storeResult('tenant-a', 'r1', output(400), 60_000);
    await quotas.storeResult('tenant-a', 'r2', output(400), 60_000);
    const refused = await quotas.storeResult('tenant-a', 'r3', output(400), 60_000).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ToolExecError);
    expect(refused).toMatchObject({ code: 'QUOTA_EXCEEDED' });
    expect((refused as ToolExecError).retryable).toBe(false);
    expect(await quotas.usage('tenant-a')).toEqual({ callsInFlight: 0, resultBytes: 800, resultsFull: true });
    // New calls of the full tenant are refused before they run...
    await expect(quotas.admit(call('tenant-a', ['n1']))).rejects.toMatchObject({
      code: 'QUOTA_EXCEEDED',
      details: { quota: 'result_bytes', retryAfterMs: expect.any(Number) as number },
    });
    // ...while another tenant stores and calls as before.
    await quotas.storeResult('tenant-b', 'r1', output(900), 60_000);
    expect(await quotas.admit(call('tenant-b', ['n1']))).toBe('admitted');

    // Giving a result back (its call failed after all, or it was deleted) lifts the mark.
    expect(await quotas.release('tenant-a', ['r1'])).toBe(400);
    expect(await quotas.usage('tenant-a')).toEqual({ callsInFlight: 0, resultBytes: 400, resultsFull: false });
    expect(await quotas.admit(call('tenant-a', ['n1']))).toBe('admitted');
    await quotas.storeResult('tenant-a', 'r3', output(400), 60_000);
  });

  test('results finished in the same turn are charged in one script run, in order: the one that does not fit is refused, the rest kept', async () => {
    const quotas = new TenantQuotas(redis, freshKeys(), { maxResultBytes: 1_000 });
    await quotas.admit(call('t', ['r1', 'r2', 'r3', 'r4']));
    const outcomes = await Promise.all(
      [['r1', 400], ['r2', 400], ['r3', 400], ['r4', 150]].map(([id, bytes]) =>
        quotas.storeResult('t', id as string, output(bytes as number), 60_000).then(() => 'kept', (e: unknown) => (e as ToolExecError).code),
      ),
    );
    expect(outcomes).toEqual(['kept', 'kept', 'QUOTA_EXCEEDED', 'kept']);
    expect(await quotas.usage('t')).toEqual({ callsInFlight: 0, resultBytes: 950, resultsFull: true });
  });

  test('bytes come back when results expire, and the full mark lasts until the oldest one does', async () => {
    const quotas = new TenantQuotas(redis, freshKeys(), { maxResultBytes: 500 });
    await quotas.storeResult('t', 'old', output(300), 150);
    await expect(quotas.storeResult('t', 'big', output(300), 60_000)).rejects.toMatchObject({ code: 'QUOTA_EXCEEDED' });
    await expect(quotas.admit(call('t', ['c']))).rejects.toMatchObject({ details: { quota: 'result_bytes' } });
    await sleep(200);
    expect(await quotas.admit(call('t', ['c']))).toBe('admitted');
    await quotas.storeResult('t', 'big', output(300), 60_000);
    expect((await quotas.usage('t')).resultBytes).toBe(300);
  });

  test('the same call charged again (it ran again after a crash) replaces its charge instead of adding to it', async () => {
    const quotas = new TenantQuotas(redis, freshKeys(), { maxResultBytes: 1_000 });
    await quotas.storeResult('t', 'again', output(600), 60_000);
    await quotas.storeResult('t', 'again', output(700), 60_000);
    expect((await quotas.usage('t')).resultBytes).toBe(700);
  });

  test('the bookkeeping of an idle tenant expires with its last result', async () => {
    const keys = freshKeys();
    const quotas = new TenantQuotas(redis, keys, { maxResultBytes: 1_000 });
    await quotas.storeResult('t', 'short', output(100), 60_000);
    for (const key of [keys.tenantResults('t'), keys.tenantResultSizes('t'), keys.tenantResultBytes('t')]) {
      const ttl = await redis.pttl(key);
      expect(ttl).toBeGreaterThan(50_000);
      expect(ttl).toBeLessThanOrEqual(60_000);
    }
  });
});
