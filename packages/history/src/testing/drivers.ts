import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import pg from 'pg';
import { PostgresHistory } from '../postgres.js';
import { SqliteHistory } from '../sqlite.js';
import type { HistoryDriver, HistoryStore } from '../types.js';
import { startPostgres, type PostgresServer } from './postgres-server.js';

/** Opens fresh, migrated stores of one driver for a test file; `close()` removes what it made. */
export type StoreFactory = {
  driver: HistoryDriver;
  /** A new, empty, migrated store (Postgres: a database of its own on the shared server). */
  open(): Promise<HistoryStore>;
  /**
   * A second store over the database of `store`, migrated, as a second process (or a restart) opens
   * it. Closed with the factory.
   */
  reopen(store: HistoryStore): Promise<HistoryStore>;
  /** What the database of `store` holds, read around the store: the migration ledger and the schema. */
  inspect(store: HistoryStore): Promise<SchemaSnapshot>;
  /** The Postgres server, to stop and start it in fault tests; undefined for SQLite. */
  postgres?: PostgresServer;
  close(): Promise<void>;
};

/** A database's schema by name (column types differ by dialect on purpose, so they are left out). */
export type SchemaSnapshot = {
  /** `history_migrations`, by version. */
  ledger: Array<{ version: number; name: string; appliedAt: number }>;
  /** Each table's columns, in order. */
  tables: Record<string, string[]>;
  /** Secondary indexes (the primary keys' own indexes left out), sorted. */
  indexes: string[];
};

/** One factory per driver, so a suite runs the same tests against both (`describe.each`). */
export async function storeFactory(driver: HistoryDriver): Promise<StoreFactory> {
  const opened: HistoryStore[] = [];
  /** Where each store opened here keeps its data: a file path or a Postgres URL. */
  const where = new Map<HistoryStore, string>();
  const locate = (store: HistoryStore): string => {
    const at = where.get(store);
    if (at === undefined) throw new Error('inspect/reopen: a store this factory did not open');
    return at;
  };
  if (driver === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'toolplane-history-'));
    let n = 0;
    const openAt = async (path: string) => {
      const store = new SqliteHistory(path);
      await store.migrate();
      opened.push(store);
      where.set(store, path);
      return store;
    };
    return {
      driver,
      open: () => openAt(join(dir, `h${++n}.sqlite`)),
      reopen: (store) => openAt(locate(store)),
      inspect(store) {
        const db = new DatabaseSync(locate(store), { readOnly: true });
        try {
          const ledger = (db.prepare('SELECT version, name, applied_at FROM history_migrations ORDER BY version').all() as Array<{ version: number; name: string; applied_at: number }>)
            .map((r) => ({ version: r.version, name: r.name, appliedAt: Number(r.applied_at) }));
          const tables: Record<string, string[]> = {};
          for (const { name } of db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as Array<{ name: string }>) {
            tables[name] = (db.prepare('SELECT name FROM pragma_table_info(?) ORDER BY cid').all(name) as Array<{ name: string }>).map((c) => c.name);
          }
          // Indexes SQLite makes itself (for primary keys) have no SQL text.
          const indexes = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name").all() as Array<{ name: string }>).map((r) => r.name);
          return Promise.resolve({ ledger, tables, indexes });
        } finally {
          db.close();
        }
      },
      async close() {
        await Promise.all(opened.map((s) => s.close()));
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const server = await startPostgres();
  let n = 0;
  const openAt = async (url: string) => {
    const store = new PostgresHistory({ url });
    await store.migrate();
    opened.push(store);
    where.set(store, url);
    return store;
  };
  return {
    driver,
    postgres: server,
    async open() {
      const db = `h${++n}`;
      const admin = new pg.Client({ connectionString: server.url });
      await admin.connect();
      try {
        await admin.query(`CREATE DATABASE ${db}`);
      } finally {
        await admin.end();
      }
      return openAt(server.url.replace(/\/postgres$/, `/${db}`));
    },
    reopen: (store) => openAt(locate(store)),
    async inspect(store) {
      const client = new pg.Client({ connectionString: locate(store) });
      await client.connect();
      try {
        const ledger = (await client.query<{ version: number; name: string; applied_at: string }>('SELECT version, name, applied_at FROM history_migrations ORDER BY version')).rows
          .map((r) => ({ version: r.version, name: r.name, appliedAt: Number(r.applied_at) }));
        const columns = await client.query<{ table_name: string; column_name: string }>(
          "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
        );
        const tables: Record<string, string[]> = {};
        for (const c of columns.rows) (tables[c.table_name] ??= []).push(c.column_name);
        const indexes = (await client.query<{ indexname: string }>(
          "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND indexname NOT LIKE '%\\_pkey' ORDER BY indexname",
        )).rows.map((r) => r.indexname);
        return { ledger, tables, indexes };
      } finally {
        await client.end();
      }
    },
    async close() {
      await Promise.all(opened.map((s) => s.close().catch(() => {})));
      await server.stop();
    },
  };
}
