import type { Logger } from '@toolplane/core';
import type { HttpMetrics, Registry } from '@toolplane/metrics';
import type { CallGate, CallWaiter, RedisConnection, SecretStore, ToolQueues, ToolRegistry } from '@toolplane/queue';
import type { ArgumentValidator } from './validation.js';

/** Everything the HTTP API needs; built in main.ts, replaced piecewise in tests. */
export type PlannerDeps = {
  redis: RedisConnection;
  registry: ToolRegistry;
  secrets: SecretStore;
  queues: ToolQueues;
  gate: CallGate;
  waiter: CallWaiter;
  validator: ArgumentValidator;
  promRegistry: Registry;
  httpMetrics: HttpMetrics;
  logger: Logger;
  maxBodyBytes: number;
  /** `TOOLPLANE_ADMIN_KEY`; without it `/admin/queues` is closed. */
  adminKey?: string;
};

