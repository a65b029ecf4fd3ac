import { z } from 'zod';

/** A TCP port from an environment variable; 0 asks the OS for a free one. */
export const Port = z.coerce.number().int().min(0).max(65_535);

/** `true/false/1/0/yes/no/on/off` from an environment variable. */
export const BoolEnv = z
  .enum(['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes' || v === 'on');

export const LogLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

export const RedisUrl = z
  .string()
  .regex(/^(rediss?|redis-cluster):\/\/.+/, 'must be redis://, rediss:// or redis-cluster://host:port,…');

/**
 * `TOOLPLANE_SECRETS_KEY`: a 32-byte key as 64 hex characters or base64, parsed to a Buffer. The
 * message never repeats the value.
 */
export const SecretsKey = z
  .string()
  .transform((raw, ctx) => {
    const key = /^[0-9a-fA-F]{64}$/.test(raw) ? Buffer.from(raw, 'hex') : Buffer.from(raw, 'base64');
    if (key.length !== 32) {
      ctx.addIssue({ code: 'custom', message: 'must be 32 bytes as 64 hex characters or base64' });
      return z.NEVER;
    }
    return key;
  });

/**
 * Tracing settings of every service, spread into its config schema. Tracing is on only when
 * `OTEL_EXPORTER_OTLP_ENDPOINT` is set; without it no OpenTelemetry SDK is started.
 */
export const TracingEnv = {
  /** Base URL of an OTLP/HTTP receiver, e.g. `http://collector:4318`; spans go to `/v1/traces` under it. */
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url({ protocol: /^https?$/ }).optional(),
  /** `service.name` of the spans; defaults to `toolplane-planner` / `toolplane-worker`. */
  OTEL_SERVICE_NAME: z.string().min(1).max(100).optional(),
  /** Milliseconds finished spans are batched before export (the OpenTelemetry variable). */
  OTEL_BSP_SCHEDULE_DELAY: z.coerce.number().int().min(1).max(300_000).default(5_000),
};

/**
 * A call that stalls this many times is put back; the next stall fails it `POISONED` (BullMQ's
 * `maxStalledCount`). Every BullMQ worker of the platform uses it, with the lock settings below.
 */
export const MAX_STALLED_COUNT = 1;

/**
 * The settings the planner and the worker both read: one name, one meaning, one default for the
 * whole fleet. Each service's schema is `ServiceEnv.extend({ …its own keys })` and cannot redefine
 * these ({@link serviceConfig}).
 */
export const ServiceEnv = z.object({
  REDIS_URL: RedisUrl.default('redis://127.0.0.1:6379'),
  /** Key prefix; two deployments on one Redis use two prefixes. */
  TOOLPLANE_PREFIX: z.string().regex(/^[a-zA-Z0-9_-]{1,32}$/, 'must be 1 to 32 letters, digits, _ or -').default('toolplane'),
  LOG_LEVEL: LogLevel.default('info'),
  /** Lets Prometheus read `/metrics` with `Authorization: Bearer <token>` (the planner's and every worker's). */
  TOOLPLANE_METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  /** Seals secrets at rest (AES-256-GCM); planners and workers need the same key. */
  TOOLPLANE_SECRETS_KEY: SecretsKey.optional(),
  /** How long finished calls stay readable, and the expiry of what a call leaves behind (markers, indexes). */
  CALL_RETENTION_MS: z.coerce.number().int().min(60_000).default(7 * 86_400_000),
  /**
   * A running job's lock lasts this long and is renewed while it runs (calls on the workers,
   * schedule firings on the planners, webhook deliveries), so a crashed process's jobs are taken
   * over by another within about this time plus the stalled-check interval. Independent of tool
   * timeouts: isolates run off the event loop, which keeps renewing.
   */
  WORKER_LOCK_DURATION_MS: z.coerce.number().int().min(500).default(10_000),
  /** How often jobs whose lock lapsed are looked for and put back (or failed, past {@link MAX_STALLED_COUNT}). */
  WORKER_STALLED_INTERVAL_MS: z.coerce.number().int().min(200).default(3_000),
  ...TracingEnv,
});
export type ServiceEnv = z.infer<typeof ServiceEnv>;

/** A service's schema: {@link ServiceEnv} and the service's own keys, none of them a shared one. */
export function serviceConfig<S extends z.core.$ZodLooseShape>(own: S & { [K in keyof ServiceEnv]?: never }) {
  // The guard type is for callers only; extending with it would turn the shared keys' types into `never`.
  return ServiceEnv.extend(own as S);
}

/** BullMQ `Worker` options of the lock and stalled settings, the same for every worker of the fleet. */
export function jobLockOptions(config: Pick<ServiceEnv, 'WORKER_LOCK_DURATION_MS' | 'WORKER_STALLED_INTERVAL_MS'>): {
  lockDuration: number;
  stalledInterval: number;
  maxStalledCount: number;
} {
  return { lockDuration: config.WORKER_LOCK_DURATION_MS, stalledInterval: config.WORKER_STALLED_INTERVAL_MS, maxStalledCount: MAX_STALLED_COUNT };
}

/** Thrown once at start with every bad variable named, so a broken deploy says what to fix. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
  }
}

/** Parses the environment with a service's schema; never call at import time. */
export function parseConfig<S extends z.ZodType>(schema: S, env: Record<string, string | undefined>): z.infer<S> {
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = schema.safeParse(cleaned);
  if (parsed.success) return parsed.data;
  throw new ConfigError(
    parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`),
  );
}

/**
 * How both services start: the environment parsed with the service's schema, or, on a bad
 * variable, `toolplane <service>: invalid configuration:` with each variable and what is wrong on
 * stderr and exit code 2, before anything connects. For `main.ts` only (it ends the process).
 */
export function loadServiceConfig<S extends z.ZodType>(service: string, schema: S, env: Record<string, string | undefined>): z.infer<S> {
  try {
    return parseConfig(schema, env);
  } catch (err: unknown) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`toolplane ${service}: ${err.message}\n`);
    process.exit(2);
  }
}
