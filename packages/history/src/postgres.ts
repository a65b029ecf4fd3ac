import pg from 'pg';
import type { CallRecord } from '@toolplane/core';
import type { HistoryCallQuery } from '@toolplane/queue';
import { ledgerSql, pendingMigrations } from './migrations.js';
import { listCallsSql, numbered } from './sql.js';
import { DEFAULT_RETENTION_DAYS, type ArchivedCall, type ArchivedRun, type HistoryStore } from './types.js';

const DAY_MS = 86_400_000;
/** Taken while migrating, so planners starting together apply each migration once. */
const MIGRATION_LOCK = 0x746f6f6c; // 'tool'

export type PostgresHistoryOptions = {
  /** `postgres://user:pass@host:port/db` */
  url: string;
  /**
   * Connections in the pool.
   * @default 5
   */
  poolSize?: number;
  /**
   * A statement running longer than this is cancelled, so a stuck database fails the archiver's batch
   * (it backs off and retries) and the API's reads instead of holding them.
   * @default 10_000
   */
  statementTimeoutMs?: number;
};

/** The production history store: Postgres through a `pg` pool. */
export class PostgresHistory implements HistoryStore {
  readonly driver = 'postgres' as const;
  private readonly pool: pg.Pool;

  constructor(opts: PostgresHistoryOptions) {
    this.pool = new pg.Pool({
      connectionString: opts.url,
      max: opts.poolSize ?? 5,
      connectionTimeoutMillis: 5_000,
      statement_timeout: opts.statementTimeoutMs ?? 10_000,
    });
    // A connection that breaks while idle (the server restarts) is dropped from the pool; the next
    // query opens a new one. Without a listener the error would end the process.
    this.pool.on('error', () => {});
  }

  async migrate(): Promise<number> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await client.query(ledgerSql('postgres'));
      const { rows } = await client.query<{ version: number }>('SELECT version FROM history_migrations');
      for (const m of pendingMigrations('postgres', rows.map((r) => r.version))) {
        await client.query(m.sql);
        await client.query('INSERT INTO history_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [m.version, m.name, Date.now()]);
      }
      await client.query('COMMIT');
      const v = await client.query<{ v: number }>('SELECT MAX(version) AS v FROM history_migrations');
      return v.rows[0]!.v;
    } catch (err: unknown) {
      await client.query('ROLLBACK').catch(() => {});
      throw new Error('history migration failed', { cause: err });
    } finally {
      client.release();
    }
  }

  async putCalls(calls: readonly ArchivedCall[]): Promise<void> {
    if (calls.length === 0) return;
    // One statement for the batch: a multi-row upsert is one round trip and atomic. An id twice in
    // one batch would make Postgres refuse the statement, so the last write of an id wins here.
    const unique = [...new Map(calls.map((c) => [c.record.id, c])).values()];
    const params: unknown[] = [];
    const rows = unique.map(({ record: r, finishedAt }) => {
      const base = params.length;
      params.push(r.id, r.tenant, r.tool, r.status, r.error?.code ?? null, r.argsHash ?? null, Date.parse(r.createdAt), finishedAt, JSON.stringify(r));
      return `(${Array.from({ length: 9 }, (_, i) => `$${base + i + 1}`).join(', ')})`;
    });
    await this.pool.query(
      `INSERT INTO calls (id, tenant, tool, status, error_code, args_hash, created_at, finished_at, record)
       VALUES ${rows.join(', ')}
       ON CONFLICT (id) DO UPDATE SET status = excluded.status, error_code = excluded.error_code,
         finished_at = excluded.finished_at, record = excluded.record`,
      params,
    );
  }

  async getCall(id: string): Promise<CallRecord | undefined> {
    const { rows } = await this.pool.query<{ record: CallRecord }>('SELECT record FROM calls WHERE id = $1', [id]);
    return rows[0]?.record;
  }

  async listCalls(q: HistoryCallQuery): Promise<{ calls: CallRecord[]; more: boolean }> {
    const { sql, params } = listCallsSql(q);
    const { rows } = await this.pool.query<{ record: CallRecord }>(numbered(sql), params);
    return { calls: rows.slice(0, q.limit).map((r) => r.record), more: rows.length > q.limit };
  }

  async explainListCalls(q: HistoryCallQuery): Promise<string> {
    const { sql, params } = listCallsSql(q);
    const { rows } = await this.pool.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${numbered(sql)}`, params);
    return rows.map((r) => r['QUERY PLAN']).join('\n');
  }

  async putRuns(runs: readonly ArchivedRun[]): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      for (const r of runs) {
        await client.query(
          `INSERT INTO runs (id, tenant, status, created_at, finished_at, run, events) VALUES ($1, $2, $3, $4, $5, $6, $7)
           ON CONFLICT (id) DO UPDATE SET status = excluded.status, finished_at = excluded.finished_at, run = excluded.run, events = excluded.events`,
          [r.id, r.tenant, r.status, r.createdAt, r.finishedAt, JSON.stringify(r.run), JSON.stringify(r.events)],
        );
      }
      await client.query('COMMIT');
    } catch (err: unknown) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  }

  async getRun(id: string): Promise<ArchivedRun | undefined> {
    const { rows } = await this.pool.query<{ id: string; tenant: string; status: string; created_at: string; finished_at: string; run: unknown; events: unknown[] }>(
      'SELECT * FROM runs WHERE id = $1',
      [id],
    );
    const r = rows[0];
    if (!r) return undefined;
    return { id: r.id, tenant: r.tenant, status: r.status, createdAt: Number(r.created_at), finishedAt: Number(r.finished_at), run: r.run, events: r.events };
  }

  async retentionDays(tenant: string): Promise<number> {
    const { rows } = await this.pool.query<{ retention_days: number }>('SELECT retention_days FROM tenant_settings WHERE tenant = $1', [tenant]);
    return rows[0]?.retention_days ?? DEFAULT_RETENTION_DAYS;
  }

  async setRetentionDays(tenant: string, days: number): Promise<void> {
    await this.pool.query(
      'INSERT INTO tenant_settings (tenant, retention_days) VALUES ($1, $2) ON CONFLICT (tenant) DO UPDATE SET retention_days = excluded.retention_days',
      [tenant, days],
    );
  }

  async purge(now: number): Promise<number> {
    const { rows } = await this.pool.query<{ tenant: string }>('SELECT DISTINCT tenant FROM calls UNION SELECT DISTINCT tenant FROM runs');
    let deleted = 0;
    for (const { tenant } of rows) {
      const cutoff = now - (await this.retentionDays(tenant)) * DAY_MS;
      deleted += (await this.pool.query('DELETE FROM calls WHERE tenant = $1 AND created_at < $2', [tenant, cutoff])).rowCount ?? 0;
      deleted += (await this.pool.query('DELETE FROM runs WHERE tenant = $1 AND created_at < $2', [tenant, cutoff])).rowCount ?? 0;
    }
    return deleted;
  }

  async countCalls(tenant?: string): Promise<number> {
    const { rows } = tenant === undefined
      ? await this.pool.query<{ n: string }>('SELECT COUNT(*) AS n FROM calls')
      : await this.pool.query<{ n: string }>('SELECT COUNT(*) AS n FROM calls WHERE tenant = $1', [tenant]);
    return Number(rows[0]!.n);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
