import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import type { CallRecord } from '@toolplane/core';
import type { HistoryCallQuery } from '@toolplane/queue';
import { ledgerSql, pendingMigrations } from './migrations.js';
import { listCallsSql } from './sql.js';
import { DEFAULT_RETENTION_DAYS, type ArchivedCall, type ArchivedRun, type HistoryStore } from './types.js';

const DAY_MS = 86_400_000;

type SqlValue = string | number | null;

/**
 * The embedded history store: one SQLite file through `node:sqlite`, no server. For `make up` and
 * single-machine use. WAL mode, so readers (the API) never wait for the archiver's writes.
 *
 * `node:sqlite` is synchronous: each statement runs on the calling thread. A batch of 500 calls is
 * written in one transaction in a few milliseconds; listings read at most `limit + 1` rows by index.
 */
export class SqliteHistory implements HistoryStore {
  readonly driver = 'sqlite' as const;
  private readonly db: DatabaseSync;

  constructor(readonly path: string) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.db = new DatabaseSync(path);
    this.db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 2000;');
  }

  migrate(): Promise<number> {
    const db = this.db;
    db.exec(ledgerSql('sqlite'));
    // IMMEDIATE takes the write lock first: two processes starting together apply each migration once.
    db.exec('BEGIN IMMEDIATE');
    try {
      const applied = (db.prepare('SELECT version FROM history_migrations').all() as Array<{ version: number }>).map((r) => r.version);
      for (const m of pendingMigrations('sqlite', applied)) {
        db.exec(m.sql);
        db.prepare('INSERT INTO history_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, Date.now());
      }
      db.exec('COMMIT');
    } catch (err: unknown) {
      db.exec('ROLLBACK');
      throw new Error('history migration failed', { cause: err });
    }
    const row = db.prepare('SELECT MAX(version) AS v FROM history_migrations').get() as { v: number };
    return Promise.resolve(row.v);
  }

  putCalls(calls: readonly ArchivedCall[]): Promise<void> {
    const stmt = this.db.prepare(
      `INSERT INTO calls (id, tenant, tool, status, error_code, args_hash, created_at, finished_at, record)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET status = excluded.status, error_code = excluded.error_code,
         finished_at = excluded.finished_at, record = excluded.record`,
    );
    this.transaction(() => {
      for (const { record: r, finishedAt } of calls) {
        stmt.run(r.id, r.tenant, r.tool, r.status, r.error?.code ?? null, r.argsHash ?? null, Date.parse(r.createdAt), finishedAt, JSON.stringify(r));
      }
    });
    return Promise.resolve();
  }

  getCall(id: string): Promise<CallRecord | undefined> {
    const row = this.db.prepare('SELECT record FROM calls WHERE id = ?').get(id) as { record: string } | undefined;
    return Promise.resolve(row ? (JSON.parse(row.record) as CallRecord) : undefined);
  }

  listCalls(q: HistoryCallQuery): Promise<{ calls: CallRecord[]; more: boolean }> {
    const { sql, params } = listCallsSql(q);
    const rows = this.db.prepare(sql).all(...params) as Array<{ record: string }>;
    const more = rows.length > q.limit;
    return Promise.resolve({ calls: rows.slice(0, q.limit).map((r) => JSON.parse(r.record) as CallRecord), more });
  }

  explainListCalls(q: HistoryCallQuery): Promise<string> {
    const { sql, params } = listCallsSql(q);
    const rows = this.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as Array<{ detail: string }>;
    return Promise.resolve(rows.map((r) => r.detail).join('\n'));
  }

  putRuns(runs: readonly ArchivedRun[]): Promise<void> {
    const stmt = this.db.prepare(
      `INSERT INTO runs (id, tenant, status, created_at, finished_at, run, events) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET status = excluded.status, finished_at = excluded.finished_at, run = excluded.run, events = excluded.events`,
    );
    this.transaction(() => {
      for (const r of runs) stmt.run(r.id, r.tenant, r.status, r.createdAt, r.finishedAt, JSON.stringify(r.run), JSON.stringify(r.events));
    });
    return Promise.resolve();
  }

  getRun(id: string): Promise<ArchivedRun | undefined> {
    const row = this.db.prepare('SELECT * FROM runs WHERE id = ?').get(id) as Record<string, SqlValue> | undefined;
    if (!row) return Promise.resolve(undefined);
    return Promise.resolve({
      id: String(row['id']),
      tenant: String(row['tenant']),
      status: String(row['status']),
      createdAt: Number(row['created_at']),
      finishedAt: Number(row['finished_at']),
      run: JSON.parse(String(row['run'])) as unknown,
      events: JSON.parse(String(row['events'])) as unknown[],
    });
  }

  retentionDays(tenant: string): Promise<number> {
    const row = this.db.prepare('SELECT retention_days FROM tenant_settings WHERE tenant = ?').get(tenant) as { retention_days: number } | undefined;
    return Promise.resolve(row?.retention_days ?? DEFAULT_RETENTION_DAYS);
  }

  setRetentionDays(tenant: string, days: number): Promise<void> {
    this.db
      .prepare('INSERT INTO tenant_settings (tenant, retention_days) VALUES (?, ?) ON CONFLICT (tenant) DO UPDATE SET retention_days = excluded.retention_days')
      .run(tenant, days);
    return Promise.resolve();
  }

  async purge(now: number): Promise<number> {
    const tenants = new Set(
      [
        ...(this.db.prepare('SELECT DISTINCT tenant FROM calls').all() as Array<{ tenant: string }>),
        ...(this.db.prepare('SELECT DISTINCT tenant FROM runs').all() as Array<{ tenant: string }>),
      ].map((r) => r.tenant),
    );
    let deleted = 0;
    for (const tenant of tenants) {
      const cutoff = now - (await this.retentionDays(tenant)) * DAY_MS;
      deleted += Number(this.db.prepare('DELETE FROM calls WHERE tenant = ? AND created_at < ?').run(tenant, cutoff).changes);
      deleted += Number(this.db.prepare('DELETE FROM runs WHERE tenant = ? AND created_at < ?').run(tenant, cutoff).changes);
    }
    return deleted;
  }

  countCalls(tenant?: string): Promise<number> {
    const row = (tenant === undefined
      ? this.db.prepare('SELECT COUNT(*) AS n FROM calls').get()
      : this.db.prepare('SELECT COUNT(*) AS n FROM calls WHERE tenant = ?').get(tenant)) as { n: number };
    return Promise.resolve(row.n);
  }

  close(): Promise<void> {
    if (this.db.isOpen) this.db.close();
    return Promise.resolve();
  }

  private transaction(fn: () => void): void {
    this.db.exec('BEGIN IMMEDIATE');
    try {
      fn();
      this.db.exec('COMMIT');
    } catch (err: unknown) {
      this.db.exec('ROLLBACK');
      throw err;
    }
  }
}
