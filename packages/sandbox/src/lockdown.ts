/**
 * Runs once in every fresh context, before any tool code, so that calls sharing the context cannot
 * leave state for each other and cannot schedule work that outlives their call:
 *
 * - every intrinsic is frozen, as SES `lockdown` does, so no call can patch a built-in or add a
 *   global for the next one: everything reachable from `globalThis`, and the intrinsics only syntax
 *   or an operation's result leads to (generator and async prototypes, iterator helpers, the
 *   iterators of `Map`, `Set`, strings, `matchAll` and `Intl.Segmenter`, the `stack` accessor V8
 *   puts on every error);
 * - the legacy `RegExp` statics, which would carry the last match of one call into the next, go;
 * - everything that can run code later, outside the call that set it up, goes: `FinalizationRegistry`
 *   and `WeakRef` (GC-timed callbacks), `Atomics.waitAsync` (timer-resolved promises);
 * - `WebAssembly` goes: its memory grows outside the isolate's heap limit (a growth loop held the
 *   host for a second past `dispose()` in our tests), its async compile resolves later, and it is
 *   the largest JIT surface V8 has. `SharedArrayBuffer` goes with it (no other way to make one).
 *
 * `lockdown.int.test.ts` finds the intrinsics by walking and calling everything it can reach, and
 * fails naming any that is left unfrozen; a V8 upgrade that adds one shows up there.
 *
 * The function must stay self-contained: only its text goes into the isolate (see
 * {@link LOCKDOWN_SOURCE}), so it may use nothing from this module and nothing but built-ins.
 */
function lockdown(): void {
  'use strict';
  for (const key of ['$1', '$2', '$3', '$4', '$5', '$6', '$7', '$8', '$9', 'input', '$_', 'lastMatch', '$&',
    'lastParen', '$+', 'leftContext', '$`', 'rightContext', "$'"]) {
    Reflect.deleteProperty(RegExp, key);
  }
  for (const key of ['WebAssembly', 'SharedArrayBuffer', 'FinalizationRegistry', 'WeakRef']) {
    Reflect.deleteProperty(globalThis, key);
  }
  Reflect.deleteProperty(Atomics, 'waitAsync');

  const seen = new WeakSet<object>();
  /** Freezes each root, its prototype chain and everything its properties and accessors lead to. */
  const harden = (...roots: unknown[]): void => {
    const stack = roots;
    while (stack.length > 0) {
      const o = stack.pop();
      if ((typeof o !== 'object' && typeof o !== 'function') || o === null || seen.has(o)) continue;
      seen.add(o);
      Object.freeze(o);
      stack.push(Object.getPrototypeOf(o));
      for (const key of Reflect.ownKeys(o)) {
        const d = Reflect.getOwnPropertyDescriptor(o, key);
        if (d === undefined) continue;
        if ('value' in d) stack.push(d.value);
        else stack.push(d.get, d.set);
      }
    }
  };

  // The lib types stop at ES2023; V8 has iterator helpers (`map`, `Iterator.from`) already.
  type WithHelpers = { map(fn: (value: unknown) => unknown): object };
  const { Iterator } = globalThis as unknown as { Iterator: { from(source: object): object } };
  const segments = new Intl.Segmenter().segment('');
  // core-js's URLSearchParams iterator, when the web runtime is installed (the lockdown survey found it).
  const { URLSearchParams: Params } = globalThis as unknown as { URLSearchParams?: new (init: string) => Record<'keys' | 'values' | 'entries', () => object> };
  const params = Params ? new Params('a=1') : undefined;
  harden(
    globalThis,
    // Reached through syntax only, and through what operations return. Each root is a throwaway
    // product (frozen with the rest, harmlessly): what matters is its prototype chain and the
    // shared functions on it, e.g. %IteratorHelperPrototype% behind every `iterator.map(f)`.
    async function () {}, async () => {}, function* () {}, async function* () {},
    (function* () {})(), (async function* () {})(),
    [].values(), new Map().entries(), new Set().values(), ''[Symbol.iterator](), /a/[Symbol.matchAll]('a'),
    ([].values() as unknown as WithHelpers).map((value) => value),
    // Not an `Iterator` itself, so `from` wraps it in a %WrapForValidIteratorPrototype% object.
    Iterator.from({ next: () => ({ done: true, value: undefined }) }),
    segments, segments[Symbol.iterator](),
    ...(params ? [params.keys(), params.values(), params.entries()] : []),
    // V8 gives every error an own `stack` accessor whose getter and setter are shared.
    new Error(),
  );
}

/**
 * The text evaluated in every fresh context (and in registration checks), before any tool code.
 * The lockdown is written as a function so that the type checker and linter see it; the isolate
 * only ever gets its text, as compiled (plain ES2023). It is our own fixed text, never combined
 * with tool code.
 */
export const LOCKDOWN_SOURCE = `(${lockdown.toString()})()`;
