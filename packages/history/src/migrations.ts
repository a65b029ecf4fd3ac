import type { HistoryDriver } from './types.js';

/**
 * The column types where SQLite and Postgres differ; everything else in a migration is SQL both
 * accept. Times are epoch milliseconds (past 2^31, so `BIGINT` in Postgres; SQLite's `INTEGER` is
 * 64-bit); documents are JSON (`JSONB` in Postgres, so `pg` hands them back parsed; text in SQLite).
 */
export type DialectTypes = { epochMs: string; json: string };

const TYPES: Record<HistoryDriver, DialectTypes> = {
  sqlite: { epochMs: 'INTEGER', json: 'TEXT' },
  postgres: { epochMs: 'BIGINT', json: 'JSONB' },
};

/**
 * A versioned schema migration, applied in order at start (`HistoryStore.migrate()`), each once; the
 * versions applied are kept in `history_migrations`. A migration is never edited once released: a
 * change is a new version. One list for both drivers: `sql` gets the dialect's types, and a
 * migration that needs more than a type of its own branches on `driver`.
 */
export type Migration = {
  version: number;
  name: string;
  sql(t: DialectTypes, driver: HistoryDriver): string;
};

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'calls',
    sql: (t) => `
      CREATE TABLE calls (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        tool TEXT NOT NULL,
        status TEXT NOT NULL,
        error_code TEXT,
        args_hash TEXT,
        created_at ${t.epochMs} NOT NULL,
        finished_at ${t.epochMs} NOT NULL,
        record ${t.json} NOT NULL
      );
      CREATE INDEX calls_by_tenant ON calls (tenant, created_at DESC, id DESC);
      CREATE INDEX calls_by_tenant_tool ON calls (tenant, tool, created_at DESC, id DESC);
      CREATE INDEX calls_by_tenant_args ON calls (tenant, args_hash, created_at DESC, id DESC);`,
  },
  {
    version: 2,
    name: 'runs and tenant retention',
    sql: (t) => `
      CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at ${t.epochMs} NOT NULL,
        finished_at ${t.epochMs} NOT NULL,
        run ${t.json} NOT NULL,
        events ${t.json} NOT NULL
      );
      CREATE INDEX runs_by_tenant ON runs (tenant, created_at DESC, id DESC);
      CREATE TABLE tenant_settings (tenant TEXT PRIMARY KEY, retention_days INTEGER NOT NULL);`,
  },
];

/** The schema version the code expects. */
export const SCHEMA_VERSION = MIGRATIONS.at(-1)!.version;

/** The ledger of applied versions, created (if missing) before any migration runs. */
export function ledgerSql(driver: HistoryDriver): string {
  return `CREATE TABLE IF NOT EXISTS history_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at ${TYPES[driver].epochMs} NOT NULL)`;
}

/**
 * The migrations still to apply to a database whose ledger holds `applied`, in order, as the
 * driver's SQL. The store runs them and records each in the ledger, inside the one transaction (and
 * lock) it holds, so two processes starting together apply each once.
 */
export function pendingMigrations(driver: HistoryDriver, applied: Iterable<number>): Array<{ version: number; name: string; sql: string }> {
  const done = new Set(applied);
  return MIGRATIONS.filter((m) => !done.has(m.version)).map((m) => ({ version: m.version, name: m.name, sql: m.sql(TYPES[driver], driver) }));
}
