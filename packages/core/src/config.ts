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
