import { describe, expect, test } from 'vitest';
import { RequestError } from '@toolplane/core';
import { ScheduleRequest } from './schedule.js';
import { ScheduleStore, createScheduleKeys, type FireSchedule } from './schedule-store.js';
import { sharedRedis, freshPrefix } from '../../../test/support/redis.js';

const redis = sharedRedis();

const freshStore = (opts = {}) => new ScheduleStore(redis, createScheduleKeys(freshPrefix('s')), opts);

describe('schedule requests', () => {
  test('exactly one of cron and everyMs; timezone only with cron and only a real one; 1 s at least', () => {
    expect(ScheduleRequest.safeParse({ tool: 'add', everyMs: 1000 }).success).toBe(true);
    expect(ScheduleRequest.safeParse({ tool: 'add', cron: '0 * * * *', timezone: 'Europe/Paris' }).success).toBe(true);
    for (const bad of [
      { tool: 'add' },
      { tool: 'add', everyMs: 1000, cron: '0 * * * *' },
      { tool: 'add', everyMs: 999 },
      { tool: 'add', everyMs: 1000, timezone: 'UTC' },
      { tool: 'add', cron: '0 * * * *', timezone: 'Mars/Olympus' },
      { tool: 'add', everyMs: 1000, extra: 1 },
      { tool: '../x', everyMs: 1000 },
    ]) {
      expect(ScheduleRequest.safeParse(bad).success, JSON.stringify(bad)).toBe(false);
    }
  });
});

describe('schedule store', () => {
  test('put, get, list and delete, scoped by tenant', async () => {
    const store = freshStore();
    try {
      const first = await store.put('a', 'hourly', ScheduleRequest.parse({ tool: 'add', arguments: { a: 1 }, cron: '0 * * * *', timezone: 'Europe/Paris' }));
      expect(first.created).toBe(true);
      expect(first.schedule).toMatchObject({ name: 'hourly', tool: 'add', arguments: { a: 1 }, cron: '0 * * * *', timezone: 'Europe/Paris' });
      expect(Date.parse(first.schedule.nextRunAt!)).toBeGreaterThan(Date.now());
      const again = await store.put('a', 'hourly', ScheduleRequest.parse({ tool: 'add', everyMs: 60_000 }));
      expect(again.created).toBe(false);
      expect(again.schedule.createdAt).toBe(first.schedule.createdAt);
      expect(again.schedule).not.toHaveProperty('cron');
      await store.put('a', 'b-second', ScheduleRequest.parse({ tool: 'add', everyMs: 60_000 }));
      expect((await store.list('a')).map((s) => s.name)).toEqual(['b-second', 'hourly']);
      // Another tenant's view: nothing of tenant a's, and the same name is free.
      expect(await store.list('b')).toEqual([]);
      expect(await store.get('b', 'hourly')).toBeUndefined();
      expect(await store.delete('b', 'hourly')).toBe(false);
      expect(await store.get('a', 'hourly')).toBeDefined();
      expect(await store.delete('a', 'hourly')).toBe(true);
      expect(await store.get('a', 'hourly')).toBeUndefined();
      expect(await store.queue.getJobScheduler('a/hourly')).toBeUndefined();
    } finally {
      await store.close();
    }
  });

  test('a cron pattern BullMQ cannot read is INVALID_REQUEST and leaves nothing behind; the tenant cap is QUOTA_EXCEEDED', async () => {
    const store = freshStore({ maxPerTenant: 1 });
    try {
      const err = await store.put('a', 'bad', ScheduleRequest.parse({ tool: 'add', cron: 'every tuesday-ish' })).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RequestError);
      expect(err).toMatchObject({ code: 'INVALID_REQUEST' });
      expect(await store.list('a')).toEqual([]);
      await store.put('a', 'one', ScheduleRequest.parse({ tool: 'add', everyMs: 60_000 }));
      await expect(store.put('a', 'two', ScheduleRequest.parse({ tool: 'add', everyMs: 60_000 }))).rejects.toMatchObject({ code: 'QUOTA_EXCEEDED' });
      // Replacing the one it has is not a new one.
      await store.put('a', 'one', ScheduleRequest.parse({ tool: 'add', everyMs: 30_000 }));
    } finally {
      await store.close();
    }
  });

  test('fires every everyMs through the runner, records the last run, and stops when deleted', async () => {
    const store = freshStore();
    const fired: Array<{ tenant: string; tool: string; at: number; id: string }> = [];
    let refuse = false;
    const fire: FireSchedule = async (s, firing) => {
      if (refuse) throw new RequestError('TOOL_NOT_FOUND', `no tool named '${s.tool}'`);
      fired.push({ tenant: s.tenant, tool: s.tool, at: firing.at, id: firing.id });
      return `call-${fired.length}`;
    };
    const runner = store.startRunner({ connection: redis, fire });
    try {
      await store.put('a', 'tick', ScheduleRequest.parse({ tool: 'add', arguments: { a: 1 }, everyMs: 1_000 }));
      await expect.poll(() => fired.length, { timeout: 6_000, interval: 50 }).toBeGreaterThanOrEqual(2);
      expect(fired[0]).toMatchObject({ tenant: 'a', tool: 'add' });
      expect(fired[1]!.at - fired[0]!.at).toBe(1_000);
      expect(new Set(fired.map((f) => f.id)).size).toBe(fired.length);
      await expect.poll(async () => (await store.get('a', 'tick'))?.lastRun?.callId).toMatch(/^call-\d+$/);
      // A refused call is the last run's error; the schedule goes on.
      refuse = true;
      await expect.poll(async () => (await store.get('a', 'tick'))?.lastRun?.error?.code, { timeout: 3_000 }).toBe('TOOL_NOT_FOUND');
      refuse = false;
      await store.delete('a', 'tick');
      const count = fired.length;
      await new Promise((r) => setTimeout(r, 2_200));
      expect(fired.length).toBe(count);
    } finally {
      await runner.close();
      await store.close();
    }
  });
});
