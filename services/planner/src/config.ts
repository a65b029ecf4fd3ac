import { z } from 'zod';
import { PriceTable } from '@toolplane/agent';
import { WebhookEnv } from '@toolplane/webhooks';
import { BoolEnv, MAX_DEADLINE_MS, Port, parseConfig, serviceConfig, type ServiceEnv } from '@toolplane/core';

/** The planner's settings: the fleet's shared ones ({@link ServiceEnv}) and its own. */
export const PlannerConfig = serviceConfig({
  PORT: Port.default(8080),
  HOST: z.string().min(1).default('0.0.0.0'),
  /** Largest request body accepted; larger ones get 413 `PAYLOAD_TOO_LARGE`. */
  MAX_BODY_BYTES: z.coerce.number().int().min(1024).max(64 * 1024 * 1024).default(1024 * 1024),
  /**
   * Where finished calls and runs live once they leave Redis: `postgres://…`, or `sqlite:<path>`;
   * unset, an embedded SQLite file `.data/history-<TOOLPLANE_PREFIX>.sqlite`.
   */
  HISTORY_URL: z.preprocess(
    (v) => (v === '' ? undefined : v), // compose passes an unset variable through as ''
    z.string().regex(/^(postgres(ql)?:\/\/|sqlite:)/, 'must start with postgres://, postgresql:// or sqlite:').optional(),
  ),
  /** How long a finished call stays in Redis (for `wait`, polling, SSE) before it lives only in history. */
  CALL_HOT_RETENTION_MS: z.coerce.number().int().min(0).default(300_000),
  /** Run the archiver loop here (one process at a time holds its lease). `false` on planners that only serve reads. */
  HISTORY_ARCHIVER: BoolEnv.default(true),
  /** Records per history write. */
  HISTORY_BATCH_SIZE: z.coerce.number().int().min(1).max(5_000).default(500),
  /** Calls of one tenant queued, running or awaiting approval at once; past it 429 `QUOTA_EXCEEDED`. 0 = no cap. */
  TENANT_MAX_CALLS_IN_FLIGHT: z.coerce.number().int().min(0).default(10_000),
  /**
   * Deadline of calls that set none and whose tool sets none (`deadlineMs`): a call still waiting
   * this long after it is due ends `DEADLINE_EXCEEDED`. 0 = no platform default. Not applied to
   * calls of tools that need approval.
   */
  CALL_DEFAULT_DEADLINE_MS: z.coerce.number().int().min(0).max(MAX_DEADLINE_MS).default(3_600_000),
  /** On SIGTERM, requests in flight (waits included) get this long before the process exits. */
  SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(0).default(10_000),
  /**
   * The admin key: an admin API key of the default tenant, and the key of `/admin/queues` (Bearer
   * token, or `?key=` once in a browser). Required unless `TOOLPLANE_AUTH=off`.
   */
  TOOLPLANE_ADMIN_KEY: z.string().min(16, 'must be at least 16 characters').optional(),
  /**
   * `off` turns auth off: every request acts as an admin of the default tenant (a local, single-user
   * setup). Only this explicit value does; a forgotten admin key stops the start instead.
   */
  TOOLPLANE_AUTH: z.enum(['on', 'off']).default('on'),
  /**
   * The trace UI the console links a call's trace id to: an http(s) address with `{traceId}` in it,
   * e.g. `http://localhost:16686/trace/{traceId}` (Jaeger) or Grafana Tempo's explore address.
   */
  CONSOLE_TRACE_URL: z
    .string()
    .url()
    .refine((u) => /^https?:\/\//.test(u) && u.includes('{traceId}'), 'must be an http(s) URL containing {traceId}')
    .optional(),
  /** Requests per second per API key, across planner replicas; 0 turns the limit off. */
  API_RATE_LIMIT_PER_S: z.coerce.number().int().min(0).default(1_000),
  /** Request JSON nested deeper than this is refused with `INVALID_REQUEST`. */
  MAX_JSON_DEPTH: z.coerce.number().int().min(4).max(1_000).default(64),
  /** Any OpenAI-compatible Chat Completions endpoint; defaults to OpenAI's when only a key is set. */
  OPENAI_BASE_URL: z.string().url().optional(),
  OPENAI_API_KEY: z.string().min(1).optional(),
  /** Model of runs that name none. */
  TOOLPLANE_MODEL: z.string().min(1).default('gpt-4o-mini'),
  /** JSON `{"model": {"inputUsdPerMTok": n, "outputUsdPerMTok": n}}`, merged over the built-in prices. */
  TOOLPLANE_MODEL_PRICES: z
    .string()
    .transform((raw, ctx) => {
      try {
        return JSON.parse(raw) as unknown;
      } catch {
        ctx.addIssue({ code: 'custom', message: 'must be JSON' });
        return z.NEVER;
      }
    })
    .pipe(PriceTable)
    .optional(),
  /** Per attempt of a model call; 429/5xx and timeouts are retried LLM_MAX_RETRIES times. */
  LLM_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(60_000),
  LLM_MAX_RETRIES: z.coerce.number().int().min(0).max(10).default(3),
  /** A crashed planner's runs are taken over after this long. */
  RUN_LEASE_MS: z.coerce.number().int().min(500).max(300_000).default(15_000),
  /** How often planners look for runs nobody drives. */
  RUN_SCAN_INTERVAL_MS: z.coerce.number().int().min(100).max(300_000).default(5_000),
  /** Tokens of session memory given to a run. */
  MEMORY_CONTEXT_TOKENS: z.coerce.number().int().min(0).max(100_000).default(1_000),
  ...WebhookEnv,
  /** How long a rotated-out webhook secret still signs deliveries next to the new one; 0 ends it at once. */
  WEBHOOK_ROTATION_GRACE_MS: z.coerce.number().int().min(0).max(30 * 86_400_000).default(86_400_000),
  /** Schedules one tenant may have (`PUT /v1/schedules/{name}` past it: 429 `QUOTA_EXCEEDED`). */
  SCHEDULES_MAX_PER_TENANT: z.coerce.number().int().min(1).max(100_000).default(100),
}).superRefine((config, ctx) => {
  // Fail closed: without an admin key auth would be off, so that must be asked for by name.
  if (config.TOOLPLANE_AUTH === 'on' && !config.TOOLPLANE_ADMIN_KEY) {
    ctx.addIssue({
      code: 'custom',
      path: ['TOOLPLANE_ADMIN_KEY'],
      message: 'is required (at least 16 characters, e.g. `openssl rand -hex 16`); set TOOLPLANE_AUTH=off to run without auth',
    });
  }
  if (config.TOOLPLANE_AUTH === 'off' && config.TOOLPLANE_ADMIN_KEY) {
    ctx.addIssue({
      code: 'custom',
      path: ['TOOLPLANE_AUTH'],
      message: 'is off while TOOLPLANE_ADMIN_KEY is set: unset one of them',
    });
  }
});
export type PlannerConfig = z.infer<typeof PlannerConfig>;

export function loadConfig(env: Record<string, string | undefined>): PlannerConfig {
  return parseConfig(PlannerConfig, env);
}

/** The model endpoint, or `undefined` when runs can't be started (no URL and no key). */
export function modelEndpoint(config: PlannerConfig): { baseUrl: string; apiKey?: string } | undefined {
  const baseUrl = config.OPENAI_BASE_URL ?? (config.OPENAI_API_KEY ? 'https://api.openai.com/v1' : undefined);
  if (!baseUrl) return undefined;
  return { baseUrl, ...(config.OPENAI_API_KEY ? { apiKey: config.OPENAI_API_KEY } : {}) };
}
