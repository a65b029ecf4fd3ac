import { describe, expect, test } from 'vitest';
import { z } from 'zod';
import { ConfigError, MAX_STALLED_COUNT, ServiceEnv, jobLockOptions, parseConfig, serviceConfig } from './config.js';

describe('the settings planner and worker share', () => {
  test('defaults: one Redis, one prefix, one set of lock and stalled settings for every BullMQ worker', () => {
    const config = parseConfig(ServiceEnv, {});
    expect(config).toMatchObject({
      REDIS_URL: 'redis://127.0.0.1:6379',
      TOOLPLANE_PREFIX: 'toolplane',
      LOG_LEVEL: 'info',
      CALL_RETENTION_MS: 7 * 86_400_000,
      WORKER_LOCK_DURATION_MS: 10_000,
      WORKER_STALLED_INTERVAL_MS: 3_000,
      OTEL_BSP_SCHEDULE_DELAY: 5_000,
    });
    expect(config.TOOLPLANE_METRICS_TOKEN).toBeUndefined();
    expect(jobLockOptions(config)).toEqual({ lockDuration: 10_000, stalledInterval: 3_000, maxStalledCount: MAX_STALLED_COUNT });
    expect(MAX_STALLED_COUNT).toBe(1);
  });

  test('a bad value stops the start naming its variable, every bad one at once, never repeating a secret', () => {
    const bad = {
      REDIS_URL: 'http://localhost',
      TOOLPLANE_PREFIX: 'has space',
      LOG_LEVEL: 'loud',
      CALL_RETENTION_MS: '10',
      WORKER_LOCK_DURATION_MS: 'soon',
      WORKER_STALLED_INTERVAL_MS: '1.5',
      TOOLPLANE_METRICS_TOKEN: 'short-token',
    };
    let error: unknown;
    try {
      parseConfig(ServiceEnv, bad);
    } catch (err: unknown) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems;
    expect(problems.map((p) => p.split(':')[0]).sort()).toEqual(Object.keys(bad).sort());
    expect((error as ConfigError).message).toMatch(/^invalid configuration:\n {2}/);
    expect((error as ConfigError).message).not.toContain('short-token');
    // Each alone, too: a single bad variable is named, the rest takes its defaults.
    for (const [name, value] of Object.entries(bad)) {
      expect(() => parseConfig(ServiceEnv, { [name]: value }), name).toThrow(new RegExp(`^invalid configuration:\\n  ${name}: `));
    }
  });

  test('empty means unset; numbers come from strings', () => {
    expect(parseConfig(ServiceEnv, { REDIS_URL: '', WORKER_LOCK_DURATION_MS: '2500' })).toMatchObject({
      REDIS_URL: 'redis://127.0.0.1:6379',
      WORKER_LOCK_DURATION_MS: 2_500,
    });
  });

  test("a service's schema extends the shared one and cannot redefine a shared key", () => {
    const Service = serviceConfig({ OWN_SETTING: z.coerce.number().int().default(7) });
    expect(parseConfig(Service, {})).toMatchObject({ OWN_SETTING: 7, WORKER_LOCK_DURATION_MS: 10_000 });
    expect(() => parseConfig(Service, { OWN_SETTING: 'x' })).toThrow(/OWN_SETTING/);
    // @ts-expect-error a shared key's default lives in ServiceEnv only
    serviceConfig({ WORKER_LOCK_DURATION_MS: z.coerce.number().default(30_000) });
  });
});
