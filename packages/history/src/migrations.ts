/**
 * Versioned schema migrations, applied in order at start (`HistoryStore.migrate()`), each once; the
 * versions applied are kept in `history_migrations`. A migration is never edited once released: a
 * change is a new version. Both dialects share the version numbers.
 */
export type Migration = { version: number; name: string; sqlite: string; postgres: string };

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'calls',
    sqlite: `
      CREATE TABLE calls (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        tool TEXT NOT NULL,
        status TEXT NOT NULL,
        error_code TEXT,
        args_hash TEXT,
        created_at INTEGER NOT NULL,
        finished_at INTEGER NOT NULL,
        record TEXT NOT NULL
      );
      CREATE INDEX calls_by_tenant ON calls (tenant, created_at DESC, id DESC);
      CREATE INDEX calls_by_tenant_tool ON calls (tenant, tool, created_at DESC, id DESC);
      CREATE INDEX calls_by_tenant_args ON calls (tenant, args_hash, created_at DESC, id DESC);`,
    postgres: `
      CREATE TABLE calls (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        tool TEXT NOT NULL,
        status TEXT NOT NULL,
        error_code TEXT,
        args_hash TEXT,
        created_at BIGINT NOT NULL,
        finished_at BIGINT NOT NULL,
        record JSONB NOT NULL
      );
      CREATE INDEX calls_by_tenant ON calls (tenant, created_at DESC, id DESC);
      CREATE INDEX calls_by_tenant_tool ON calls (tenant, tool, created_at DESC, id DESC);
      CREATE INDEX calls_by_tenant_args ON calls (tenant, args_hash, created_at DESC, id DESC);`,
  },
  {
    version: 2,
    name: 'runs and tenant retention',
    sqlite: `
      CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        finished_at INTEGER NOT NULL,
        run TEXT NOT NULL,
        events TEXT NOT NULL
      );
      CREATE INDEX runs_by_tenant ON runs (tenant, created_at DESC, id DESC);
      CREATE TABLE tenant_settings (tenant TEXT PRIMARY KEY, retention_days INTEGER NOT NULL);`,
    postgres: `
      CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        finished_at BIGINT NOT NULL,
        run JSONB NOT NULL,
        events JSONB NOT NULL
      );
      CREATE INDEX runs_by_tenant ON runs (tenant, created_at DESC, id DESC);
      CREATE TABLE tenant_settings (tenant TEXT PRIMARY KEY, retention_days INTEGER NOT NULL);`,
  },
];

/** The schema version the code expects. */
export const SCHEMA_VERSION = MIGRATIONS.at(-1)!.version;
