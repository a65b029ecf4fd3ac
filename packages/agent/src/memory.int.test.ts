import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { AgentMemory } from './memory.js';
import { createAgentKeys } from './keys.js';
import { countTokens } from './tokens.js';

describe('AgentMemory on a real Redis', () => {
  let redis: Redis;
  const keys = createAgentKeys(`mem${randomUUID().slice(0, 8)}`);

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
      moved.push(await memory.remember(session, { role: 'user', content, importance }));
    }
    expect(moved).toEqual([0, 0, 0, 1, 0, 1]);
    expect((await memory.shortTerm(session)).map((e) => e.content)).toEqual(['asked the time', 'a', 'b']);
    // 'said hello' was below minImportance; the cap of 2 keeps the most important.
    expect((await memory.longTerm(session)).map((e) => e.content)).toEqual(['likes tea', 'lives in Oslo']);
  });

  test('builds a context that fits a token budget measured with the tokenizer', async () => {
    const memory = new AgentMemory(redis, keys, { shortTermSize: 50 });
    const session = 's2';
    await memory.remember(session, { role: 'note', content: 'The user is called Ada.', importance: 1 });
    for (let i = 0; i < 30; i++) {
      await memory.remember(session, { role: 'user', content: `message number ${i} about antidisestablishmentarianism`, importance: 0.2 });
    }
    const full = await memory.buildContext(session, 10_000);
    expect(full).toContain('message number 0 ');
    const tight = await memory.buildContext(session, 60);
    expect(countTokens(tight)).toBeLessThanOrEqual(60);
    expect(tight).toContain('message number 29 '); // newest first when space is short
    expect(tight).not.toContain('message number 0 ');
    expect(await memory.buildContext('nobody', 100)).toBe('');
  });
});
