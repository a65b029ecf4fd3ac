import type { CallRecord } from '@toolplane/core';
import type { CallHistory, HistoryCallQuery } from '@toolplane/queue';

/** A finished call as the history store keeps it. */
export type ArchivedCall = {
  record: CallRecord & { tenant: string };
  /** When the call ended (ms since epoch). */
  finishedAt: number;
};

/** A finished agent run as the history store keeps it: the run record and its steps (events). */
export type ArchivedRun = {
  id: string;
  tenant: string;
  status: string;
  /** ms since epoch */
  createdAt: number;
  /** ms since epoch */
  finishedAt: number;
  /** The run as `GET /v1/runs/{id}` shows it. */
  run: unknown;
  /** Its events, oldest first. */
  events: unknown[];
};

/** Days a tenant's history is kept when no admin set another figure. */
export const DEFAULT_RETENTION_DAYS = 30;

/**
 * The history store: finished calls and agent runs that have left Redis. One interface, two drivers
 * ({@link SqliteHistory}, embedded; {@link PostgresHistory}); both are tested by the same suite.
 *
 * Writes are idempotent, keyed by id: writing a call again (a crashed archiver's batch done twice, a
 * second archiver) leaves one row, holding the last write. Every read of a listing names one tenant
 * and is answered from that tenant's index range, never from a scan of other tenants' rows.
 */
export type HistoryStore = CallHistory & {
  /** `sqlite` or `postgres`. */
  readonly driver: HistoryDriver;
  /** Applies the migrations not applied yet, in order; returns the schema version now in force. */
  migrate(): Promise<number>;
  /** Writes calls (insert or replace by id), all or none. */
  putCalls(calls: readonly ArchivedCall[]): Promise<void>;
  /** Writes runs (insert or replace by id), all or none. */
  putRuns(runs: readonly ArchivedRun[]): Promise<void>;
  getRun(id: string): Promise<ArchivedRun | undefined>;
  /** Days the tenant's history is kept ({@link DEFAULT_RETENTION_DAYS} unless set). */
  retentionDays(tenant: string): Promise<number>;
  setRetentionDays(tenant: string, days: number): Promise<void>;
  /**
   * Deletes every tenant's calls and runs created before its retention, `now` minus its days.
   * Returns the rows deleted.
   */
  purge(now: number): Promise<number>;
  /** Calls stored, of one tenant or all: for tests and operators. */
  countCalls(tenant?: string): Promise<number>;
  /** The query plan of {@link listCalls} for `q`, as the database prints it (the EXPLAIN test reads it). */
  explainListCalls(q: HistoryCallQuery): Promise<string>;
  close(): Promise<void>;
};

export type HistoryDriver = 'sqlite' | 'postgres';

export type { HistoryCallQuery };
