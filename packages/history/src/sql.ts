import type { HistoryCallQuery } from '@toolplane/queue';

/**
 * The listing query of both drivers, one text with `?` placeholders (Postgres gets `$n`).
 * Per tenant by construction: `tenant = ?` is always the first condition, and the row-value cursor
 * `(created_at, id) < (?, ?)` with `ORDER BY created_at DESC, id DESC` walks the index
 * `calls_by_tenant` (or `calls_by_tenant_tool`) backwards from the cursor.
 */
export function listCallsSql(q: HistoryCallQuery): { sql: string; params: Array<string | number> } {
  const where = ['tenant = ?'];
  const params: Array<string | number> = [q.tenant];
  if (q.tool !== undefined) where.push('tool = ?'), params.push(q.tool);
  if (q.status !== undefined) where.push('status = ?'), params.push(q.status);
  if (q.errorCode !== undefined) where.push('error_code = ?'), params.push(q.errorCode);
  if (q.argsHash !== undefined) where.push('args_hash = ?'), params.push(q.argsHash);
  if (q.since !== undefined) where.push('created_at >= ?'), params.push(q.since);
  if (q.until !== undefined) where.push('created_at <= ?'), params.push(q.until);
  if (q.after) where.push('(created_at, id) < (?, ?)'), params.push(q.after.createdAt, q.after.id);
  params.push(q.limit + 1);
  return {
    sql: `SELECT record FROM calls WHERE ${where.join(' AND ')} ORDER BY created_at DESC, id DESC LIMIT ?`,
    params,
  };
}

/** `?` placeholders as Postgres's `$1, $2, …`. */
export function numbered(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}
