import { createHash } from 'node:crypto';

/** JSON with object keys sorted, so equal values always give equal text (hashes, cache keys). */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    const sorted: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k];
    return sorted;
  }) ?? 'null';
}

export function hashArguments(args: unknown): string {
  return createHash('sha256').update(canonicalJson(args)).digest('hex');
}
