import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** Metrics of the archiver that moves finished calls and runs from Redis to the history store. */
export function createHistoryMetrics(registry: Registry) {
  return {
    /** Records written to history and dropped from Redis, by kind (`call`, `run`). */
    archived: new Counter({
      name: 'toolplane_history_archived_total',
      help: 'Records moved from Redis to the history store, by kind.',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    /** One batch: read from Redis, written to the store, dropped from Redis. */
    batchSeconds: new Histogram({
      name: 'toolplane_history_batch_seconds',
      help: 'Time to move one batch to the history store and drop it from Redis.',
      labelNames: ['kind'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    /** Rounds that failed (store slow or down, Redis unreachable): nothing of them was dropped. */
    errors: new Counter({
      name: 'toolplane_history_archive_errors_total',
      help: 'Archive rounds that failed; their records stay in Redis and are tried again.',
      registers: [registry],
    }),
    /**
     * How far the archiver is behind: seconds the oldest finished call still in Redis is past its hot
     * retention. Only the process holding the archiver lease reports a non-zero value.
     */
    lagSeconds: new Gauge({
      name: 'toolplane_history_archive_lag_seconds',
      help: 'Seconds the oldest finished call in Redis is past its hot retention.',
      registers: [registry],
    }),
    /** Rows deleted by the retention purge. */
    purged: new Counter({
      name: 'toolplane_history_purged_total',
      help: 'History rows deleted past their tenant retention.',
      registers: [registry],
    }),
  };
}
export type HistoryMetrics = ReturnType<typeof createHistoryMetrics>;
