/**
 * Test helpers: a real Postgres (Debian's package) on a free port, started and stopped per test file.
 *
 * @example
 * ```ts
 * const pg = await startPostgres();
 * afterAll(() => pg.stop());
 * const store = await openHistory({ url: pg.url });
 * ```
 */
export { startPostgres, postgresBinDir } from './postgres-server.js';
export type { PostgresServer } from './postgres-server.js';
export { storeFactory } from './drivers.js';
export type { StoreFactory, SchemaSnapshot } from './drivers.js';
