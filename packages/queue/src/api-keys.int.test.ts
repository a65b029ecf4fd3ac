import { expect, test } from 'vitest';
import { createKeys } from './keys.js';
import { ApiKeyStore } from './api-keys.js';
import { sharedRedis, freshPrefix } from '../../../test/support/redis.js';

const redis = sharedRedis();

test("a key's requests are counted per second, each second's counter expiring by itself", async () => {
  const keys = createKeys(freshPrefix());
  const store = new ApiKeyStore(redis, keys);
  const second = 1_800_000_000_000;
  expect(await Promise.all([1, 2, 3].map(() => store.countRequest('k1', second + 10)))).toEqual([1, 2, 3]);
  expect(await store.countRequest('k1', second + 999)).toBe(4);
  expect(await store.countRequest('k1', second + 1_000)).toBe(1);
  expect(await store.countRequest('k2', second + 10)).toBe(1);
  const ttl = await redis.pttl(keys.requestWindow('k1', second / 1000));
  expect(ttl).toBeGreaterThan(0);
  expect(ttl).toBeLessThanOrEqual(2_000);
});
