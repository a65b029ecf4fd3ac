import type { EventEmitter } from 'node:events';
import type { Logger } from '@toolplane/core';
import type { HttpMetrics, Registry } from '@toolplane/metrics';
import type { CallGate, CallWaiter, RedisConnection, SecretStore, ToolQueues, ToolRegistry, UpstreamStore } from '@toolplane/queue';
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
  /** MCP upstreams (`/v1/upstreams`). */
  upstreams: UpstreamStore;
  /** Registry changes on any replica, and this process's shutdown: for long-lived MCP streams. */
  events?: EventEmitter<PlannerEvents>;
};

/** Events the planner's process announces to its routes. */
export type PlannerEvents = {
  /** A tool was added, replaced or removed, on this replica or another. */
  toolsChanged: [tool: string];
  /** SIGTERM: long-lived responses should end now. */
  shutdown: [];
};

