import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, inject } from 'vitest';
import { closeRedis, createRedisConnection, waitForRedis, type ConnectionRole, type RedisConnection } from '@toolplane/queue';

/**
 * A connection to the run's shared redis-server (`global-setup.ts`) for the calling test file: ready
 * before its first test, closed after its last. Files and tests share the server and keep apart by
 * key prefix ({@link freshPrefix}).
 */
export function sharedRedis(role: ConnectionRole = 'worker'): RedisConnection {
  const redis = createRedisConnection(inject('redisUrl'), role);
  beforeAll(() => waitForRedis(redis));
  afterAll(() => closeRedis(redis));
  return redis;
}

/** A key prefix no other test of the run uses: `label` and eight random hex digits. */
export function freshPrefix(label = 't'): string {
  return `${label}${randomUUID().slice(0, 8)}`;
}
