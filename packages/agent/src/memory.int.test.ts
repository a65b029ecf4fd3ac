import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { Redis } from 'ioredis';
import { AgentMemory } from './memory.js';
import { createAgentKeys } from './keys.js';
import { countTokens } from './tokens.js';
import { freshPrefix } from '../../../test/support/redis.js';

describe('AgentMemory on a real Redis', () => {
  let redis: Redis;
  const keys = createAgentKeys(freshPrefix('mem'));

  beforeAll(() => {
    redis = new Redis(inject('redisUrl'));
  });
  afterAll(async () => {
    await redis.quit();
  });

  test('keeps a short-term window and consolidates important overflow into long-term memory', async () => {
    const memory = new AgentMemory(redis, keys, { shortTermSize: 3, longTermSize: 2, minImportance: 0.4 });
    const session = 's1';
    const moved: number[] = [];
    for (const [content, importance] of [
      ['likes tea', 0.9],
      ['said hello', 0.1],
      ['lives in Oslo', 0.8],
      ['asked the time', 0.5],
      ['a', 0.5],
      ['b', 0.5],
    ] as const) {
      moved.push(await memory.remember('acme', session, { role: 'user', content, importance }));
    }
    expect(moved).toEqual([0, 0, 0, 1, 0, 1]);
    expect((await memory.shortTerm('acme', session)).map((e) => e.content)).toEqual(['asked the time', 'a', 'b']);
    // 'said hello' was below minImportance; the cap of 2 keeps the most important.
    expect((await memory.longTerm('acme', session)).map((e) => e.content)).toEqual(['likes tea', 'lives in Oslo']);
  });

  test('builds a context that fits a token budget measured with the tokenizer', async () => {
    const memory = new AgentMemory(redis, keys, { shortTermSize: 50 });
    const session = 's2';
    await memory.remember('acme', session, { role: 'note', content: 'The user is called Ada.', importance: 1 });
    for (let i = 0; i < 30; i++) {
      await memory.remember('acme', session, { role: 'user', content: `message number ${i} about antidisestablishmentarianism`, importance: 0.2 });
    }
    const full = await memory.buildContext('acme', session, 10_000);
    expect(full).toContain('message number 0 ');
    const tight = await memory.buildContext('acme', session, 60);
    expect(countTokens(tight)).toBeLessThanOrEqual(60);
    expect(tight).toContain('message number 29 '); // newest first when space is short
    expect(tight).not.toContain('message number 0 ');
    expect(await memory.buildContext('acme', 'nobody', 100)).toBe('');
  });

  test("a session belongs to its tenant: tenant B's session 'support' neither sees nor changes tenant A's", async () => {
    const memory = new AgentMemory(redis, keys, { shortTermSize: 2, minImportance: 0 });
    await memory.remember('tenant-a', 'support', { role: 'user', content: 'my card number is 4111', importance: 1 });
    await memory.remember('tenant-a', 'support', { role: 'assistant', content: 'refund issued to 4111', importance: 1 });

    // B reads the same session id: nothing of A's.
    expect(await memory.shortTerm('tenant-b', 'support')).toEqual([]);
    expect(await memory.longTerm('tenant-b', 'support')).toEqual([]);
    expect(await memory.buildContext('tenant-b', 'support', 10_000)).toBe('');

    // B writes (enough to push entries out of a shared window) and forgets: A's memory is untouched.
    for (let i = 0; i < 3; i++) await memory.remember('tenant-b', 'support', { role: 'user', content: `b says ${i}`, importance: 1 });
    await memory.forget('tenant-b', 'support');
    expect((await memory.shortTerm('tenant-a', 'support')).map((e) => e.content)).toEqual(['my card number is 4111', 'refund issued to 4111']);
    expect(await memory.longTerm('tenant-a', 'support')).toEqual([]);
    expect(await memory.buildContext('tenant-a', 'support', 10_000)).toContain('refund issued to 4111');
  });
});
