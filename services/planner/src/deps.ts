import type { RunEventFeed, RunManager, RunStore } from '@toolplane/agent';
import type { Logger } from '@toolplane/core';
import type { HttpMetrics, Registry } from '@toolplane/metrics';
import type { CallWaiter, RedisConnection, ToolQueues, ToolRegistry } from '@toolplane/queue';
import type { ArgumentValidator } from './validation.js';

/** Everything the HTTP API needs; built in main.ts, replaced piecewise in tests. */
export type PlannerDeps = {
  redis: RedisConnection;
  registry: ToolRegistry;
  queues: ToolQueues;
  waiter: CallWaiter;
  validator: ArgumentValidator;
  promRegistry: Registry;
  httpMetrics: HttpMetrics;
  logger: Logger;
  maxBodyBytes: number;
  /** Agent runs; without them `/v1/runs` answers 503. */
  runs?: RunsDeps;
};

/** What `/v1/runs` needs. */
export type RunsDeps = {
  store: RunStore;
  feed: RunEventFeed;
  /** Absent when no model endpoint is configured: runs can be read but not started. */
  manager: RunManager | undefined;
  /** Aborted on shutdown, so open event streams end instead of holding the server open. */
  closing: AbortSignal;
};

