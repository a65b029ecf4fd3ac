import { pino } from 'pino';

export type Logger = pino.Logger;

/** The root logger of a service. Packages take a child of it, never create their own. */
export function createLogger(opts: { name: string; level?: string }): Logger {
  return pino({
    name: opts.name,
    level: opts.level ?? 'info',
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
