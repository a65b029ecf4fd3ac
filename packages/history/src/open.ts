import { join } from 'node:path';
import { PostgresHistory } from './postgres.js';
import { SqliteHistory } from './sqlite.js';
import type { HistoryStore } from './types.js';

export type OpenHistoryOptions = {
  /**
   * `postgres://…` (or `postgresql://…`) for Postgres; `sqlite:<path>` for an SQLite file; unset for
   * the embedded default, `<dataDir>/history-<prefix>.sqlite`.
   */
  url?: string;
  /**
   * The deployment's key prefix: the default file is named after it, so two deployments on one
   * machine (or one Redis) keep two histories, as they keep two sets of keys.
   * @default 'toolplane'
   */
  prefix?: string;
  /** @default '.data' (relative to the working directory) */
  dataDir?: string;
};

/** Where the history of these options lives, without opening it (for logs: no password shown). */
export function describeHistory(opts: OpenHistoryOptions): string {
  const url = opts.url;
  if (url && /^postgres(ql)?:\/\//.test(url)) {
    const u = new URL(url);
    return `postgres://${u.host}${u.pathname}`;
  }
  return `sqlite:${sqlitePath(opts)}`;
}

/** Opens the history store named by `url` and applies its migrations. */
export async function openHistory(opts: OpenHistoryOptions): Promise<HistoryStore> {
  const url = opts.url;
  const store: HistoryStore =
    url && /^postgres(ql)?:\/\//.test(url) ? new PostgresHistory({ url }) : new SqliteHistory(sqlitePath(opts));
  try {
    await store.migrate();
  } catch (err: unknown) {
    await store.close().catch(() => {});
    throw err;
  }
  return store;
}

function sqlitePath(opts: OpenHistoryOptions): string {
  const url = opts.url;
  if (!url) return join(opts.dataDir ?? '.data', `history-${opts.prefix ?? 'toolplane'}.sqlite`);
  if (url.startsWith('sqlite:')) return url.slice('sqlite:'.length).replace(/^\/\//, '');
  throw new Error('HISTORY_URL must start with postgres://, postgresql:// or sqlite:');
}
