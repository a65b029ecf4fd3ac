import ivm from 'isolated-vm';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { LOCKDOWN_SOURCE } from './lockdown.js';
import { installIdleRuntime } from './runtime-source.js';

/**
 * The lockdown must freeze every intrinsic, and nobody can list V8's intrinsics by hand (iterator
 * helpers and `Intl.Segmenter` were missed that way). So these tests find them: inside a locked-down
 * context, {@link survey} walks everything reachable from `globalThis` and from syntax, calls every
 * function it finds in many ways, walks what those calls return, and repeats to a fixed point.
 * It does that twice; an object both passes reach is one every call can reach (an intrinsic or a
 * cache), while each pass's own results are fresh. Every object both reach must be frozen.
 */

type Limits = { maxRounds: number; maxObjects: number; maxCalls: number };
type Survey = {
  /** Objects both passes reached. */
  shared: number;
  /** Where each unfrozen shared object was first reached, e.g. `globalThis.Map.prototype.entries().__proto__`. */
  unfrozen: string[];
  rounds: number;
  calls: number;
  /** The pass stopped at `maxObjects` or `maxCalls` instead of a fixed point. */
  capped: boolean;
  /** Whether the passes reached prototypes known to hide behind an operation (the survey's own check). */
  reached: Record<string, boolean>;
};

const LIMITS: Limits = { maxRounds: 8, maxObjects: 100_000, maxCalls: 200_000 };

/** Runs in the isolate, so it is self-contained: only its text goes in. */
function survey(limits: Limits): string {
  'use strict';
  const then = Promise.prototype.then;
  const noop = () => {};
  const isObject = (v: unknown): v is object => (typeof v === 'object' && v !== null) || typeof v === 'function';
  const keyName = (k: string | symbol) => (typeof k === 'symbol' ? `[${k.description ?? ''}]` : k);

  const discover = () => {
    /** Every object reached, with the path it was first reached by. */
    const found = new Map<object, string>();
    /** Results of calls and what their own properties lead to: receivers for methods. */
    const fromCalls = new WeakSet<object>();
    /** Objects a function was found on: its natural receivers. */
    const holders = new Map<object, object[]>();
    /** A few call results whose prototype chain contains the key, as receivers for its methods. */
    const instances = new Map<object, object[]>();
    /** Receivers each function has been called with. */
    const tried = new Map<object, Set<unknown>>();
    /** The survey's own arguments; never reported. */
    const mine = new WeakSet<object>();
    let queue: object[] = [];
    let calls = 0;
    let capped = false;

    const add = (v: unknown, path: string, fresh: boolean): void => {
      if (!isObject(v) || mine.has(v)) return;
      if (fresh) {
        fromCalls.add(v);
        // A rejected promise nobody handles would fail the evaluation.
        try {
          void Reflect.apply(then, v, [noop, noop]);
        } catch {
          // not a promise
        }
      }
      if (found.has(v)) return;
      if (found.size >= limits.maxObjects) {
        capped = true;
        return;
      }
      found.set(v, path);
      queue.push(v);
    };

    /** Fresh arguments for one round of calls: none, a callback, iterables, a string, pairs. */
    const argumentSets = (): unknown[][] => {
      const callback = function (this: unknown, ...values: unknown[]) {
        add(this, 'callback this', true);
        for (const v of values) add(v, 'callback argument', true);
      };
      const array = [1, 'a'];
      const iterable = {
        [Symbol.iterator]() {
          let i = 0;
          const iterator = { next: () => ({ done: i >= 2, value: i++ }) };
          mine.add(iterator);
          return iterator;
        },
      };
      // Has `next` but does not inherit from Iterator.prototype: `Iterator.from` wraps such objects.
      const iteratorLike = { next: () => ({ done: true, value: undefined }) };
      for (const o of [callback, array, iterable, iteratorLike]) mine.add(o);
      return [[], [callback], [array], [iterable], [iteratorLike], ['a'], ['a', callback], [callback, callback]];
    };

    const walk = (o: object): void => {
      const path = found.get(o) ?? '?';
      const fresh = fromCalls.has(o);
      let proto: unknown = null;
      try {
        proto = Reflect.getPrototypeOf(o);
      } catch {
        // a revoked proxy
      }
      add(proto, `${path}.__proto__`, false);
      if (fresh) {
        for (let p = proto, depth = 0; isObject(p) && depth < 20; depth++) {
          const list = instances.get(p) ?? [];
          if (list.length < 3) list.push(o);
          instances.set(p, list);
          try {
            p = Reflect.getPrototypeOf(p);
          } catch {
            break;
          }
        }
      }
      let keys: (string | symbol)[] = [];
      try {
        keys = Reflect.ownKeys(o);
      } catch {
        return;
      }
      for (const key of keys) {
        let d: PropertyDescriptor | undefined;
        try {
          d = Reflect.getOwnPropertyDescriptor(o, key);
        } catch {
          continue;
        }
        if (!d) continue;
        for (const [v, suffix] of [[d.value, ''], [d.get, '<get>'], [d.set, '<set>']] as const) {
          if (typeof v === 'function') {
            const list = holders.get(v) ?? [];
            if (list.length < 3 && !list.includes(o)) list.push(o);
            holders.set(v, list);
          }
          add(v, `${path}.${keyName(key)}${suffix}`, fresh);
        }
      }
    };

    const drain = (): void => {
      while (queue.length > 0) {
        const batch = queue;
        queue = [];
        for (const o of batch) walk(o);
      }
    };

    /** Calls `f` as a plain function and as a method of each receiver not tried yet, and as a constructor. */
    const exercise = (f: (...a: unknown[]) => unknown): void => {
      const path = found.get(f) ?? '?';
      const done = tried.get(f) ?? new Set<unknown>();
      tried.set(f, done);
      const receivers: unknown[] = [undefined];
      for (const h of holders.get(f) ?? []) receivers.push(h, ...(instances.get(h) ?? []));
      for (const receiver of receivers.slice(0, 8)) {
        if (done.has(receiver)) continue;
        done.add(receiver);
        for (const args of argumentSets()) {
          if (++calls > limits.maxCalls) {
            capped = true;
            return;
          }
          try {
            add(Reflect.apply(f, receiver, args), `${path}()`, true);
          } catch (err: unknown) {
            add(err, `${path}() threw`, true);
          }
          if (receiver !== undefined) continue;
          try {
            add(Reflect.construct(f, args), `new ${path}()`, true);
          } catch (err: unknown) {
            add(err, `new ${path}() threw`, true);
          }
        }
      }
    };

    add(globalThis, 'globalThis', false);
    // What only syntax makes; everything else starts from globalThis.
    const syntax: Record<string, unknown> = {
      'async function': async function () {},
      'async arrow': async () => {},
      'generator function': function* () {},
      'async generator function': async function* () {},
      class: class {},
      arguments: (function () {
        return arguments;
      })(),
      'regexp literal': /a/dgimsy,
      'template object': ((s: TemplateStringsArray) => s)`a`,
    };
    for (const [name, v] of Object.entries(syntax)) add(v, `(${name})`, true);

    let rounds = 0;
    while (rounds < limits.maxRounds) {
      rounds++;
      drain();
      const before = found.size;
      for (const f of [...found.keys()]) if (typeof f === 'function') exercise(f as (...a: unknown[]) => unknown);
      drain();
      if (found.size === before || capped) break;
    }
    return { found, rounds, calls, capped };
  };

  const a = discover();
  const b = discover();
  const shared = [...a.found.keys()].filter((o) => b.found.has(o));
  // Prototypes behind operations, to show the passes get that far. Not the list under test.
  const protoOf = (v: unknown): unknown => Object.getPrototypeOf(v);
  const values = (): { map(f: (v: unknown) => unknown): unknown } => [].values() as never;
  const { Iterator } = globalThis as unknown as { Iterator: { from(o: object): unknown } };
  const segments = new Intl.Segmenter().segment('a');
  const probes: Record<string, unknown> = {
    iteratorHelper: protoOf(values().map((v) => v)),
    wrapForValidIterator: protoOf(Iterator.from({ next: () => ({ done: true, value: undefined }) })),
    segments: protoOf(segments),
    segmentIterator: protoOf(segments[Symbol.iterator]()),
    generator: protoOf(protoOf(function* () {})),
    errorStackGetter: Object.getOwnPropertyDescriptor(new Error(), 'stack')?.get,
  };
  const result: Survey = {
    shared: shared.length,
    unfrozen: shared.filter((o) => !Object.isFrozen(o)).map((o) => a.found.get(o) ?? '?'),
    rounds: Math.max(a.rounds, b.rounds),
    calls: a.calls + b.calls,
    capped: a.capped || b.capped,
    reached: Object.fromEntries(Object.entries(probes).map(([name, p]) => [name, isObject(p) && shared.includes(p)])),
  };
  return JSON.stringify(result);
}

/** A lockdown that freezes only what `globalThis` leads to: the survey must catch what it misses. */
function freezeGlobalThisOnly(): void {
  'use strict';
  const seen = new Set<unknown>();
  const stack: unknown[] = [globalThis];
  while (stack.length > 0) {
    const o = stack.pop();
    if ((typeof o !== 'object' && typeof o !== 'function') || o === null || seen.has(o)) continue;
    seen.add(o);
    Object.freeze(o);
    stack.push(Object.getPrototypeOf(o));
    for (const key of Reflect.ownKeys(o)) {
      const d = Reflect.getOwnPropertyDescriptor(o, key);
      if (d) stack.push(d.value, d.get, d.set);
    }
  }
}

let isolate: ivm.Isolate;
let context: ivm.Context;

beforeEach(async () => {
  isolate = new ivm.Isolate({ memoryLimit: 256 });
  context = await isolate.createContext();
});

afterEach(() => {
  if (!isolate.isDisposed) isolate.dispose();
});

async function runSurvey(): Promise<Survey> {
  const json = (await context.eval(`(${survey.toString()})(${JSON.stringify(LIMITS)})`, { timeout: 120_000 })) as string;
  return JSON.parse(json) as Survey;
}

/** Evaluates `body` as an ES module, as tool code is, and returns its exported `result`. */
async function runModule(body: string): Promise<unknown> {
  const module = await isolate.compileModule(body, { filename: 'tool' });
  await module.instantiate(context, () => {
    throw new Error('no imports');
  });
  await module.evaluate({ timeout: 5000 });
  return JSON.parse(module.namespace.getSync('result') as string) as unknown;
}

describe('lockdown', () => {
  test('every intrinsic that walking and calling reaches is frozen', async () => {
    await context.eval(LOCKDOWN_SOURCE);
    const result = await runSurvey();
    expect(result.unfrozen, `unfrozen intrinsics:\n${result.unfrozen.join('\n')}`).toEqual([]);
    expect(result.capped).toBe(false);
  });

  test('with the web runtime installed (as every isolate has it), every intrinsic and web global is frozen', async () => {
    await installIdleRuntime(isolate, context);
    await context.eval(LOCKDOWN_SOURCE);
    expect(await context.eval('typeof URL + typeof fetch + typeof crypto.subtle.digest + typeof setTimeout')).toBe('functionfunctionfunctionfunction');
    const result = await runSurvey();
    expect(result.unfrozen, `unfrozen intrinsics:\n${result.unfrozen.join('\n')}`).toEqual([]);
    expect(result.capped).toBe(false);
    expect(result.rounds).toBeLessThan(LIMITS.maxRounds);
    expect(result.reached).toEqual({
      iteratorHelper: true,
      wrapForValidIterator: true,
      segments: true,
      segmentIterator: true,
      generator: true,
      errorStackGetter: true,
    });
    expect(result.shared).toBeGreaterThan(500);
  });

  test('the survey names what a lockdown of globalThis alone leaves unfrozen', async () => {
    await context.eval(`(${freezeGlobalThisOnly.toString()})()`);
    const { unfrozen } = await runSurvey();
    for (const missed of [
      'Iterator.prototype.map().__proto__',
      'Iterator.from().__proto__',
      'Intl.Segmenter.prototype.segment().__proto__',
      'Intl.Segmenter.prototype.segment().__proto__.[Symbol.iterator]().__proto__',
      '(generator function).__proto__',
      '(async generator function).__proto__',
      '.stack<get>',
    ]) {
      expect(unfrozen.some((path) => path.endsWith(missed)), `${missed} in\n${unfrozen.join('\n')}`).toBe(true);
    }
  });

  test('tool code cannot add a property to an iterator helper or segmenter prototype', async () => {
    await context.eval(LOCKDOWN_SOURCE);
    const prototypes = `
      const segments = new Intl.Segmenter().segment('a b');
      const prototypes = {
        iteratorHelper: Object.getPrototypeOf([].values().map((x) => x)),
        iteratorHelperFromFilter: Object.getPrototypeOf([1].values().filter(Boolean)),
        wrapForValidIterator: Object.getPrototypeOf(Iterator.from({ next: () => ({ done: true }) })),
        segments: Object.getPrototypeOf(segments),
        segmentIterator: Object.getPrototypeOf(segments[Symbol.iterator]()),
      };`;
    const attempts = await runModule(`${prototypes}
      const outcome = {};
      for (const [name, proto] of Object.entries(prototypes)) {
        const tries = [];
        try { proto.leak = 1; tries.push('assigned'); } catch { tries.push('assignment refused'); }
        try { Object.defineProperty(proto, 'leak', { value: 1 }); tries.push('defined'); } catch { tries.push('define refused'); }
        try { proto.next = () => 'patched'; tries.push('patched next'); } catch { tries.push('patch refused'); }
        try { Object.setPrototypeOf(proto, null); tries.push('reparented'); } catch { tries.push('reparent refused'); }
        outcome[name] = tries;
      }
      export const result = JSON.stringify(outcome);`);
    const refused = ['assignment refused', 'define refused', 'patch refused', 'reparent refused'];
    expect(attempts).toEqual({
      iteratorHelper: refused,
      iteratorHelperFromFilter: refused,
      wrapForValidIterator: refused,
      segments: refused,
      segmentIterator: refused,
    });
    // A later call in the same context sees none of it.
    const later = await runModule(`${prototypes}
      export const result = JSON.stringify(Object.values(prototypes).map((p) => Object.hasOwn(p, 'leak') || Object.isExtensible(p)));`);
    expect(later).toEqual([false, false, false, false, false]);
  });
});
