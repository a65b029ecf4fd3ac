/**
 * The runner that lives in every isolate's context. It is written here as a real function so the
 * type checker and the linter read it, but it never runs on the host: {@link RUNNER_SOURCE} is its
 * text, evaluated once per isolate to a factory; the host applies the factory to two host functions
 * (`hostFetch`, `report`) as isolated-vm References and keeps the `{ start, take, ping }` it returns.
 * So the function must stay self-contained: nothing from outside its own body (imports, module
 * constants, helpers) exists in the isolate.
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
 * `ctx.fetch` checks the size of what it sends here, before anything is copied to the host.
 */

/** What the runner sees of an isolated-vm Reference to a host function. */
type HostReference = {
  apply(receiver: undefined, args: unknown[], options: { result: { promise: true; copy: true } }): Promise<string>;
  applyIgnored(receiver: undefined, args: unknown[]): void;
};

type ToolModule = { default?: unknown };

type Runner = {
  start(namespace: ToolModule, argsJson: string, maxResultBytes: number, maxLogLines: number, secretsJson: string, token: number): void;
  take(token: number): string | undefined;
  ping(): void;
};

type FetchInit = { method?: unknown; headers?: unknown; body?: unknown } | null | undefined;

export function createRunner(hostFetch: HostReference, report: HostReference, limits: { maxUrlLength: number; maxRequestBodyBytes: number }): Runner {
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
  const denials = new WeakSet<object>();
  // Running out of room inside the isolate, reported as a memory limit, not as a tool bug.
  const OOM_MESSAGES = new Set(['Invalid string length', 'Array buffer allocation failed', 'Invalid array length', 'Invalid typed array length']);
  const STACK_MESSAGE = 'Maximum call stack size exceeded';

  const describe = (e: unknown): string => {
    try {
      if (e !== null && typeof e === 'object' && typeof (e as { message?: unknown }).message === 'string') {
        const { name, message } = e as { name?: unknown; message: string };
        return ((typeof name === 'string' ? name : 'Error') + ': ' + message).slice(0, MAX_MESSAGE);
      }
      return ('thrown: ' + StringCtor(e)).slice(0, MAX_MESSAGE);
    } catch {
      return 'tool threw a value that cannot be described';
    }
  };
  const codeOf = (e: unknown): string => {
    if (typeof e === 'object' && e !== null && denials.has(e)) return 'EGRESS_DENIED';
    try {
      if (e instanceof RangeErrorCtor && OOM_MESSAGES.has(e.message)) return 'OUT_OF_MEMORY';
    } catch {
      // a hostile subclass: a tool error like any other
    }
    return 'TOOL_ERROR';
  };
  const fmt = (v: unknown): string => {
    if (typeof v === 'string') return v;
    try {
      const s = stringify(v) as string | undefined;
      return s === undefined ? StringCtor(v) : s;
    } catch {
      try {
        return StringCtor(v);
      } catch {
        return '[unprintable]';
      }
    }
  };
  // Deepest nesting of a JSON text; deep results would overflow the host's own JSON.stringify later.
  const depthOver = (s: string, limit: number): boolean => {
    let depth = 0;
    let inString = false;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (inString) {
        if (c === 92) i++;
        else if (c === 34) inString = false;
      } else if (c === 34) inString = true;
      else if (c === 91 || c === 123) {
        if (++depth > limit) return true;
      } else if (c === 93 || c === 125) depth--;
    }
    return false;
  };
  const denied = (message: string): Error => {
    const e = new ErrorCtor('egress denied: ' + message);
    denials.add(e);
    return e;
  };

  const headersOf = (h: unknown): Record<string, string> => {
    const out: Record<string, string> = {};
    if (h === undefined || h === null) return out;
    if (isArray(h)) {
      for (const pair of h as unknown[]) {
        if (!isArray(pair) || pair.length !== 2) throw new TypeErrorCtor('headers must be [name, value] pairs');
        out[StringCtor(pair[0])] = StringCtor(pair[1]);
      }
      return out;
    }
    if (typeof h !== 'object') throw new TypeErrorCtor('headers must be an object');
    for (const k of ownKeys(h)) out[k] = StringCtor((h as Record<string, unknown>)[k]);
    return out;
  };
  const fetchFor = (token: number) => async (url: unknown, init?: FetchInit) => {
    let request: string;
    try {
      const i = init === undefined || init === null ? {} : init;
      const href = StringCtor(url);
      const body = i.body === undefined || i.body === null ? null : StringCtor(i.body);
      // Checked here, in the isolate: nothing oversized is ever copied to the host.
      if (href.length > limits.maxUrlLength) throw new TypeErrorCtor('the URL is longer than ' + limits.maxUrlLength + ' characters');
      if (body !== null && body.length > limits.maxRequestBodyBytes) throw new TypeErrorCtor('the body is larger than ' + limits.maxRequestBodyBytes + ' bytes');
      request = stringify({ url: href, method: i.method === undefined ? 'GET' : StringCtor(i.method), headers: headersOf(i.headers), body });
      if (request.length > limits.maxUrlLength + 3 * limits.maxRequestBodyBytes) throw new TypeErrorCtor('the request is too large');
    } catch (e) {
      throw new TypeErrorCtor('ctx.fetch: bad request: ' + describe(e));
    }
    const raw = await hostFetch.apply(undefined, [token, request], { result: { promise: true, copy: true } });
    const res = parse(raw) as {
      stale?: boolean;
      denied?: boolean;
      message?: string;
      error?: string;
      status: number;
      statusText: string;
      url: string;
      redirected: boolean;
      headers: Record<string, string>;
      body: string;
    };
    // The call this fetch belonged to is over: nothing of it may run again.
    if (res.stale) return new PromiseCtor<never>(() => {});
    if (res.denied) throw denied(StringCtor(res.message));
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
      json: async () => parse(body) as unknown,
    });
  };

  const runCall = async (namespace: ToolModule, argsJson: string, maxResultBytes: number, maxLogLines: number, secretsJson: string, token: number): Promise<string> => {
    const logs: string[] = [];
    let dropped = 0;
    const log = (...parts: unknown[]) => {
      if (logs.length >= maxLogLines) {
        dropped++;
        return;
      }
      let line = '';
      for (let i = 0; i < parts.length; i++) line += (i ? ' ' : '') + fmt(parts[i]);
      logs.push(line.length > MAX_LOG_LINE ? line.slice(0, MAX_LOG_LINE) + '…' : line);
    };
    const ctx = freeze({ log, fetch: fetchFor(token), secrets: freeze(parse(secretsJson) as Record<string, string>) });
    const finish = (obj: { ok: false; code: string; message: string; logs?: string[] }): string => {
      if (dropped) logs.push('… ' + dropped + ' more log lines dropped');
      obj.logs = logs;
      return stringify(obj);
    };
    let value: unknown;
    try {
      const fn = namespace.default;
      if (typeof fn !== 'function') return finish({ ok: false, code: 'TOOL_ERROR', message: 'the default export is not a function' });
      value = await (fn as (args: unknown, context: unknown) => unknown)(parse(argsJson), ctx);
    } catch (e) {
      return finish({ ok: false, code: codeOf(e), message: describe(e) });
    }
    let out: string | undefined;
    try {
      out = stringify(value === undefined ? null : value) as string | undefined;
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
  let current: { token: number; outcome: string | undefined; notify: boolean } | undefined;
  return freeze({
    start(namespace: ToolModule, argsJson: string, maxResultBytes: number, maxLogLines: number, secretsJson: string, token: number): void {
      const call = { token, outcome: undefined as string | undefined, notify: false };
      current = call;
      const settle = (json: unknown) => {
        if (call.outcome !== undefined) return;
        call.outcome = typeof json === 'string' ? json : RUNNER_FAILED;
        if (call.notify) report.applyIgnored(undefined, [token, call.outcome]);
      };
      runCall(namespace, argsJson, maxResultBytes, maxLogLines, secretsJson, token).then(settle, () => settle(RUNNER_FAILED));
    },
    take(token: number): string | undefined {
      const call = current;
      if (call === undefined || call.token !== token) return undefined;
      if (call.outcome !== undefined) return call.outcome;
      call.notify = true;
      return undefined;
    },
    ping(): void {},
  });
}

/** The runner's text for the isolate: a function expression the host evaluates to the factory. */
export const RUNNER_SOURCE = `(${createRunner.toString()})`;
