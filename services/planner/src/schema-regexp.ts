import type { CodeOptions } from 'ajv';
import { RE2JS } from 're2js';

/**
 * Tenants' schema regexes (`pattern`, `patternProperties`) run on RE2JS, an engine whose time is
 * linear in the input, instead of V8's backtracking one: `^(a+)+$` against 50 `a`s and a `!` froze
 * the planner's event loop for more than 10 s (issue 13).
 *
 * JSON Schema patterns are ECMAScript regexes, which Ajv compiles with the `u` flag and uses as an
 * unanchored search (`RegExp.prototype.test`). {@link translatePattern} rewrites such a pattern into
 * RE2 syntax with the same meaning, and refuses what RE2 cannot run in linear time (backreferences,
 * lookaround) or means differently (pattern modifiers).
 */

/** Ajv's `code.regExp` option. */
export type RegExpEngine = NonNullable<CodeOptions['regExp']>;

/** A tenant's pattern that cannot run on the linear-time engine; registration answers `INVALID_TOOL`. */
export class UnsupportedPatternError extends Error {
  override readonly name = 'UnsupportedPatternError';
  constructor(
    readonly pattern: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(`pattern ${JSON.stringify(pattern)} is not supported: ${reason}`, options);
  }
}

/** The arguments of one call would take more regex work than {@link PatternMeter} allows. */
export class PatternBudgetError extends Error {
  override readonly name = 'PatternBudgetError';
  constructor() {
    super('the arguments are too large to check against the patterns of this schema');
  }
}

/**
 * RE2 runs in time proportional to the input's length times the pattern's program size; with
 * 1 MiB request bodies that product is still large (a 36-instruction pattern took 0.7 s on a 1 MiB
 * string, a 306-instruction one 3.9 s). The meter caps the product across all the pattern tests of one
 * validation, so every validation ends quickly whatever the schema and arguments.
 */
export class PatternMeter {
  private left: number;

  /** @param budget work units per validation: string length × (program size + {@link PER_CHAR_OVERHEAD}) */
  constructor(readonly budget: number) {
    this.left = budget;
  }

  /** Runs `fn` (one validation) with a full budget. */
  run<T>(fn: () => T): T {
    this.left = this.budget;
    return fn();
  }

  /** Throws {@link PatternBudgetError} once the current validation has used its budget. */
  charge(units: number): void {
    this.left -= units;
    if (this.left < 0) throw new PatternBudgetError();
  }
}

/** Per character, RE2JS's matcher costs about as much as this many extra instructions (measured). */
export const PER_CHAR_OVERHEAD = 10;

/** The engine of one compiled schema, with the program size its patterns took so far. */
export type LinearRegExpEngine = RegExpEngine & { readonly instructions: () => number };

/**
 * An Ajv `code.regExp` engine for one schema. Its patterns may compile to `maxInstructions` RE2
 * instructions in total (memory and compile time stay bounded: up to 800 bytes and 2 µs each).
 * Matching uses RE2JS's matcher rather than `test()`: `test()` builds a lazy DFA that keeps up to
 * ~10 MiB per pattern for as long as the pattern lives, the matcher keeps nothing between calls.
 */
export function createLinearRegExpEngine(limits: { maxInstructions: number; meter: PatternMeter }): LinearRegExpEngine {
  let instructions = 0;
  const engine = (pattern: string, flags: string) => {
    if (flags !== 'u') throw new UnsupportedPatternError(pattern, 'only unicode mode patterns are supported');
    const { source, estimate } = translatePattern(pattern);
    const left = limits.maxInstructions - instructions;
    if (estimate > left) throw tooLarge(pattern, limits.maxInstructions);
    let re: RE2JS;
    try {
      re = RE2JS.compile(source);
    } catch (err: unknown) {
      throw new UnsupportedPatternError(pattern, `the linear-time engine refuses it (${(err as Error).message})`, { cause: err });
    }
    const size = re.programSize();
    instructions += size;
    if (instructions > limits.maxInstructions) throw tooLarge(pattern, limits.maxInstructions);
    const perChar = size + PER_CHAR_OVERHEAD;
    return {
      test(s: string): boolean {
        limits.meter.charge((s.length + 1) * perChar);
        return re.matcher(s).find();
      },
      // Ajv keys compiled patterns by this text: two different patterns must never share it.
      toString: () => `/${pattern}/${flags}`,
    };
  };
  return Object.assign(engine, { code: 'linearRegExp', instructions: () => instructions });
}

function tooLarge(pattern: string, max: number): UnsupportedPatternError {
  return new UnsupportedPatternError(pattern, `the schema's patterns would compile to more than ${max} instructions`);
}

/** Code points of JavaScript's `\s` (WhiteSpace and LineTerminator), as inclusive ranges. */
const JS_SPACE: readonly (readonly [number, number])[] = [
  [0x09, 0x0d],
  [0x20, 0x20],
  [0xa0, 0xa0],
  [0x1680, 0x1680],
  [0x2000, 0x200a],
  [0x2028, 0x2029],
  [0x202f, 0x202f],
  [0x205f, 0x205f],
  [0x3000, 0x3000],
  [0xfeff, 0xfeff],
];
const MAX_CODE_POINT = 0x10ffff;

const hex = (cp: number) => `\\x{${cp.toString(16)}}`;
const rangeText = ([lo, hi]: readonly [number, number]) => (lo === hi ? hex(lo) : `${hex(lo)}-${hex(hi)}`);
const SPACE_ITEMS = JS_SPACE.map(rangeText).join('');
const NOT_SPACE_ITEMS = complement(JS_SPACE).map(rangeText).join('');
/** JavaScript's `.` without the `s` flag: anything but a line terminator (RE2's excludes only `\n`). */
const DOT = `[^${hex(0x0a)}${hex(0x0d)}${hex(0x2028)}${hex(0x2029)}]`;

function complement(ranges: readonly (readonly [number, number])[]): [number, number][] {
  const out: [number, number][] = [];
  let next = 0;
  for (const [lo, hi] of ranges) {
    if (lo > next) out.push([next, lo - 1]);
    next = hi + 1;
  }
  if (next <= MAX_CODE_POINT) out.push([next, MAX_CODE_POINT]);
  return out;
}

/** RE2 refuses larger repetition counts. */
const MAX_REPEAT = 1000;
const SYNTAX_CHARS = new Set('^$\\.*+?()[]{}|/');

type Escape = { kind: 'char'; cp: number } | { kind: 'set'; text: string };

/**
 * Rewrites an ECMAScript pattern (`u` flag, unanchored search) into RE2 syntax with the same meaning,
 * with an estimate of its program size to refuse huge ones before compiling them.
 *
 * Differences it bridges: `.` and `\s` (JavaScript's include more line terminators and Unicode
 * spaces), `\u` escapes, `[]` and `[^]`, and character-class syntax (every literal is written as
 * `\x{…}`, so RE2's `[[:alpha:]]` or leading `]` rules never apply). Capturing groups become
 * non-capturing: only match or no match matters here, and group names need not fit RE2's rules.
 */
export function translatePattern(pattern: string): { source: string; estimate: number } {
  try {
    new RegExp(pattern, 'u');
  } catch (err: unknown) {
    throw new UnsupportedPatternError(pattern, `not a valid regular expression (${(err as Error).message})`, { cause: err });
  }
  const cps = Array.from(pattern);
  const unsupported = (reason: string) => new UnsupportedPatternError(pattern, reason);
  let i = 0;
  let out = '';
  // Program size estimate: one frame per open group, with the sum of its finished alternatives,
  // the size of the current one, and the size of the last atom (what a quantifier repeats).
  const frames = [{ alternatives: 0, current: 0, last: 0 }];
  const top = () => frames[frames.length - 1]!;
  const atom = (text: string, size = 1) => {
    out += text;
    top().current += size;
    top().last = size;
  };

  const readEscape = (inClass: boolean): Escape => {
    // cps[i] is the backslash; V8 accepted the pattern, so the escape is complete.
    const c = cps[i + 1]!;
    i += 2;
    switch (c) {
      case 'd':
      case 'D':
      case 'w':
      case 'W':
        return { kind: 'set', text: `\\${c}` };
      case 's':
        return { kind: 'set', text: inClass ? SPACE_ITEMS : `[${SPACE_ITEMS}]` };
      case 'S':
        return { kind: 'set', text: inClass ? NOT_SPACE_ITEMS : `[^${SPACE_ITEMS}]` };
      case 'p':
      case 'P': {
        const end = cps.indexOf('}', i);
        const body = cps.slice(i + 1, end).join('');
        i = end + 1;
        return { kind: 'set', text: `\\${c}{${unicodeProperty(body, unsupported)}}` };
      }
      case 't':
        return { kind: 'char', cp: 0x09 };
      case 'n':
        return { kind: 'char', cp: 0x0a };
      case 'v':
        return { kind: 'char', cp: 0x0b };
      case 'f':
        return { kind: 'char', cp: 0x0c };
      case 'r':
        return { kind: 'char', cp: 0x0d };
      case '0':
        return { kind: 'char', cp: 0 };
      case 'b':
        // Outside a class `\b` is an assertion, handled by the caller.
        return { kind: 'char', cp: 0x08 };
      case 'c': {
        const letter = cps[i]!;
        i += 1;
        return { kind: 'char', cp: letter.codePointAt(0)! % 32 };
      }
      case 'x': {
        const cp = parseInt(cps.slice(i, i + 2).join(''), 16);
        i += 2;
        return { kind: 'char', cp };
      }
      case 'u':
        return { kind: 'char', cp: readUnicodeEscape() };
      case 'k':
        throw unsupported('backreferences cannot run in linear time');
      default:
        if (c >= '1' && c <= '9') throw unsupported('backreferences cannot run in linear time');
        if (SYNTAX_CHARS.has(c) || c === '-') return { kind: 'char', cp: c.codePointAt(0)! };
        // Unreachable for patterns V8 accepts in unicode mode.
        throw unsupported(`unknown escape \\${c}`);
    }
  };

  const readUnicodeEscape = (): number => {
    // After `\u`: `{hex}` or four hex digits, and a surrogate pair written as two escapes is one code point.
    if (cps[i] === '{') {
      const end = cps.indexOf('}', i);
      const cp = parseInt(cps.slice(i + 1, end).join(''), 16);
      i = end + 1;
      return cp;
    }
    const unit = parseInt(cps.slice(i, i + 4).join(''), 16);
    i += 4;
    if (unit >= 0xd800 && unit <= 0xdbff && cps[i] === '\\' && cps[i + 1] === 'u' && /^[\dA-Fa-f]{4}$/.test(cps.slice(i + 2, i + 6).join(''))) {
      const low = parseInt(cps.slice(i + 2, i + 6).join(''), 16);
      if (low >= 0xdc00 && low <= 0xdfff) {
        i += 6;
        return (unit - 0xd800) * 0x400 + (low - 0xdc00) + 0x10000;
      }
    }
    return unit;
  };

  const readClass = (): string => {
    i += 1; // '['
    let negated = false;
    if (cps[i] === '^') {
      negated = true;
      i += 1;
    }
    let items = '';
    const readItem = (): Escape => {
      if (cps[i] === '\\') return readEscape(true);
      const cp = cps[i]!.codePointAt(0)!;
      i += 1;
      return { kind: 'char', cp };
    };
    while (i < cps.length && cps[i] !== ']') {
      const from = readItem();
      if (from.kind === 'char' && cps[i] === '-' && cps[i + 1] !== ']') {
        i += 1; // '-'
        // Unicode mode refuses a range with a class escape at either end: `to` is a character.
        const to = readItem();
        items += to.kind === 'char' ? `${hex(from.cp)}-${hex(to.cp)}` : hex(from.cp) + hex(0x2d) + to.text;
        continue;
      }
      items += from.kind === 'char' ? hex(from.cp) : from.text;
    }
    i += 1; // ']'
    // `[]` matches nothing and `[^]` anything; RE2 would read `]` as a literal there.
    if (items === '') return negated ? `[${hex(0)}-${hex(MAX_CODE_POINT)}]` : `[^${hex(0)}-${hex(MAX_CODE_POINT)}]`;
    return negated ? `[^${items}]` : `[${items}]`;
  };

  const readQuantifier = () => {
    const c = cps[i]!;
    let repeat: number;
    if (c === '{') {
      const end = cps.indexOf('}', i);
      const body = cps.slice(i + 1, end).join('');
      const [min, max] = body.split(',').map((n) => (n === '' ? undefined : Number(n)));
      if ((min ?? 0) > MAX_REPEAT || (max ?? 0) > MAX_REPEAT) {
        throw unsupported(`repetition counts above ${MAX_REPEAT} are not supported`);
      }
      out += `{${body}}`;
      i = end + 1;
      repeat = Math.max(max ?? (body.includes(',') ? (min ?? 0) + 1 : (min ?? 0)), 1);
    } else {
      out += c;
      i += 1;
      repeat = 1;
    }
    if (cps[i] === '?') {
      out += '?';
      i += 1;
    }
    const frame = top();
    frame.current += frame.last * (repeat - 1) + 1;
    frame.last = 0;
  };

  while (i < cps.length) {
    const c = cps[i]!;
    switch (c) {
      case '\\': {
        const next = cps[i + 1];
        if (next === 'b' || next === 'B') {
          i += 2;
          atom(`\\${next}`);
          break;
        }
        const esc = readEscape(false);
        atom(esc.kind === 'char' ? hex(esc.cp) : esc.text);
        break;
      }
      case '[':
        atom(readClass());
        break;
      case '(': {
        if (cps[i + 1] === '?') {
          const kind = cps[i + 2];
          const after = cps[i + 3];
          if (kind === '=' || kind === '!' || (kind === '<' && (after === '=' || after === '!'))) {
            throw unsupported('lookahead and lookbehind cannot run in linear time');
          }
          if (kind === '<') {
            i = cps.indexOf('>', i) + 1; // a named group: the name is not needed
          } else if (kind === ':') {
            i += 3;
          } else {
            throw unsupported('pattern modifiers like (?i:…) are not supported');
          }
        } else {
          i += 1;
        }
        out += '(?:';
        frames.push({ alternatives: 0, current: 0, last: 0 });
        break;
      }
      case ')': {
        i += 1;
        const frame = frames.pop()!;
        out += ')';
        const size = frame.alternatives + frame.current + 1;
        top().current += size;
        top().last = size;
        break;
      }
      case '|': {
        i += 1;
        out += '|';
        const frame = top();
        frame.alternatives += frame.current + 1;
        frame.current = 0;
        frame.last = 0;
        break;
      }
      case '*':
      case '+':
      case '?':
      case '{':
        readQuantifier();
        break;
      case '.':
        i += 1;
        atom(DOT);
        break;
      case '^':
      case '$':
        i += 1;
        atom(c);
        break;
      default:
        i += 1;
        atom(hex(c.codePointAt(0)!));
    }
  }
  const root = frames[0]!;
  return { source: out, estimate: root.alternatives + root.current + 1 };
}

/** `\p{…}` bodies: RE2 knows general categories and scripts by their plain names. */
function unicodeProperty(body: string, unsupported: (reason: string) => UnsupportedPatternError): string {
  const eq = body.indexOf('=');
  if (eq < 0) return body;
  const name = body.slice(0, eq);
  const value = body.slice(eq + 1);
  if (name === 'General_Category' || name === 'gc' || name === 'Script' || name === 'sc') return value;
  throw unsupported(`the Unicode property ${name} is not supported`);
}
