import { describe, expect, test } from 'vitest';
import { canonicalJson, hashArguments } from './canonical.js';

/** The implementation before issue 13, to show that ordinary values keep their exact text (stored hashes). */
function previousCanonicalJson(value: unknown): string {
  return (
    JSON.stringify(value, (_key, v: unknown) => {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
      const sorted: Record<string, unknown> = {};
      for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k];
      return sorted;
    }) ?? 'null'
  );
}

describe('canonicalJson', () => {
  test('sorts keys at every depth, so key order does not change the text', () => {
    expect(canonicalJson({ b: 1, a: { d: [{ z: 1, y: 2 }], c: null } })).toBe('{"a":{"c":null,"d":[{"y":2,"z":1}]},"b":1}');
    expect(canonicalJson({ a: 1, b: 2 })).toBe(canonicalJson({ b: 2, a: 1 }));
    expect(canonicalJson(undefined)).toBe('null');
  });

  test('ordinary values give exactly the text they gave before', () => {
    const values: unknown[] = [
      { q: 'x', n: 1.5, t: true, f: null, list: [3, 'b', { y: 1, x: [] }] },
      { '10': 'ten', '2': 'two', b: 1, a: 2, '': 'empty', 'é': 'accent', 'A': 'upper' },
      { constructor: 1, toString: 'x', hasOwnProperty: [], valueOf: {} },
      { when: new Date(0), nested: { skipped: undefined, kept: 0 } },
      [],
      'text',
      42,
      null,
    ];
    for (const v of values) expect(canonicalJson(v)).toBe(previousCanonicalJson(v));
  });

  test('an own __proto__ key parsed from JSON is covered', () => {
    const withProto = JSON.parse('{"q":1,"__proto__":{"x":1}}') as unknown;
    const without = JSON.parse('{"q":1}') as unknown;
    expect(canonicalJson(withProto)).toBe('{"__proto__":{"x":1},"q":1}');
    expect(hashArguments(withProto)).not.toBe(hashArguments(without));
    // The failing version this replaces: the key vanished from the text.
    expect(previousCanonicalJson(withProto)).toBe(previousCanonicalJson(without));
  });

  test('__proto__ values are compared like any other key, at any depth', () => {
    const a = JSON.parse('{"o":{"__proto__":{"x":1}}}') as unknown;
    const b = JSON.parse('{"o":{"__proto__":{"x":2}}}') as unknown;
    const same = JSON.parse('{"o":{"__proto__":{"x":1}}}') as unknown;
    expect(hashArguments(a)).not.toBe(hashArguments(b));
    expect(hashArguments(a)).toBe(hashArguments(same));
    expect(canonicalJson(JSON.parse('{"__proto__":null}'))).toBe('{"__proto__":null}');
    expect(canonicalJson(JSON.parse('{"__proto__":[1]}'))).toBe('{"__proto__":[1]}');
  });

  test('keys named like Object.prototype members are covered', () => {
    for (const key of ['constructor', 'toString', 'valueOf', 'hasOwnProperty', 'toJSON', '__defineGetter__']) {
      const withKey = JSON.parse(`{"q":1,"${key}":{"x":1}}`) as unknown;
      expect(canonicalJson(withKey), key).toContain(`"${key}":{"x":1}`);
      expect(hashArguments(withKey), key).not.toBe(hashArguments({ q: 1 }));
    }
  });

  test('equal values give equal text whichever order their keys were written in', () => {
    const a = JSON.parse('{"__proto__":{"b":2,"a":1},"constructor":0,"q":[1]}') as unknown;
    const b = JSON.parse('{"q":[1],"constructor":0,"__proto__":{"a":1,"b":2}}') as unknown;
    expect(canonicalJson(a)).toBe(canonicalJson(b));
  });
});
