/**
 * Test helpers: a real `redis-server` on a free port, started and stopped per test file or suite.
 *
 * @example
 * ```ts
 * const redis = await startRedisServer();
 * afterAll(() => redis.stop());
 * ```
 */
export { startRedisServer, freePort } from './redis-server.js';
export type { RedisServer, RedisServerOptions } from './redis-server.js';
