import { describe, expect, test } from 'vitest';
import {
  PatternBudgetError,
  PatternMeter,
  UnsupportedPatternError,
  createLinearRegExpEngine,
  translatePattern,
} from './schema-regexp.js';

const engine = (maxInstructions = 100_000, budget = 1e12) =>
  createLinearRegExpEngine({ maxInstructions, meter: new PatternMeter(budget) });

/** The linear engine must answer what V8 answers for `new RegExp(pattern, 'u').test(s)`. */
function expectSameAsV8(pattern: string, inputs: string[]): void {
  const native = new RegExp(pattern, 'u');
  const linear = engine()(pattern, 'u');
  for (const s of inputs) expect(linear.test(s), `${pattern} on ${JSON.stringify(s)}`).toBe(native.test(s));
}

describe('the linear-time engine keeps JSON Schema (ECMAScript, u flag) semantics', () => {
  test('patterns search anywhere: anchoring is not implied', () => {
    expectSameAsV8('abc', ['abc', 'xabcx', 'ab', '']);
    expectSameAsV8('^abc$', ['abc', 'xabc', 'abc\n', 'ABC']);
    expectSameAsV8('^$', ['', '\n', 'a']);
    expectSameAsV8('a|^b', ['xa', 'xb', 'b']);
  });

  test('. and \\s \\S follow JavaScript, not RE2', () => {
    const inputs = ['a', '\n', '\r', '\u2028', '\u2029', '\u0085', '\u00a0', '\u1680', '\u2003', '\u3000', '\ufeff', '\v', '\t', ' ', '😀', '\u180e', '\u200b'];
    for (const p of ['^.$', '^\\s$', '^\\S$', '^[\\s]$', '^[^\\s]$', '^[\\S]$', '^[\\s\\S]$', '^[^\\S\\d]$', '^[a\\s]$', '^.{2}$']) {
      expectSameAsV8(p, inputs);
    }
  });

  test('\\s, \\S and . match the same code points as V8 across the whole BMP and some astral ones', () => {
    const linear = { s: engine()('\\s', 'u'), S: engine()('^\\S$', 'u'), dot: engine()('^.$', 'u') };
    const native = { s: /\s/u, S: /^\S$/u, dot: /^.$/u };
    const wrong: string[] = [];
    for (let cp = 0; cp <= 0xffff; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      const ch = String.fromCodePoint(cp);
      for (const k of ['s', 'S', 'dot'] as const) if (linear[k].test(ch) !== native[k].test(ch)) wrong.push(`${k} U+${cp.toString(16)}`);
    }
    for (const cp of [0x10000, 0x1f600, 0x10ffff]) {
      const ch = String.fromCodePoint(cp);
      for (const k of ['s', 'S', 'dot'] as const) if (linear[k].test(ch) !== native[k].test(ch)) wrong.push(`${k} U+${cp.toString(16)}`);
    }
    expect(wrong).toEqual([]);
  });

  test('unicode: code points, escapes, properties', () => {
    expectSameAsV8('^.$', ['😀', 'é', 'ab']);
    expectSameAsV8('^\\u0041\\u{1F600}$', ['A😀', 'A', '😀']);
    expectSameAsV8('^\\uD83D\\uDE00$', ['😀', '\uD83D']);
    expectSameAsV8('^[\\u0000-\\u001F]+$', ['\u0001\u001f', 'a', '']);
    expectSameAsV8('^[😀-😂]$', ['😀', '😁', '😃', 'a']);
    expectSameAsV8('^\\x41\\cJ\\0$', ['A\n\0', 'A\n']);
    expectSameAsV8('^\\p{L}+$', ['héllo', 'Ωmega', 'a1']);
    expectSameAsV8('^\\P{Lu}$', ['a', 'A', 'É', '1']);
    expectSameAsV8('^\\p{Script=Greek}+$', ['αβγ', 'abc']);
    expectSameAsV8('^\\p{gc=Nd}$', ['٣', '3', 'a']);
    expectSameAsV8('^\\w+$', ['abc_1', 'é', 'a-b']);
    expectSameAsV8('^\\d+$', ['123', '٣']);
    expectSameAsV8('\\bfoo\\b', ['a foo b', 'afoob', 'éfooé']);
    expectSameAsV8('\\Bo\\B', ['foo', 'o']);
  });

  test('character classes', () => {
    const inputs = ['a', '-', ']', '[', '^', '\\', '\b', 'b', 'z', ':', 'x', ''];
    for (const p of ['^[a-]$', '^[-a]$', '^[\\-]$', '^[\\]]$', '^[[]$', '^[\\^a]$', '^[a^]$', '^[\\\\]$', '^[\\b]$', '^[a-c-z]$', '^[[:a]$', '^[^a]$']) {
      expectSameAsV8(p, inputs);
    }
    expectSameAsV8('[]', ['', 'a', ']']);
    expectSameAsV8('^[^]$', ['a', '\n', '😀', '']);
    expectSameAsV8('^a[^]*b$', ['a\nb', 'ab', 'a']);
  });

  test('groups, quantifiers and escaped syntax characters', () => {
    expectSameAsV8('^(?<year>\\d{4})-(?:\\d{2})$', ['2024-05', '24-05']);
    expectSameAsV8('^(a|bc)+?$', ['abcbca', 'abd']);
    expectSameAsV8('^a{2,}b{1,3}c{2}$', ['aabcc', 'abcc', 'aabbbbcc']);
    expectSameAsV8('^\\/\\.\\*\\+\\?\\(\\)\\[\\]\\{\\}\\|\\$\\^$', ['/.*+?()[]{}|$^', 'x']);
    expectSameAsV8('^a/b$', ['a/b']);
    expectSameAsV8('^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$', ['123e4567-e89b-12d3-a456-426614174000', 'nope']);
  });

  test('each compiled pattern has its own text, as Ajv keys its compiled patterns by it', () => {
    const e = engine();
    expect(String(e('a+', 'u'))).toBe('/a+/u');
    expect(String(e('a+', 'u'))).not.toBe(String(e('b+', 'u')));
  });
});

describe('patterns the engine cannot run are refused with the reason', () => {
  const refused = (pattern: string) => {
    try {
      engine()(pattern, 'u');
    } catch (err: unknown) {
      expect(err).toBeInstanceOf(UnsupportedPatternError);
      return (err as Error).message;
    }
    throw new Error(`${pattern} was accepted`);
  };

  test('backreferences and lookaround', () => {
    expect(refused('^(a)\\1$')).toMatch(/backreference/);
    expect(refused('^(?<x>a)\\k<x>$')).toMatch(/backreference/);
    expect(refused('a(?=b)')).toMatch(/lookahead and lookbehind/);
    expect(refused('a(?!b)')).toMatch(/lookahead and lookbehind/);
    expect(refused('(?<=a)b')).toMatch(/lookahead and lookbehind/);
    expect(refused('(?<!a)b')).toMatch(/lookahead and lookbehind/);
  });

  test('invalid ECMAScript, modifiers, huge repeats, properties RE2 lacks', () => {
    expect(refused('(')).toMatch(/not a valid regular expression/);
    expect(refused('(?i)abc')).toMatch(/not a valid regular expression/);
    expect(refused('\\Qa\\E')).toMatch(/not a valid regular expression/);
    expect(refused('a{1001}')).toMatch(/above 1000/);
    expect(refused('\\p{Letter}')).toMatch(/linear-time engine refuses/);
    expect(refused('\\p{scx=Grek}')).toMatch(/Unicode property scx/);
  });

  test('a schema whose patterns compile to too many instructions, before compiling a nested repeat', () => {
    const e = engine(1_000);
    e('[a-z]{500}', 'u');
    expect(() => e('[a-z]{600}', 'u')).toThrow(/more than 1000 instructions/);
    const started = performance.now();
    expect(() => engine()('(?:(?:[a-z]{1000}){1000}){1000}', 'u')).toThrow(/more than 100000 instructions/);
    expect(performance.now() - started).toBeLessThan(100);
  });

  test('translatePattern estimates the program size', () => {
    expect(translatePattern('abc').estimate).toBeLessThan(10);
    expect(translatePattern('(?:a{100}){10}').estimate).toBeGreaterThanOrEqual(1000);
  });
});

describe('linear time', () => {
  test("'a'.repeat(50) + '!' against ^(a+)+$ takes well under 100 ms", () => {
    const re = engine()('^(a+)+$', 'u');
    const started = performance.now();
    expect(re.test(`${'a'.repeat(50)}!`)).toBe(false);
    expect(performance.now() - started).toBeLessThan(100);
    expect(re.test('a'.repeat(50))).toBe(true);
  });

  test('the meter stops a validation that would do too much regex work', () => {
    const meter = new PatternMeter(1_000_000);
    const re = createLinearRegExpEngine({ maxInstructions: 1000, meter })('^(a+)+$', 'u');
    expect(meter.run(() => re.test('a'.repeat(1000)))).toBe(true);
    expect(() => meter.run(() => re.test('a'.repeat(200_000)))).toThrow(PatternBudgetError);
    // The next validation starts with a full budget.
    expect(meter.run(() => re.test('aaa'))).toBe(true);
  });
});
