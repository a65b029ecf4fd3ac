import { createHash } from 'node:crypto';

/**
 * JSON with object keys sorted, so equal values always give equal text (hashes, cache keys).
 *
 * Every own key counts, `__proto__` included: `JSON.parse('{"__proto__":{}}')` makes it an own
 * property, and assigning it on a plain object would set the prototype instead and drop it from the
 * text, so `{"q":1,"__proto__":{"x":1}}` would hash like `{"q":1}` (issue 13). The sorted copy has no
 * prototype, where `__proto__` is an ordinary key; keys are still inserted in the same order into an
 * object with the same enumeration rules, so every other value gives exactly the text it always did.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    const sorted = Object.create(null) as Record<string, unknown>;
    for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k];
    return sorted;
  }) ?? 'null';
}

/** SHA-256 of {@link canonicalJson}: binds approvals and keys the result cache. */
export function hashArguments(args: unknown): string {
  return createHash('sha256').update(canonicalJson(args)).digest('hex');
}
