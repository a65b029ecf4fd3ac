import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
  /** The Postgres server, to stop and start it in fault tests; undefined for SQLite. */
  postgres?: PostgresServer;
  close(): Promise<void>;
};

/** One factory per driver, so a suite runs the same tests against both (`describe.each`). */
export async function storeFactory(driver: HistoryDriver): Promise<StoreFactory> {
  const opened: HistoryStore[] = [];
  if (driver === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'toolplane-history-'));
    let n = 0;
    return {
      driver,
      async open() {
        const store = new SqliteHistory(join(dir, `h${++n}.sqlite`));
        await store.migrate();
        opened.push(store);
        return store;
      },
      async close() {
        await Promise.all(opened.map((s) => s.close()));
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const server = await startPostgres();
  let n = 0;
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
      const store = new PostgresHistory({ url: server.url.replace(/\/postgres$/, `/${db}`) });
      await store.migrate();
      opened.push(store);
      return store;
    },
    async close() {
      await Promise.all(opened.map((s) => s.close().catch(() => {})));
      await server.stop();
    },
  };
}
