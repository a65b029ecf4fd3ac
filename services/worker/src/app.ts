import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Job } from 'bullmq';
import { ToolExecError, jobLockOptions, type CallJobData, type CallOutput, type Logger } from '@toolplane/core';
import { UpstreamClients } from '@toolplane/mcp';
import { createRegistry, createToolMetrics, initToolSeries, removeToolSeries } from '@toolplane/metrics';
import {
  CallGate,
  createCalls,
  DeadlineSweeper,
  SecretStore,
  ToolRegistry,
  ToolNames,
  TenantQuotas,
  UpstreamSecretError,
  UpstreamStore,
  announceCallDone,
  finishedRecord,
  CallEventLog,
  checkNoEviction,
  waitForRedis,
  closeRedis,
  createKeys,
  coalesceWrites,
  createRedisConnection,
  CallScheduler,
  ToolBreakers,
  isStalledTooOften,
  resolveUpstreamHeaders,
} from '@toolplane/queue';
import { SandboxFleet, parseNetworkList } from '@toolplane/sandbox';
import { WebhookDeliveries, WebhookSecrets, createWebhookKeys } from '@toolplane/webhooks';
import type { WorkerConfig } from './config.js';
import { createOpsServer } from './http.js';
import { createProcessor } from './processor.js';
import { traceCalls } from './tracing.js';
import { deliverCallFinish, egressSender } from './webhooks.js';

/**
 * - `INITIALIZED`: built, not consuming yet.
 * - `RUNNING`: consuming every tool queue it knows of.
 * - `DRAINING`: SIGTERM received; takes no new calls, finishes the ones it holds.
 * - `STOPPED`: everything closed.
 */
export type WorkerState = 'INITIALIZED' | 'RUNNING' | 'DRAINING' | 'STOPPED';

/** `toolplane_circuit_state`'s values. */
const CIRCUIT_STATE = { closed: 0, half_open: 1, open: 2 } as const;

export type WorkerApp = {
  readonly state: WorkerState;
  /** Port of the ops server (`/healthz`, `/readyz`, `/metrics`). */
  readonly metricsPort: number;
  start(): Promise<void>;
  stop(): Promise<void>;
};

/** Wires Redis, the registry, the sandbox and one BullMQ worker per tool queue. Touches no `process`. */
export function createWorkerApp(config: WorkerConfig, logger: Logger): WorkerApp {
  const keys = createKeys(config.TOOLPLANE_PREFIX);
  // The commands of one event-loop turn leave in one socket write: the calls a worker runs at once
  // issue many small commands, and one write each was its largest CPU item (measured with ioredis's
  // auto-pipelining: 1.6x the throughput and half Redis's CPU per call in the bench). Not on the
  // scheduler's blocking connection, where a BZPOPMIN would hold the commands queued behind it.
  const redis = createRedisConnection(config.REDIS_URL, 'worker');
  coalesceWrites(redis);
  const subscriber = createRedisConnection(config.REDIS_URL, 'subscriber');
  // BullMQ on a connection of its own: it defines ~45 scripts on the connection it is given, and every
  // ioredis Pipeline (each MULTI; each auto-pipelined batch, before `coalesceWrites`) copies all of them.
  const bull = createRedisConnection(config.REDIS_URL, 'worker');
  coalesceWrites(bull);
  const registry = new ToolRegistry(redis, keys, { maxResultBytes: config.MAX_RESULT_BYTES });
  const quotas = new TenantQuotas(redis, keys, { maxResultBytes: config.TENANT_MAX_RESULT_BYTES });
  const promRegistry = createRegistry();
  const metrics = createToolMetrics(promRegistry);
  const sandbox = new SandboxFleet({
    hosts: config.SANDBOX_HOSTS,
    maxIsolatesPerTool: config.WORKER_CONCURRENCY,
    memoryBudgetMb: config.SANDBOX_MEMORY_BUDGET_MB,
    allowPrivateNetworks: config.TOOLPLANE_ALLOW_PRIVATE_NETWORKS,
    logger: logger.child({ component: 'sandbox' }),
    onDispose: (reason) => metrics.sandboxDisposals.inc({ reason }),
    onHostFailure: (reason) => metrics.sandboxHostFailures.inc({ reason }),
  });
  const calls = createCalls(bull, keys, { retentionMs: config.CALL_RETENTION_MS });
  const gate = new CallGate(redis, keys);
  const breakers = new ToolBreakers(redis, keys, { logger, onState: (tool, state) => metrics.circuitState.set({ tool }, CIRCUIT_STATE[state]) });
  const secrets = new SecretStore(redis, keys, config.TOOLPLANE_SECRETS_KEY ? { encryptionKey: config.TOOLPLANE_SECRETS_KEY } : {});
  const upstreamStore = new UpstreamStore(redis, keys);
  const upstreams = new UpstreamClients({
    logger: logger.child({ component: 'mcp' }),
    // Read on every call, so a changed URL or rotated secret takes effect at once (a new client).
    resolve: async (name) => {
      const upstream = await upstreamStore.get(name);
      if (!upstream) return undefined;
      try {
        return { url: upstream.url, headers: await resolveUpstreamHeaders(upstream, secrets) };
      } catch (err: unknown) {
        if (err instanceof UpstreamSecretError) throw new ToolExecError('SANDBOX_ERROR', err.message);
        throw err;
      }
    },
  });
  const callEvents = new CallEventLog(redis, keys);
  const untraced = createProcessor({ registry, queues: calls.queues, actions: calls.actions, gate, breakers, secrets, sandbox, upstreams, metrics, callEvents, redis, keys, logger });
  const processor = config.OTEL_EXPORTER_OTLP_ENDPOINT ? traceCalls(untraced) : untraced;
  // Four connections, whatever the number of tools: commands, BullMQ, the scheduler's blocking pop, pub/sub.
  // Named, so operators (and `make bench`) can count the scheduling workers of a deployment.
  const blocking = createRedisConnection(config.REDIS_URL, 'worker', `toolplane-scheduler:${config.TOOLPLANE_PREFIX}`);
  const scheduler = new CallScheduler(redis, blocking, keys, processor, {
    concurrency: config.WORKER_CONCURRENCY,
    lockDurationMs: config.WORKER_LOCK_DURATION_MS,
    stalledIntervalMs: config.WORKER_STALLED_INTERVAL_MS,
    tools: () => registry.names(),
    bull,
    quotas,
    logger: logger.child({ component: 'scheduler' }),
  });
  // Completion webhooks are sent from the workers: they see calls finish, already apply the egress
  // rules to tool code, and scale with the fleet; a slow receiver holds up no API request.
  const webhookKeys = createWebhookKeys(config.TOOLPLANE_PREFIX);
  const webhooks = new WebhookDeliveries(bull, webhookKeys, { maxAttempts: config.WEBHOOK_MAX_ATTEMPTS, backoffMs: config.WEBHOOK_BACKOFF_MS });
  let webhookWorker: ReturnType<WebhookDeliveries['startWorker']> | undefined;
  const ops = createOpsServer(promRegistry, () => state === 'RUNNING' && redis.status === 'ready', config.TOOLPLANE_METRICS_TOKEN);
  let state: WorkerState = 'INITIALIZED';
  let metricsPort = config.WORKER_METRICS_PORT;

  for (const conn of [redis, bull, subscriber, blocking]) {
    conn.on('error', (err: Error) => logger.warn({ err: err.message }, 'redis connection error'));
  }

  // A call that finished for good is announced; with its record when its submitter waits (a planner
  // then answers without reading it back), by id only when nobody does.
  const announce = (job: Job<CallJobData, CallOutput> | undefined) => {
    if (job?.id) announceCallDone(redis, keys, job.id, job.data?.awaited ? finishedRecord(job) : undefined).catch(() => {});
  };
  scheduler.on('completed', announce);
  scheduler.on('failed', announce);
  const deliverFinish = (job: Job<CallJobData, CallOutput> | undefined) => void deliverCallFinish(job, calls.reads, webhooks, logger);
  scheduler.on('completed', deliverFinish);
  scheduler.on('failed', deliverFinish);
  scheduler.on('failed', (job: Job<CallJobData, CallOutput> | undefined, err: Error) => {
    // Failed by BullMQ's stalled-job check, not by a run: it counts against the tool like a crash.
    if (job && isStalledTooOften(err.message)) void countPoisoned(job.data);
  });
  scheduler.on('error', (err: Error) => logger.warn({ err: err.message }, 'scheduler error'));
  // Calls still waiting past their deadline end at it, not when a worker takes them: one worker of
  // the fleet sweeps (a lease) about every second. Each ends as if this worker had failed it.
  const deadlines = new DeadlineSweeper(redis, keys, { queues: calls.queues, quotas, logger: logger.child({ component: 'deadlines' }) });
  deadlines.on('expired', (job: Job<CallJobData, CallOutput>) => {
    metrics.calls.inc({ tool: job.data.tool, outcome: 'deadline_exceeded' });
    deliverFinish(job);
  });

  const countPoisoned = async (data: CallJobData) => {
    metrics.calls.inc({ tool: data.tool, outcome: 'poisoned' });
    const tool = await registry.getVersion(data.tool, data.version).catch(() => undefined);
    if (tool) await breakers.recordFailure(tool, new ToolExecError('POISONED', 'stalled twice'));
  };

  // Only for metrics: every registered tool's series exist at 0 before its first call. Runnable
  // calls reach the scheduler through the ready set, not through this.
  const toolNames = new ToolNames(registry, subscriber, keys, { refreshMs: config.TOOL_DISCOVERY_INTERVAL_MS });
  toolNames.on('added', (name) => initToolSeries(metrics, name));
  // Deleted: nothing of it stays in this process (its lane goes once its calls here end).
  toolNames.on('removed', (name) => {
    scheduler.forget(name);
    breakers.forget(name);
    removeToolSeries(metrics, name);
  });
  toolNames.on('failed', (err) => logger.warn({ err: err.message }, 'reading tool names failed'));

  subscriber.on('message', (channel: string, message: string) => {
    if (channel === keys.callCancel) {
      const [tool, id] = message.split('\n');
      // Aborts the processor's signal if this process runs the call; the sandbox then disposes its isolate.
      if (tool && id) scheduler.cancel(tool, id);
    }
  });

  return {
    get state() {
      return state;
    },
    get metricsPort() {
      return metricsPort;
    },
    async start() {
      // The subscriber too: subscribing before its ready check answers loses the subscriptions.
      await Promise.all([waitForRedis(redis, 30_000), waitForRedis(bull, 30_000), waitForRedis(subscriber, 30_000)]);
      await checkNoEviction(redis);
      // Hosts started before the first call: a cold host would make the first calls wait for it.
      await sandbox.ready();
      ops.listen(config.WORKER_METRICS_PORT);
      await once(ops, 'listening');
      metricsPort = (ops.address() as AddressInfo).port;
      state = 'RUNNING';
      await subscriber.subscribe(keys.callCancel);
      await toolNames.start();
      scheduler.start();
      deadlines.start();
      webhookWorker = webhooks.startWorker({
        connection: bull,
        secrets: new WebhookSecrets(redis, webhookKeys),
        send: egressSender(parseNetworkList(config.TOOLPLANE_ALLOW_PRIVATE_NETWORKS)),
        concurrency: config.WEBHOOK_CONCURRENCY,
        timeoutMs: config.WEBHOOK_TIMEOUT_MS,
        jobLocks: jobLockOptions(config),
        logger: logger.child({ component: 'webhooks' }),
      });
      logger.info({ metricsPort, tools: toolNames.size, concurrency: config.WORKER_CONCURRENCY }, 'worker started');
    },
    async stop() {
      if (state === 'STOPPED' || state === 'DRAINING') return;
      state = 'DRAINING';
      toolNames.stop();
      logger.info({ running: scheduler.active }, 'worker draining');
      // Its lease goes at once, so another worker sweeps from its next tick.
      await deadlines.stop();
      // Calls still running after the timeout go back to the queue through stalled-job recovery on another worker.
      await scheduler.drain(config.SHUTDOWN_TIMEOUT_MS);
      await scheduler.close();
      await webhookWorker?.close();
      await webhooks.close();
      await sandbox.close();
      await upstreams.close();
      breakers.shutdown();
      await Promise.all([closeRedis(redis), closeRedis(bull), closeRedis(subscriber), closeRedis(blocking)]);
      await new Promise<void>((r) => ops.close(() => r()));
      state = 'STOPPED';
      logger.info('worker stopped');
    },
  };
}
