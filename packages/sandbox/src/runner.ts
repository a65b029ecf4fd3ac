/**
 * Source of the runner that lives in every isolate's context, our own fixed text. Evaluated once
 * per isolate to a factory; the host applies the factory to two host functions (`hostFetch`,
 * `report`) as isolated-vm References and keeps the `{ start, take, ping }` it returns.
 *
 * Tool code never sees a Reference: the two host functions stay in this closure, `ctx.fetch` is a
 * plain isolate function that talks to the host in JSON strings only, and everything the tool
 * returns, throws or logs is turned into one JSON string here, inside the isolate and under the
 * call's deadline, so hostile getters, `toJSON`s and Proxies run in the isolate, never on the host.
 *
 * - `start(namespace, argsJson, maxResultBytes, maxLogLines, secretsJson, token)` begins a call.
 * - `take(token)` returns the call's outcome if it has settled, or arms `report` and returns undefined.
 * - `ping()` does nothing: when the host's async call of it resolves, the isolate has finished all
 *   earlier work, so the host knows it is idle before it touches it synchronously again.
 *
 * Outcomes are `{"ok":true,"value":…,"logs":[…]}` or `{"ok":false,"code":…,"message":…,"logs":[…]}`.
 */
export const RUNNER_SOURCE = `(hostFetch, report) => {
  'use strict';
  const { parse, stringify } = JSON;
  const StringCtor = String;
  const isArray = Array.isArray;
  const freeze = Object.freeze;
  const ownKeys = Object.keys;
  const ErrorCtor = Error;
  const TypeErrorCtor = TypeError;
  const RangeErrorCtor = RangeError;
  const PromiseCtor = Promise;
  const MAX_LOG_LINE = 2000;
  const MAX_MESSAGE = 4000;
  const MAX_RESULT_DEPTH = 100;
  // Errors only the runner can make: an uncaught one ends the call as EGRESS_DENIED.
  const denials = new WeakSet();
  // Running out of room inside the isolate, reported as a memory limit, not as a tool bug.
  const OOM_MESSAGES = new Set(['Invalid string length', 'Array buffer allocation failed',
    'Invalid array length', 'Invalid typed array length']);
  const STACK_MESSAGE = 'Maximum call stack size exceeded';

  const describe = (e) => {
    try {
      if (e !== null && typeof e === 'object' && typeof e.message === 'string') {
        const name = typeof e.name === 'string' ? e.name : 'Error';
        return (name + ': ' + e.message).slice(0, MAX_MESSAGE);
      }
      return ('thrown: ' + StringCtor(e)).slice(0, MAX_MESSAGE);
    } catch {
      return 'tool threw a value that cannot be described';
    }
  };
  const codeOf = (e) => {
    if (denials.has(e)) return 'EGRESS_DENIED';
    try {
      if (e instanceof RangeErrorCtor && OOM_MESSAGES.has(e.message)) return 'OUT_OF_MEMORY';
    } catch {}
    return 'TOOL_ERROR';
  };
  const fmt = (v) => {
    if (typeof v === 'string') return v;
    try { const s = stringify(v); return s === undefined ? StringCtor(v) : s; }
    catch { try { return StringCtor(v); } catch { return '[unprintable]'; } }
  };
  // Deepest nesting of a JSON text; deep results would overflow the host's own JSON.stringify later.
  const depthOver = (s, limit) => {
    let depth = 0, inString = false;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (inString) { if (c === 92) i++; else if (c === 34) inString = false; }
      else if (c === 34) inString = true;
      else if (c === 91 || c === 123) { if (++depth > limit) return true; }
      else if (c === 93 || c === 125) depth--;
    }
    return false;
  };
  const denied = (message) => { const e = new ErrorCtor('egress denied: ' + message); denials.add(e); return e; };

  const headersOf = (h) => {
    const out = {};
    if (h === undefined || h === null) return out;
    if (isArray(h)) {
      for (const pair of h) { if (!isArray(pair) || pair.length !== 2) throw new TypeErrorCtor('headers must be [name, value] pairs'); out[StringCtor(pair[0])] = StringCtor(pair[1]); }
      return out;
    }
    if (typeof h !== 'object') throw new TypeErrorCtor('headers must be an object');
    for (const k of ownKeys(h)) out[k] = StringCtor(h[k]);
    return out;
  };
  const fetchFor = (token) => async (url, init) => {
    let request;
    try {
      const i = init === undefined || init === null ? {} : init;
      request = stringify({
        url: StringCtor(url),
        method: i.method === undefined ? 'GET' : StringCtor(i.method),
        headers: headersOf(i.headers),
        body: i.body === undefined || i.body === null ? null : StringCtor(i.body),
      });
    } catch (e) {
      throw new TypeErrorCtor('ctx.fetch: bad request: ' + describe(e));
    }
    const raw = await hostFetch.apply(undefined, [token, request], { result: { promise: true, copy: true } });
    const res = parse(raw);
    // The call this fetch belonged to is over: nothing of it may run again.
    if (res.stale) return new PromiseCtor(() => {});
    if (res.denied) throw denied(res.message);
    if (res.error) throw new TypeErrorCtor('ctx.fetch failed: ' + res.error);
    const body = res.body;
    return freeze({
      status: res.status,
      statusText: res.statusText,
      ok: res.status >= 200 && res.status < 300,
      url: res.url,
      redirected: res.redirected,
      headers: freeze(res.headers),
      body,
      text: () => PromiseCtor.resolve(body),
      json: async () => parse(body),
    });
  };

  const runCall = async (namespace, argsJson, maxResultBytes, maxLogLines, secretsJson, token) => {
    const logs = [];
    let dropped = 0;
    const log = (...parts) => {
      if (logs.length >= maxLogLines) { dropped++; return; }
      let line = '';
      for (let i = 0; i < parts.length; i++) line += (i ? ' ' : '') + fmt(parts[i]);
      logs.push(line.length > MAX_LOG_LINE ? line.slice(0, MAX_LOG_LINE) + '…' : line);
    };
    const ctx = freeze({ log, fetch: fetchFor(token), secrets: freeze(parse(secretsJson)) });
    const finish = (obj) => {
      if (dropped) logs.push('… ' + dropped + ' more log lines dropped');
      obj.logs = logs;
      return stringify(obj);
    };
    let value;
    try {
      const fn = namespace.default;
      if (typeof fn !== 'function') return finish({ ok: false, code: 'TOOL_ERROR', message: 'the default export is not a function' });
      value = await fn(parse(argsJson), ctx);
    } catch (e) {
      return finish({ ok: false, code: codeOf(e), message: describe(e) });
    }
    let out;
    try {
      out = stringify(value === undefined ? null : value);
    } catch (e) {
      const code = codeOf(e);
      const message = e instanceof RangeErrorCtor && e.message === STACK_MESSAGE ? 'result is nested too deeply' : describe(e);
      return finish({ ok: false, code: code === 'OUT_OF_MEMORY' ? code : 'TOOL_ERROR', message: 'result is not JSON-serializable: ' + message });
    }
    if (out === undefined) out = 'null';
    if (out.length > maxResultBytes) {
      return finish({ ok: false, code: 'RESULT_TOO_LARGE', message: 'result is ' + out.length + ' bytes, limit ' + maxResultBytes });
    }
    if (out.length > 2 * MAX_RESULT_DEPTH && depthOver(out, MAX_RESULT_DEPTH)) {
      return finish({ ok: false, code: 'TOOL_ERROR', message: 'result is nested deeper than ' + MAX_RESULT_DEPTH + ' levels' });
    }
    if (dropped) logs.push('… ' + dropped + ' more log lines dropped');
    return '{"ok":true,"value":' + out + ',"logs":' + stringify(logs) + '}';
  };

  const RUNNER_FAILED = '{"ok":false,"code":"SANDBOX_ERROR","message":"runner failed","logs":[]}';
  let current;
  return freeze({
    start(namespace, argsJson, maxResultBytes, maxLogLines, secretsJson, token) {
      const call = { token, outcome: undefined, notify: false };
      current = call;
      const settle = (json) => {
        if (call.outcome !== undefined) return;
        call.outcome = typeof json === 'string' ? json : RUNNER_FAILED;
        if (call.notify) report.applyIgnored(undefined, [token, call.outcome]);
      };
      runCall(namespace, argsJson, maxResultBytes, maxLogLines, secretsJson, token).then(settle, () => settle(RUNNER_FAILED));
    },
    take(token) {
      const call = current;
      if (call === undefined || call.token !== token) return undefined;
      if (call.outcome !== undefined) return call.outcome;
      call.notify = true;
      return undefined;
    },
    ping() {},
  });
}`;
