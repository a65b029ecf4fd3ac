/**
 * The call history store: finished calls and agent runs once they leave Redis, and the archiver
 * that moves them. Two drivers behind one interface: Postgres (`HISTORY_URL=postgres://…`) and an
 * embedded `node:sqlite` file (the default).
 *
 * @example
 * ```ts
 * const store = await openHistory({ url: process.env.HISTORY_URL, prefix: 'toolplane' });
 * const calls = createCalls(redis, keys, { history: store }); // calls.reads reads through to history
 * const archiver = new Archiver({ calls: calls.archive, store, redis, keys, tools: () => registry.names(), hotRetentionMs: 300_000 });
 * archiver.start();
 * ```
 */
export { openHistory, describeHistory } from './open.js';
export type { OpenHistoryOptions } from './open.js';
export { SqliteHistory } from './sqlite.js';
export { PostgresHistory } from './postgres.js';
export type { PostgresHistoryOptions } from './postgres.js';
export { Archiver } from './archiver.js';
export type { ArchiverOptions, ArchiverHooks, RunArchiveSource } from './archiver.js';
export { MIGRATIONS, SCHEMA_VERSION } from './migrations.js';
export type { Migration, DialectTypes } from './migrations.js';
export { DEFAULT_RETENTION_DAYS } from './types.js';
export type { ArchivedCall, ArchivedRun, HistoryStore, HistoryDriver, HistoryCallQuery } from './types.js';
