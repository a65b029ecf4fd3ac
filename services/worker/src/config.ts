import { z } from 'zod';
import { parseNetworkList } from '@toolplane/sandbox';
import { LogLevel, Port, RedisUrl, SecretsKey, TracingEnv, parseConfig } from '@toolplane/core';
import { WebhookEnv } from '@toolplane/webhooks';

export const WorkerConfig = z.object({
  REDIS_URL: RedisUrl.default('redis://127.0.0.1:6379'),
  /** Key prefix; two deployments on one Redis use two prefixes. */
  TOOLPLANE_PREFIX: z.string().regex(/^[a-zA-Z0-9_-]{1,32}$/).default('toolplane'),
  WORKER_METRICS_PORT: Port.default(9464),
  /** When set, `/metrics` answers only `Authorization: Bearer <token>` (the planner honours the same token). */
  TOOLPLANE_METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  /** Calls of one tool this process runs at once (also its isolates per tool version). */
  WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(1000).default(8),
  /**
   * Sandbox host processes that run this worker's calls (one more is kept started as a spare).
   * Tool code runs there, never on the worker's own threads, so the worker can kill a host that
   * tool code has blocked or bloated.
   */
  SANDBOX_HOSTS: z.coerce.number().int().min(1).max(64).default(1),
  /**
   * Heap limits of all live isolates of one host together; past it idle isolates are evicted and
   * calls wait. A host whose resident memory passes this plus 256 MB is killed and replaced.
   */
  SANDBOX_MEMORY_BUDGET_MB: z.coerce.number().int().min(64).max(65_536).default(512),
  /**
   * Private networks (comma-separated CIDRs or addresses) tools' `ctx.fetch` may reach; loopback,
   * private, link-local (cloud metadata), CGNAT and multicast ranges are refused unless listed here.
   */
  TOOLPLANE_ALLOW_PRIVATE_NETWORKS: z
    .string()
    .default('')
    .superRefine((value, ctx) => {
      try {
        parseNetworkList(value);
      } catch (err: unknown) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
      }
    }),
  /** How often the registry is read again, in case a change notice was missed during a disconnect. */
  TOOL_DISCOVERY_INTERVAL_MS: z.coerce.number().int().min(100).default(5_000),
  /**
   * A running call's lock lasts this long and is renewed at half of it, so a crashed worker's calls
   * are taken over by another worker within about this time plus the stalled-check interval.
   * Independent of tool timeouts: isolates run off the event loop, which keeps renewing.
   */
  WORKER_LOCK_DURATION_MS: z.coerce.number().int().min(500).default(10_000),
  WORKER_STALLED_INTERVAL_MS: z.coerce.number().int().min(200).default(3_000),
  /** On SIGTERM, running calls get this long to finish before the process exits. */
  SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(0).default(30_000),
  /** Bytes of results one tenant keeps stored; a result past it fails its call with `QUOTA_EXCEEDED`. 0 = no quota. */
  TENANT_MAX_RESULT_BYTES: z.coerce.number().int().min(0).default(256 * 1024 * 1024),
  /** Ceiling on every tool's `limits.maxResultBytes` (a larger result fails with `RESULT_TOO_LARGE`). */
  MAX_RESULT_BYTES: z.coerce.number().int().min(16).max(16 * 1024 * 1024).default(4 * 1024 * 1024),
  ...WebhookEnv,
  /** Deliveries of completion webhooks this process sends at once. */
  WEBHOOK_CONCURRENCY: z.coerce.number().int().min(1).max(1000).default(16),
  /** How long a webhook receiver may take to answer one attempt. */
  WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(10_000),
  LOG_LEVEL: LogLevel.default('info'),
  /** Opens secrets sealed at rest; the same key as the planner's. */
  TOOLPLANE_SECRETS_KEY: SecretsKey.optional(),
  ...TracingEnv,
});
export type WorkerConfig = z.infer<typeof WorkerConfig>;

export function loadConfig(env: Record<string, string | undefined>): WorkerConfig {
  return parseConfig(WorkerConfig, env);
}
