import { EventEmitter, once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { DEFAULT_TENANT, createLagMonitor, createLogger, jobLockOptions, loadServiceConfig } from '@toolplane/core';
import { createAgentMetrics, createHistoryMetrics, createHttpMetrics, createQueueGauges, createRegistry } from '@toolplane/metrics';
import {
  ApiKeyStore,
  CallGate,
  CallWaiter,
  SecretStore,
  ToolRegistry,
  UpstreamStore,
  checkNoEviction,
  closeRedis,
  createCalls,
  createKeys,
  coalesceWrites,
  createRedisConnection,
  readQueueDepths,
  waitForRedis,
  watchToolChanges,
  ToolNames,
} from '@toolplane/queue';
import {
  AgentMemory,
  ChatCompletionsCaller,
  DEFAULT_PRICES,
  RunEventFeed,
  RunManager,
  RunStore,
  createAgentKeys,
  toRunView,
} from '@toolplane/agent';
import { startServiceTracing, traceLogFields } from '@toolplane/tracing';
import { Archiver, describeHistory, openHistory, type HistoryStore } from '@toolplane/history';
import { createPlannerApp, type PlannerEvents } from './app.js';
import { PlannerConfig, modelEndpoint } from './config.js';
import { PlannerToolGateway } from './run-tools.js';
import { toolsToArchive } from './tools-to-archive.js';
import { DeletedToolSweep } from './deleted-tools.js';
import { ToolAvailabilityReader } from './tool-availability.js';
import { ArgumentValidator } from './validation.js';
import { SandboxFleet } from '@toolplane/sandbox';
import { ScheduleStore, createScheduleKeys } from '@toolplane/schedules';
import { WebhookDeliveries, WebhookSecrets, createWebhookKeys } from '@toolplane/webhooks';
import { submitCall } from './submit-call.js';

async function main(): Promise<void> {
  const config = loadServiceConfig('planner', PlannerConfig, process.env);
  // Before anything makes a span; without an endpoint no SDK is loaded and spans are no-ops.
  const tracing = await startServiceTracing(config, 'toolplane-planner');
  const logger = createLogger({ name: 'planner', level: config.LOG_LEVEL, ...(tracing ? { mixin: traceLogFields } : {}) });
  const keys = createKeys(config.TOOLPLANE_PREFIX);
  const redis = createRedisConnection(config.REDIS_URL, 'client');
  // A request's commands issued together (a call's admission and fair-share tag; its index and job) leave in one write.
  coalesceWrites(redis);
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
  // Finished calls and runs live in the history store once the archiver has moved them out of Redis.
  let history: HistoryStore;
  const historyOpts = { ...(config.HISTORY_URL ? { url: config.HISTORY_URL } : {}), prefix: config.TOOLPLANE_PREFIX };
  try {
    history = await openHistory(historyOpts);
  } catch (err: unknown) {
    const where = describeHistory(historyOpts);
    logger.fatal({ err, history: where }, 'cannot open the history store');
    process.stderr.write(`toolplane planner: cannot open the history store ${where}: ${String((err as Error).cause ?? err)}\n`);
    process.exit(2);
  }
  logger.info({ history: describeHistory(historyOpts), driver: history.driver }, 'history store open');
  const registry = new ToolRegistry(redis, keys);
  const calls = createCalls(redis, keys, {
    retentionMs: config.CALL_RETENTION_MS,
    maxCallsInFlight: config.TENANT_MAX_CALLS_IN_FLIGHT,
    history,
    ...(config.CALL_DEFAULT_DEADLINE_MS > 0 ? { defaultDeadlineMs: config.CALL_DEFAULT_DEADLINE_MS } : {}),
  });
  const waiter = new CallWaiter(subscriber, keys);
  const gate = new CallGate(redis, keys);
  void waiter.start().catch((err: unknown) => logger.warn({ err }, 'subscribe failed'));
  const events = new EventEmitter<PlannerEvents>();
  void watchToolChanges(subscriber, keys, (tool) => events.emit('toolsChanged', tool)).catch((err: unknown) =>
    logger.warn({ err }, 'subscribe failed'),
  );
  // Every submitted call looks its tool up: the current versions stay in memory while changes are heard.
  void registry.followChanges(subscriber).catch((err: unknown) => logger.warn({ err }, 'subscribe failed'));
  // The archiver and the queue gauges go over every tool once a second or a scrape: the names stay in memory too.
  const toolNames = new ToolNames(registry, subscriber, keys);
  toolNames.on('failed', (err) => logger.warn({ err: err.message }, 'reading tool names failed'));
  void toolNames.start().catch((err: unknown) => logger.warn({ err }, 'subscribe failed'));
  const promRegistry = createRegistry();
  const httpMetrics = createHttpMetrics(promRegistry);
  createQueueGauges(promRegistry, {
    read: () => readQueueDepths(redis, keys, toolNames.list()),
    // While a tool's breaker is open, a downstream asked to back off, or its rate limit paused the
    // queue, none of its waiting calls can start: adding workers would not help.
    held: async (tool) => {
      const [breaker, holdMs, pausedMs] = await Promise.all([
        gate.breakerState(tool),
        gate.holdRemaining(tool),
        calls.queues.queue(tool).getRateLimitTtl(),
      ]);
      return breaker === 'open' || holdMs > 0 || pausedMs > 0 ? Number.MAX_SAFE_INTEGER : 0;
    },
  });
  const historyMetrics = createHistoryMetrics(promRegistry);
  const agentKeys = createAgentKeys(config.TOOLPLANE_PREFIX);
  const runStore = new RunStore(redis, agentKeys, config.CALL_RETENTION_MS);
  // The archiver runs in the planners, one lease holder at a time (see packages/history/README.md).
  const archiver = config.HISTORY_ARCHIVER
    ? new Archiver({
        calls: calls.archive,
        store: history,
        redis,
        keys,
        tools: toolsToArchive(toolNames, registry),
        hotRetentionMs: config.CALL_HOT_RETENTION_MS,
        runs: runStore,
        batchSize: config.HISTORY_BATCH_SIZE,
        logger: logger.child({ component: 'archiver' }),
        hooks: {
          onBatch: (kind, n, seconds) => {
            historyMetrics.archived.inc({ kind }, n);
            historyMetrics.batchSeconds.observe({ kind }, seconds);
          },
          onError: () => historyMetrics.errors.inc(),
          onLag: (seconds) => historyMetrics.lagSeconds.set(seconds),
          onPurge: (rows) => historyMetrics.purged.inc(rows),
        },
      })
    : undefined;
  const deletedTools = new DeletedToolSweep({ registry, lifecycle: calls.lifecycle, logger: logger.child({ component: 'deleted-tools' }) });
  const validator = new ArgumentValidator();
  // A replaced or deleted tool's compiled schema is dropped on every replica (this one hears its own changes too).
  events.on('toolsChanged', (tool) => validator.forget(tool));
  // Tenant code is evaluated at registration: in a host process that is killed when it hangs.
  const codeChecker = new SandboxFleet({ hosts: 1, spare: false, memoryBudgetMb: 64, logger: logger.child({ component: 'sandbox' }) });
  const runFeed = new RunEventFeed(subscriber, agentKeys, runStore);
  void runFeed.start().catch((err: unknown) => logger.warn({ err }, 'subscribe failed'));
  const endpoint = modelEndpoint(config);
  const agentMetrics = createAgentMetrics(promRegistry);
  const prices = { ...DEFAULT_PRICES, ...config.TOOLPLANE_MODEL_PRICES };
  // Model names come from requests: only known ones become label values, so the series stay bounded.
  const modelLabel = (model: string) => (model in prices || model === config.TOOLPLANE_MODEL ? model : 'other');
  // Deliveries run on the workers (they see calls finish); the planner queues those of runs and
  // serves the secret and each delivery's attempts.
  const webhookKeys = createWebhookKeys(config.TOOLPLANE_PREFIX);
  const webhooks = {
    secrets: new WebhookSecrets(redis, webhookKeys, { rotationGraceMs: config.WEBHOOK_ROTATION_GRACE_MS }),
    deliveries: new WebhookDeliveries(redis, webhookKeys, { maxAttempts: config.WEBHOOK_MAX_ATTEMPTS, backoffMs: config.WEBHOOK_BACKOFF_MS }),
    rotationGraceMs: config.WEBHOOK_ROTATION_GRACE_MS,
  };
  const runManager = endpoint
    ? new RunManager({
        redis,
        keys: agentKeys,
        llm: new ChatCompletionsCaller({ ...endpoint, timeoutMs: config.LLM_TIMEOUT_MS, maxRetries: config.LLM_MAX_RETRIES }),
        tools: new PlannerToolGateway({
          registry,
          calls,
          waiter,
          validator,
          httpMetrics,
          availability: new ToolAvailabilityReader({ gate, queues: calls.queues }),
        }),
        defaultModel: config.TOOLPLANE_MODEL,
        prices,
        hooks: {
          onRunFinished: (status, run) => {
            agentMetrics.runs.inc({ status });
            if (!run.callbackUrl) return;
            webhooks.deliveries
              .enqueue({
                kind: 'run',
                id: run.id,
                tenant: run.tenant ?? DEFAULT_TENANT,
                url: run.callbackUrl,
                data: toRunView(run) as unknown as Record<string, unknown>,
                finishedAt: run.finishedAt ? Date.parse(run.finishedAt) : Date.now(),
              })
              .catch((err: unknown) => logger.warn({ err, runId: run.id }, 'could not queue the webhook'));
          },
          onUsage: (model, promptTokens, completionTokens) => {
            agentMetrics.llmTokens.inc({ model: modelLabel(model), kind: 'prompt' }, promptTokens);
            agentMetrics.llmTokens.inc({ model: modelLabel(model), kind: 'completion' }, completionTokens);
          },
        },
        memory: new AgentMemory(redis, agentKeys),
        memoryContextTokens: config.MEMORY_CONTEXT_TOKENS,
        logger: logger.child({ component: 'runs' }),
        leaseMs: config.RUN_LEASE_MS,
        scanIntervalMs: config.RUN_SCAN_INTERVAL_MS,
        retentionMs: config.CALL_RETENTION_MS,
      })
    : undefined;
  if (!endpoint) logger.warn('no OPENAI_BASE_URL or OPENAI_API_KEY: agent runs are disabled');
  const closing = new AbortController();
  const liveness = createLagMonitor();
  // Schedules fire on any planner (BullMQ hands each firing to one), as an ordinary call of the
  // schedule's tenant through the one submission path; the firing's id is the idempotency key, so a
  // firing retried after a crash makes no second call.
  const schedules = new ScheduleStore(redis, createScheduleKeys(config.TOOLPLANE_PREFIX), { maxPerTenant: config.SCHEDULES_MAX_PER_TENANT });
  const scheduleConnection = createRedisConnection(config.REDIS_URL, 'worker');
  scheduleConnection.on('error', (err: Error) => logger.warn({ err: err.message }, 'redis connection error'));
  const scheduleRunner = schedules.startRunner({
    connection: scheduleConnection,
    jobLocks: jobLockOptions(config),
    logger: logger.child({ component: 'schedules' }),
    fire: async (schedule, firing) => {
      const principal = { keyId: `schedule:${schedule.name}`, tenant: schedule.tenant, scopes: ['calls:write' as const] };
      const accepted = await submitCall({ registry, calls, validator, waiter, httpMetrics }, principal, schedule.tool, schedule.arguments, {
        idempotencyKey: `schedule:${schedule.name}:${firing.at}`,
      });
      return accepted.id;
    },
  });
  const app = createPlannerApp({
    redis,
    registry,
    secrets: new SecretStore(redis, keys, config.TOOLPLANE_SECRETS_KEY ? { encryptionKey: config.TOOLPLANE_SECRETS_KEY } : {}),
    calls,
    gate,
    waiter,
    validator,
    codeChecker,
    promRegistry,
    httpMetrics,
    logger,
    maxBodyBytes: config.MAX_BODY_BYTES,
    ...(config.TOOLPLANE_ADMIN_KEY ? { adminKey: config.TOOLPLANE_ADMIN_KEY } : {}),
    authOff: config.TOOLPLANE_AUTH === 'off',
    liveness,
    ...(config.TOOLPLANE_METRICS_TOKEN ? { metricsToken: config.TOOLPLANE_METRICS_TOKEN } : {}),
    ...(config.CONSOLE_TRACE_URL ? { consoleTraceUrl: config.CONSOLE_TRACE_URL } : {}),
    apiKeys: new ApiKeyStore(redis, keys),
    keys,
    apiRateLimitPerS: config.API_RATE_LIMIT_PER_S,
    maxJsonDepth: config.MAX_JSON_DEPTH,
    runs: { store: runStore, feed: runFeed, manager: runManager, closing: closing.signal },
    upstreams: new UpstreamStore(redis, keys),
    history,
    events,
    tracing: tracing !== undefined,
    webhooks,
    schedules,
  });
  const server = app.listen(config.PORT, config.HOST);
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  if (config.TOOLPLANE_AUTH === 'off') {
    logger.warn('TOOLPLANE_AUTH=off: auth is off and every request acts as an admin of the default tenant; for local use only');
  }
  logger.info({ port }, 'planner listening');
  archiver?.start();
  deletedTools.start();
  // Runs left in progress by a planner that stopped (this one before a restart, or another replica) go on here.
  await runManager?.start().catch((err: unknown) => logger.warn({ err }, 'resuming runs failed'));

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    closing.abort();
    events.emit('shutdown');
    const closed = new Promise<void>((r) => server.close(() => r()));
    server.closeIdleConnections();
    await Promise.race([closed, new Promise((r) => setTimeout(r, config.SHUTDOWN_TIMEOUT_MS).unref())]);
    server.closeAllConnections();
    // Runs stop where they are and give up their leases, so the next planner continues them at once.
    await runManager?.stop();
    await scheduleRunner.close().catch(() => {});
    await Promise.all([schedules.close(), webhooks.deliveries.close(), closeRedis(scheduleConnection)]).catch(() => {});
    await archiver?.stop();
    await deletedTools.stop();
    toolNames.stop();
    await history.close().catch(() => {});
    await Promise.all([closeRedis(redis), closeRedis(subscriber), codeChecker.close()]);
    await tracing?.shutdown();
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
