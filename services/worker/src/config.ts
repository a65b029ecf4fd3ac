import { z } from 'zod';
import { parseNetworkList } from '@toolplane/sandbox';
import { Port, parseConfig, serviceConfig, type ServiceEnv } from '@toolplane/core';
import { WebhookEnv } from '@toolplane/webhooks';

/** The worker's settings: the fleet's shared ones ({@link ServiceEnv}) and its own. */
export const WorkerConfig = serviceConfig({
  WORKER_METRICS_PORT: Port.default(9464),
  /** Calls this process runs at once, across all tools (also its isolates per tool version). */
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
  /**
   * How often every tool name is read again (in pages), a safety net for a change notice never sent;
   * notices missed during a disconnect are made up for on reconnecting.
   */
  TOOL_DISCOVERY_INTERVAL_MS: z.coerce.number().int().min(100).default(60_000),
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
});
export type WorkerConfig = z.infer<typeof WorkerConfig>;

export function loadConfig(env: Record<string, string | undefined>): WorkerConfig {
  return parseConfig(WorkerConfig, env);
}
