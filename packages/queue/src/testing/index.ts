/**
 * Test helpers: a real `redis-server` on a free port, or a real Redis Cluster of several, started and
 * stopped per test file or suite.
 *
 * @example
 * ```ts
 * const redis = await startRedisServer();
 * afterAll(() => redis.stop());
 * const cluster = await startRedisCluster({ masters: 3 }); // cluster.url is redis-cluster://…
 * ```
 */
export { startRedisServer, freePort } from './redis-server.js';
export type { RedisServer, RedisServerOptions } from './redis-server.js';
export { startRedisCluster } from './redis-cluster.js';
export type { RedisCluster, RedisClusterOptions } from './redis-cluster.js';
