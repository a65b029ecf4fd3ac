import { expect, test } from 'vitest';
import { createKeys } from './keys.js';
import { ApiKeyStore } from './api-keys.js';
import { sharedRedis, freshPrefix } from '../../../test/support/redis.js';

const redis = sharedRedis();
const SECOND = 1_800_000_000_000;

function store(): { store: ApiKeyStore; keys: ReturnType<typeof createKeys> } {
  const keys = createKeys(freshPrefix());
  return { store: new ApiKeyStore(redis, keys), keys };
}

async function admitted(s: ApiKeyStore, key: string, perSecond: number, atMs: number[]): Promise<number> {
  let n = 0;
  for (const at of atMs) if (await s.admitRequest(key, perSecond, at)) n++;
  return n;
}

test("a key's requests are limited per sliding second; refusals do not count; each counter expires by itself", async () => {
  const { store: s, keys } = store();
  expect(await Promise.all(Array.from({ length: 10 }, () => s.admitRequest('k1', 3, SECOND + 10)))).toEqual([
    true, true, true, false, false, false, false, false, false, false,
  ]);
  // Another key has its own counters.
  expect(await s.admitRequest('k2', 3, SECOND + 10)).toBe(true);
  // Right after the boundary the previous second still counts nearly whole (a fixed window let 3 more through here) ...
  expect(await s.admitRequest('k1', 3, SECOND + 1_000)).toBe(false);
  // ... halfway through the next second it counts half (3 × 0.5), and the 7 refusals not at all.
  expect(await admitted(s, 'k1', 3, [SECOND + 1_500, SECOND + 1_500, SECOND + 1_500])).toBe(2);
  // A second later only the second before counts (2 × 0.99).
  expect(await admitted(s, 'k1', 3, [SECOND + 2_010, SECOND + 2_010, SECOND + 2_010])).toBe(2);
  const ttl = await redis.pttl(keys.requestWindow('k1', SECOND / 1000));
  expect(ttl).toBeGreaterThan(0);
  expect(ttl).toBeLessThanOrEqual(3_000);
});

test('a burst on each side of a second boundary gets the limit through, not twice the limit', async () => {
  const { store: s } = store();
  const late = Array.from({ length: 30 }, () => SECOND + 990);
  const early = Array.from({ length: 30 }, () => SECOND + 1_010);
  expect(await admitted(s, 'k', 30, late)).toBe(30);
  // 30 × 0.99 of the previous second still count: one more.
  expect(await admitted(s, 'k', 30, early)).toBe(1);
});

test('a client sending steadily at three times the limit gets the limit through, in every sliding second', async () => {
  const { store: s } = store();
  const perSecond = 30;
  const sent = Array.from({ length: 450 }, (_, i) => SECOND + Math.round((i * 1000) / 90));
  const passed: number[] = [];
  for (const at of sent) if (await s.admitRequest('k', perSecond, at)) passed.push(at);
  // Five seconds at 30 per second.
  expect(passed.length).toBeGreaterThanOrEqual(5 * perSecond - 5);
  expect(passed.length).toBeLessThanOrEqual(5 * perSecond);
  for (let from = SECOND; from <= SECOND + 4_000; from += 50) {
    expect(passed.filter((at) => at >= from && at < from + 1_000).length).toBeLessThanOrEqual(perSecond + 1);
  }
});
