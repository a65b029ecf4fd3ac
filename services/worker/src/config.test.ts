import { expect, test } from 'vitest';
import { ConfigError, ServiceEnv, parseConfig } from '@toolplane/core';
import { loadConfig } from './config.js';

test("the worker's own settings and their defaults", () => {
  expect(loadConfig({})).toMatchObject({
    WORKER_METRICS_PORT: 9464,
    WORKER_CONCURRENCY: 8,
    SANDBOX_HOSTS: 1,
    SANDBOX_MEMORY_BUDGET_MB: 512,
    TOOLPLANE_ALLOW_PRIVATE_NETWORKS: '',
    SHUTDOWN_TIMEOUT_MS: 30_000,
    WEBHOOK_CONCURRENCY: 16,
  });
});

test('the shared settings are the fleet-wide ones, defaults included', () => {
  const shared = parseConfig(ServiceEnv, {});
  const config = loadConfig({});
  for (const key of Object.keys(ServiceEnv.shape)) expect(config[key as keyof typeof shared], key).toEqual(shared[key as keyof typeof shared]);
  expect(loadConfig({ CALL_RETENTION_MS: '86400000', WORKER_LOCK_DURATION_MS: '1500' })).toMatchObject({ CALL_RETENTION_MS: 86_400_000, WORKER_LOCK_DURATION_MS: 1_500 });
});

test('a bad value names its variable', () => {
  for (const [name, value] of [
    ['WORKER_CONCURRENCY', '0'],
    ['SANDBOX_HOSTS', 'many'],
    ['TOOLPLANE_ALLOW_PRIVATE_NETWORKS', '10.0.0.0/99'],
    ['WORKER_STALLED_INTERVAL_MS', '100'],
    ['REDIS_URL', 'localhost:6379'],
  ] as const) {
    expect(() => loadConfig({ [name]: value }), name).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value }), name).toThrow(new RegExp(`${name}: `));
  }
});
