/**
 * Source run once in every fresh context, before any tool code, so that calls sharing the context
 * cannot leave state for each other: every intrinsic reachable from `globalThis` is frozen (as SES
 * `lockdown` does), and the legacy `RegExp` statics, which would carry the last match of one call into
 * the next, are deleted. It is our own fixed text, never combined with tool code.
 */
export const LOCKDOWN_SOURCE = `(() => {
  'use strict';
  for (const k of ['$1','$2','$3','$4','$5','$6','$7','$8','$9','input','$_','lastMatch','$&',
                   'lastParen','$+','leftContext','$\`','rightContext',"$'"]) {
    try { delete RegExp[k]; } catch {}
  }
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

/**
 * The function that runs one call inside the isolate. It gets the tool's default export, the
 * arguments as JSON and the limits, builds a fresh `ctx`, awaits the tool, and serializes the outcome
 * to one JSON string here, under the deadline: hostile getters and `toJSON`s run inside the isolate,
 * never during a copy on the host, and the host only ever receives a string.
 */
export const RUNNER_SOURCE = `(() => {
  'use strict';
  const { parse, stringify } = JSON;
  const StringCtor = String;
  const isArray = Array.isArray;
  const freeze = Object.freeze;
  const MAX_LOG_LINE = 2000;
  const describe = (e) => {
    try {
      if (e !== null && typeof e === 'object' && typeof e.message === 'string') {
        const name = typeof e.name === 'string' ? e.name : 'Error';
        return (name + ': ' + e.message).slice(0, 4000);
      }
      return ('thrown: ' + StringCtor(e)).slice(0, 4000);
    } catch {
      return 'tool threw a value that cannot be described';
    }
  };
  const fmt = (v) => {
    if (typeof v === 'string') return v;
    try { const s = stringify(v); return s === undefined ? StringCtor(v) : s; } catch { try { return StringCtor(v); } catch { return '[unprintable]'; } }
  };
  return async function run(fn, argsJson, maxResultBytes, maxLogLines, secretsJson) {
    const logs = [];
    let dropped = 0;
    const log = (...parts) => {
      if (logs.length >= maxLogLines) { dropped++; return; }
      let line = '';
      for (let i = 0; i < parts.length; i++) line += (i ? ' ' : '') + fmt(parts[i]);
      logs.push(line.length > MAX_LOG_LINE ? line.slice(0, MAX_LOG_LINE) + '…' : line);
    };
    const ctx = freeze({ log, secrets: freeze(parse(secretsJson)) });
    const finish = (obj) => {
      if (dropped) logs.push('… ' + dropped + ' more log lines dropped');
      obj.logs = logs;
      return stringify(obj);
    };
    let value;
    try {
      value = await fn(parse(argsJson), ctx);
    } catch (e) {
      return finish({ ok: false, code: 'TOOL_ERROR', message: describe(e) });
    }
    let out;
    try {
      out = stringify(value === undefined ? null : value);
    } catch (e) {
      return finish({ ok: false, code: 'TOOL_ERROR', message: 'result is not JSON-serializable: ' + describe(e) });
    }
    if (out === undefined) out = 'null';
    if (out.length > maxResultBytes) {
      return finish({ ok: false, code: 'RESULT_TOO_LARGE', message: 'result is ' + out.length + ' bytes, limit ' + maxResultBytes });
    }
    if (dropped) logs.push('… ' + dropped + ' more log lines dropped');
    return '{"ok":true,"value":' + out + ',"logs":' + stringify(logs) + '}';
  };
})()`;
