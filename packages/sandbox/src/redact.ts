/** Secret values shorter than this are not searched for: they would blank out ordinary words. */
export const MIN_REDACTED_SECRET_LENGTH = 4;
export const REDACTED = '[REDACTED]';

/**
 * A copy of `value` (parsed JSON) with every occurrence of a secret value in its strings and keys
 * replaced by {@link REDACTED}. Only a tool that was granted secrets pays for the walk.
 */
export function redactSecrets<T>(value: T, secrets: readonly string[]): T {
  const needles = secrets.filter((s) => s.length >= MIN_REDACTED_SECRET_LENGTH);
  if (needles.length === 0) return value;
  const scrub = (s: string) => {
    for (const n of needles) if (s.includes(n)) s = s.replaceAll(n, REDACTED);
    return s;
  };
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') return scrub(v);
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      // defineProperty, not assignment: a `__proto__` key must stay a key, not become a prototype.
      for (const [k, x] of Object.entries(v)) {
        Object.defineProperty(out, scrub(k), { value: walk(x), enumerable: true, writable: true, configurable: true });
      }
      return out;
    }
    return v;
  };
  return walk(value) as T;
}
