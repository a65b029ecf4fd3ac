import type { EventEmitter } from 'node:events';
import type { RunEventFeed, RunManager, RunStore } from '@toolplane/agent';
import type { LagMonitor, Logger } from '@toolplane/core';
import type { HistoryStore } from '@toolplane/history';
import type { HttpMetrics, Registry } from '@toolplane/metrics';
import type {
  ApiKeyStore,
  CallGate,
  Calls,
  CallWaiter,
  Keys,
  RedisConnection,
  SecretStore,
  ToolRegistry,
  UpstreamStore,
} from '@toolplane/queue';
import type { SandboxFleet } from '@toolplane/sandbox';
import type { ScheduleStore } from '@toolplane/schedules';
import type { WebhookDeliveries, WebhookSecrets } from '@toolplane/webhooks';
import type { ArgumentValidator } from './validation.js';

/** Everything the HTTP API needs; built in main.ts, replaced piecewise in tests. */
export type PlannerDeps = {
  redis: RedisConnection;
  registry: ToolRegistry;
  secrets: SecretStore;
  /** Calls in Redis, one part per job: producer, reads, actions, archive, tool lifecycle, queue cache. */
  calls: Calls;
  gate: CallGate;
  waiter: CallWaiter;
  validator: ArgumentValidator;
  /** Checks tool code at registration in a sandbox host process, never in the API process. */
  codeChecker: Pick<SandboxFleet, 'check'>;
  promRegistry: Registry;
  httpMetrics: HttpMetrics;
  logger: Logger;
  maxBodyBytes: number;
  /** `TOOLPLANE_ADMIN_KEY`: an admin API key of the default tenant; without it `/admin/queues` is closed. */
  adminKey?: string;
  /**
   * `TOOLPLANE_AUTH=off`: every request acts as an admin of the default tenant. Only this flag turns
   * auth off; a missing `adminKey` alone never does (API keys still work, the admin key is just absent).
   */
  authOff?: boolean;
  /** `/healthz` answers 503 while this says the event loop lagged; without it `/healthz` is always 200. */
  liveness?: Pick<LagMonitor, 'check'>;
  /** `TOOLPLANE_METRICS_TOKEN`: a bearer token that may read `/metrics` and nothing else. */
  metricsToken?: string;
  apiKeys: ApiKeyStore;
  keys: Keys;
  apiRateLimitPerS: number;
  maxJsonDepth: number;
  /** Tracing is on (`OTEL_EXPORTER_OTLP_ENDPOINT`): each request gets a span. */
  tracing?: boolean;
  /** Agent runs; without them `/v1/runs` answers 503. */
  runs?: RunsDeps;
  /** The history store: per-tenant retention and the export read it directly (reads by id go through `calls.reads`). */
  history?: HistoryStore;
  /** MCP upstreams (`/v1/upstreams`). */
  upstreams: UpstreamStore;
  /** Registry changes on any replica, and this process's shutdown: for long-lived MCP streams. */
  events?: EventEmitter<PlannerEvents>;
  /** Completion webhooks (`/v1/webhooks`, `webhook` on calls and runs); without them those answer 503. */
  webhooks?: WebhooksDeps;
  /** Calls on a schedule (`/v1/schedules`); without it those answer 503. */
  schedules?: ScheduleStore;
  /** `CONSOLE_TRACE_URL`: the trace UI address the console links a call's trace id to (`{traceId}` in it). */
  consoleTraceUrl?: string;
};

/** What completion webhooks need on the planner: the tenants' secrets and the attempt log (deliveries run on workers). */
export type WebhooksDeps = {
  secrets: WebhookSecrets;
  deliveries: WebhookDeliveries;
  /** How long a rotated-out secret keeps signing (`WEBHOOK_ROTATION_GRACE_MS`). */
  rotationGraceMs: number;
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

/** Events the planner's process announces to its routes. */
export type PlannerEvents = {
  /** A tool was added, replaced or removed, on this replica or another. */
  toolsChanged: [tool: string];
  /** SIGTERM: long-lived responses should end now. */
  shutdown: [];
};
