/**
 * Source run once in every fresh context, before any tool code, so that calls sharing the context
 * cannot leave state for each other and cannot schedule work that outlives their call:
 *
 * - every intrinsic reachable from `globalThis` (and through syntax) is frozen, as SES `lockdown`
 *   does, so no call can patch a built-in or add a global for the next one;
 * - the legacy `RegExp` statics, which would carry the last match of one call into the next, go;
 * - everything that can run code later, outside the call that set it up, goes: `FinalizationRegistry`
 *   and `WeakRef` (GC-timed callbacks), `Atomics.waitAsync` (timer-resolved promises);
 * - `WebAssembly` goes: its memory grows outside the isolate's heap limit (a growth loop held the
 *   host for a second past `dispose()` in our tests), its async compile resolves later, and it is
 *   the largest JIT surface V8 has. `SharedArrayBuffer` goes with it (no other way to make one).
 *
 * It is our own fixed text, never combined with tool code.
 */
export const LOCKDOWN_SOURCE = `(() => {
  'use strict';
  for (const k of ['$1','$2','$3','$4','$5','$6','$7','$8','$9','input','$_','lastMatch','$&',
                   'lastParen','$+','leftContext','$\`','rightContext',"$'"]) {
    try { delete RegExp[k]; } catch {}
  }
  for (const k of ['WebAssembly', 'SharedArrayBuffer', 'FinalizationRegistry', 'WeakRef']) delete globalThis[k];
  delete Atomics.waitAsync;
  const seen = new Set();
  const harden = (...roots) => {
    const stack = [...roots];
    while (stack.length > 0) {
      const o = stack.pop();
      if ((typeof o !== 'object' && typeof o !== 'function') || o === null || seen.has(o)) continue;
      seen.add(o);
      Object.freeze(o);
      stack.push(Object.getPrototypeOf(o));
      for (const key of Reflect.ownKeys(o)) {
        const d = Object.getOwnPropertyDescriptor(o, key);
        if (!d) continue;
        if ('value' in d) stack.push(d.value); else stack.push(d.get, d.set);
      }
    }
  };
  // Some intrinsics are reached through syntax only, not through globalThis.
  const proto = Object.getPrototypeOf;
  harden(
    globalThis,
    proto(async function () {}), proto(function* () {}), proto(async function* () {}),
    proto(proto((function* () {})())), proto(proto((async function* () {})())),
    proto([][Symbol.iterator]()), proto(new Map().entries()), proto(new Set().values()),
    proto(''[Symbol.iterator]()), proto(/a/[Symbol.matchAll]('a')),
  );
})()`;
