import { pino } from 'pino';

export type Logger = pino.Logger;

/** The root logger of a service. Packages take a child of it, never create their own. */
export function createLogger(opts: {
  name: string;
  level?: string;
  /** Fields added to every line, e.g. the active trace id (`traceLogFields` of `@toolplane/tracing`). */
  mixin?: () => Record<string, unknown>;
}): Logger {
  return pino({
    name: opts.name,
    level: opts.level ?? 'info',
    ...(opts.mixin ? { mixin: opts.mixin } : {}),
    redact: {
      paths: ['*.arguments', '*.secrets', 'req.headers.authorization', '*.apiKey'],
      censor: '[redacted]',
    },
  });
}

/** A logger that drops everything: the default for library options. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
