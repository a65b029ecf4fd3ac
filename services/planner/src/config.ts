import { z } from 'zod';
import { LogLevel, Port, RedisUrl, SecretsKey, parseConfig } from '@toolplane/core';

export const PlannerConfig = z.object({
  REDIS_URL: RedisUrl.default('redis://127.0.0.1:6379'),
  /** Key prefix; two deployments on one Redis use two prefixes. */
  TOOLPLANE_PREFIX: z.string().regex(/^[a-zA-Z0-9_-]{1,32}$/).default('toolplane'),
  PORT: Port.default(8080),
  HOST: z.string().min(1).default('0.0.0.0'),
  /** Largest request body accepted; larger ones get 413 `PAYLOAD_TOO_LARGE`. */
  MAX_BODY_BYTES: z.coerce.number().int().min(1024).max(64 * 1024 * 1024).default(1024 * 1024),
  /** How long finished calls stay readable. */
  CALL_RETENTION_MS: z.coerce.number().int().min(60_000).default(7 * 86_400_000),
  /** On SIGTERM, requests in flight (waits included) get this long before the process exits. */
  SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(0).default(10_000),
  /**
   * Admin key for `/admin/queues` (Bearer token, or `?key=` once in a browser). Unset: the queue
   * dashboard answers 403 to everyone.
   */
  TOOLPLANE_ADMIN_KEY: z.string().min(16, 'must be at least 16 characters').optional(),
  LOG_LEVEL: LogLevel.default('info'),
  /** Seals secrets at rest (AES-256-GCM); planners and workers need the same key. */
  TOOLPLANE_SECRETS_KEY: SecretsKey.optional(),
});
export type PlannerConfig = z.infer<typeof PlannerConfig>;

export function loadConfig(env: Record<string, string | undefined>): PlannerConfig {
  return parseConfig(PlannerConfig, env);
}
