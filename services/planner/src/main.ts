import { EventEmitter, once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { ConfigError, createLogger } from '@toolplane/core';
import { createHttpMetrics, createQueueGauges, createRegistry } from '@toolplane/metrics';
import {
  CallGate,
  CallWaiter,
  ToolQueues,
  SecretStore,
  ToolRegistry,
  UpstreamStore,
  checkNoEviction,
  closeRedis,
  createKeys,
  createRedisConnection,
  readQueueDepths,
  waitForRedis,
  watchToolChanges,
} from '@toolplane/queue';
import { createPlannerApp, type PlannerEvents } from './app.js';
import { loadConfig } from './config.js';
import { ArgumentValidator } from './validation.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (err: unknown) {
    if (err instanceof ConfigError) {
      process.stderr.write(`toolplane planner: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger({ name: 'planner', level: config.LOG_LEVEL });
  const keys = createKeys(config.TOOLPLANE_PREFIX);
  const redis = createRedisConnection(config.REDIS_URL, 'client');
  const subscriber = createRedisConnection(config.REDIS_URL, 'subscriber');
  for (const conn of [redis, subscriber]) {
    conn.on('error', (err: Error) => logger.warn({ err: err.message }, 'redis connection error'));
  }
  try {
    // The subscriber too: a SUBSCRIBE sent before ioredis's ready check answers puts the connection
    // in subscriber mode, the INFO of the check then fails, and the subscriptions are lost.
    await Promise.all([waitForRedis(redis, 30_000), waitForRedis(subscriber, 30_000)]);
    await checkNoEviction(redis);
  } catch (err: unknown) {
    logger.fatal({ err: (err as Error).message }, 'cannot start');
    process.stderr.write(`toolplane planner: ${(err as Error).message}\n`);
    process.exit(2);
  }
  const registry = new ToolRegistry(redis, keys);
  const queues = new ToolQueues(redis, keys, { retentionMs: config.CALL_RETENTION_MS });
  const waiter = new CallWaiter(subscriber, keys);
  const gate = new CallGate(redis, keys);
  void waiter.start().catch((err: unknown) => logger.warn({ err }, 'subscribe failed'));
  const events = new EventEmitter<PlannerEvents>();
  void watchToolChanges(subscriber, keys, (tool) => events.emit('toolsChanged', tool)).catch((err: unknown) =>
    logger.warn({ err }, 'subscribe failed'),
  );
  const promRegistry = createRegistry();
  const httpMetrics = createHttpMetrics(promRegistry);
  createQueueGauges(promRegistry, {
    read: async () => readQueueDepths(redis, keys, await registry.names()),
    // While a tool's breaker is open, a downstream asked to back off, or its rate limit paused the
    // queue, none of its waiting calls can start: adding workers would not help.
    held: async (tool) => {
      const [breaker, holdMs, pausedMs] = await Promise.all([
        gate.breakerState(tool),
        gate.holdRemaining(tool),
        queues.queue(tool).getRateLimitTtl(),
      ]);
      return breaker === 'open' || holdMs > 0 || pausedMs > 0 ? Number.MAX_SAFE_INTEGER : 0;
    },
  });
  const app = createPlannerApp({
    redis,
    registry,
    secrets: new SecretStore(redis, keys, config.TOOLPLANE_SECRETS_KEY ? { encryptionKey: config.TOOLPLANE_SECRETS_KEY } : {}),
    queues,
    gate,
    waiter,
    validator: new ArgumentValidator(),
    promRegistry,
    httpMetrics,
    logger,
    maxBodyBytes: config.MAX_BODY_BYTES,
    ...(config.TOOLPLANE_ADMIN_KEY ? { adminKey: config.TOOLPLANE_ADMIN_KEY } : {}),
    upstreams: new UpstreamStore(redis, keys),
    events,
  });
  const server = app.listen(config.PORT, config.HOST);
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  logger.info({ port }, 'planner listening');

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    events.emit('shutdown');
    const closed = new Promise<void>((r) => server.close(() => r()));
    server.closeIdleConnections();
    await Promise.race([closed, new Promise((r) => setTimeout(r, config.SHUTDOWN_TIMEOUT_MS).unref())]);
    server.closeAllConnections();
    await Promise.all([closeRedis(redis), closeRedis(subscriber)]);
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled rejection'));
}

main().catch((err: unknown) => {
  process.stderr.write(`toolplane planner failed to start: ${String(err)}\n`);
  process.exit(1);
});
