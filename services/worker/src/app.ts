import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Worker } from 'bullmq';
import { ToolExecError, type CallJobData, type CallOutput, type Logger } from '@toolplane/core';
import { UpstreamClients } from '@toolplane/mcp';
import { createRegistry, createToolMetrics, initToolSeries } from '@toolplane/metrics';
import {
  CallGate,
  ToolQueues,
  SecretStore,
  ToolRegistry,
  TenantQuotas,
  UpstreamSecretError,
  UpstreamStore,
  announceCallDone,
  checkNoEviction,
  waitForRedis,
  closeRedis,
  createKeys,
  createRedisConnection,
  createToolWorker,
  isStalledTooOften,
  resolveUpstreamHeaders,
} from '@toolplane/queue';
import { SandboxFleet } from '@toolplane/sandbox';
import type { WorkerConfig } from './config.js';
import { ToolBreakers } from './breakers.js';
import { createOpsServer } from './http.js';
import { createProcessor } from './processor.js';
import { traceCalls } from './tracing.js';

/**
 * - `INITIALIZED`: built, not consuming yet.
 * - `RUNNING`: consuming every tool queue it knows of.
 * - `DRAINING`: SIGTERM received; takes no new calls, finishes the ones it holds.
 * - `STOPPED`: everything closed.
 */
export type WorkerState = 'INITIALIZED' | 'RUNNING' | 'DRAINING' | 'STOPPED';

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
  const redis = createRedisConnection(config.REDIS_URL, 'worker');
  const subscriber = createRedisConnection(config.REDIS_URL, 'subscriber');
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
  const queues = new ToolQueues(redis, keys);
  const gate = new CallGate(redis, keys);
  const breakers = new ToolBreakers((tool) => {
    metrics.circuitState.set({ tool: tool.name }, 2);
    gate.trip(tool).catch((err: unknown) => logger.warn({ err, tool: tool.name }, 'could not open breaker fleet-wide'));
  }, logger);
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
        if (err instanceof UpstreamSecretError) throw new ToolExecError('SANDBOX_ERROR', err.message, { retryable: false });
        throw err;
      }
    },
  });
  const untraced = createProcessor({ registry, queues, gate, breakers, secrets, sandbox, upstreams, metrics, redis, keys, logger });
  const processor = config.OTEL_EXPORTER_OTLP_ENDPOINT ? traceCalls(untraced) : untraced;
  const consumers = new Map<string, Worker<CallJobData, CallOutput>>();
  const ops = createOpsServer(promRegistry, () => state === 'RUNNING' && redis.status === 'ready', config.TOOLPLANE_METRICS_TOKEN);
  let state: WorkerState = 'INITIALIZED';
  let discovery: NodeJS.Timeout | undefined;
  let metricsPort = config.WORKER_METRICS_PORT;

  for (const conn of [redis, subscriber]) {
    conn.on('error', (err: Error) => logger.warn({ err: err.message }, 'redis connection error'));
  }

  const consume = (tool: string) => {
    if (consumers.has(tool) || state !== 'RUNNING') return;
    const worker = createToolWorker(tool, keys, createRedisConnection(config.REDIS_URL, 'worker'), processor, {
      concurrency: config.WORKER_CONCURRENCY,
      lockDurationMs: config.WORKER_LOCK_DURATION_MS,
      stalledIntervalMs: config.WORKER_STALLED_INTERVAL_MS,
      quotas,
    });
    const announce = (job: { id?: string } | undefined) => {
      if (job?.id) announceCallDone(redis, keys, job.id).catch(() => {});
    };
    worker.on('completed', announce);
    worker.on('failed', announce);
    worker.on('failed', (job, err) => {
      // Failed by BullMQ's stalled-job check, not by a run: it counts against the tool like a crash.
      if (job && isStalledTooOften(err.message)) void countPoisoned(job.data);
    });
    worker.on('error', (err) => logger.warn({ err: err.message, tool }, 'queue worker error'));
    consumers.set(tool, worker);
    initToolSeries(metrics, tool);
    logger.info({ tool }, 'consuming tool queue');
  };

  const countPoisoned = async (data: CallJobData) => {
    metrics.calls.inc({ tool: data.tool, outcome: 'poisoned' });
    const tool = await registry.getVersion(data.tool, data.version).catch(() => undefined);
    if (tool) await breakers.fire(tool, () => Promise.reject(new ToolExecError('POISONED', 'stalled twice', { retryable: false }))).catch(() => {});
  };

  const discover = async () => {
    try {
      for (const name of await registry.names()) consume(name);
    } catch (err: unknown) {
      logger.warn({ err: (err as Error).message }, 'tool discovery failed');
    }
  };

  subscriber.on('message', (channel: string, message: string) => {
    if (channel === keys.registryChanged) consume(message);
    if (channel === keys.callCancel) {
      const [tool, id] = message.split('\n');
      // Aborts the processor's signal if this process runs the call; the sandbox then disposes its isolate.
      if (tool && id) consumers.get(tool)?.cancelJob(id, 'cancelled');
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
      await Promise.all([waitForRedis(redis, 30_000), waitForRedis(subscriber, 30_000)]);
      await checkNoEviction(redis);
      // Hosts started before the first call: a cold host would make the first calls wait for it.
      await sandbox.ready();
      ops.listen(config.WORKER_METRICS_PORT);
      await once(ops, 'listening');
      metricsPort = (ops.address() as AddressInfo).port;
      state = 'RUNNING';
      await subscriber.subscribe(keys.registryChanged, keys.callCancel);
      await discover();
      discovery = setInterval(() => void discover(), config.TOOL_DISCOVERY_INTERVAL_MS);
      logger.info({ metricsPort, tools: consumers.size }, 'worker started');
    },
    async stop() {
      if (state === 'STOPPED' || state === 'DRAINING') return;
      state = 'DRAINING';
      clearInterval(discovery);
      logger.info({ running: consumers.size }, 'worker draining');
      const workers = [...consumers.values()];
      const graceful = Promise.all(workers.map((w) => w.close()));
      const timedOut = await Promise.race([
        graceful.then(() => false),
        new Promise<boolean>((r) => setTimeout(() => r(true), config.SHUTDOWN_TIMEOUT_MS).unref()),
      ]);
      // Calls still running go back to the queue through stalled-job recovery on another worker.
      if (timedOut) await Promise.all(workers.map((w) => w.close(true)));
      await sandbox.close();
      await upstreams.close();
      breakers.shutdown();
      await Promise.all([closeRedis(redis), closeRedis(subscriber)]);
      await new Promise<void>((r) => ops.close(() => r()));
      state = 'STOPPED';
      logger.info('worker stopped');
    },
  };
}
