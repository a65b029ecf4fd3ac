/**
 * The runtime that lives in every isolate's context: the web-standard globals (`web/*.ts`) and the
 * runner that starts calls and collects their outcomes. These are real modules, type-checked and
 * linted; the build bundles this entry with esbuild into one script (`dist/isolate-runtime.js`,
 * see `scripts/build-runtime.mjs` and `../runtime-source.ts`) that evaluates to {@link boot}. It
 * never runs on the host, and nothing from the host module graph exists in the isolate.
 *
 * The host evaluates the script once per isolate, applies `boot` to the host functions as
 * isolated-vm References, then runs the lockdown, which freezes every global `boot` installed
 * along with the built-ins. Tool code never sees a Reference: they stay in this bundle's closure,
 * and `fetch`, timers and `crypto` talk to the host in strings and copied bytes only. Everything
 * the tool returns, throws or logs is turned into one JSON string here, inside the isolate and
 * under the call's deadline, so hostile getters, `toJSON`s and Proxies run in the isolate.
 *
 * - `start(entry, kind, argsJson, maxResultBytes, maxLogLines, secretsJson, token, callJson)` begins a
 *   call. `entry` is the tool's evaluated module namespace (`kind` {@link EntryKind.Module}) or its
 *   module factory (`module-factory.ts`), called per call for a fresh instance ({@link EntryKind.Fresh})
 *   or once per isolate for a tool that opted into `isolation: "isolate"` ({@link EntryKind.Reuse}).
 * - `take(token)` returns the call's outcome if it has settled, or arms `report` and returns undefined.
 * - `ping()` does nothing: when the host's async call of it resolves, the isolate has finished all
 *   earlier work, so the host knows it is idle before it touches it synchronously again.
 *
 * Outcomes are `{"ok":true,"value":…,"logs":[…]}` or `{"ok":false,"code":…,"message":…,"stack"?:…,"logs":[…]}`.
 */
import { EntryKind } from './entry-kind.js';
import { runtime, describe, type CallState, type HostBridges, type HostReference } from './web/call.js';
import { makeConsole } from './web/console.js';
import { makeProgress } from './progress.js';
import { Crypto, CryptoKey, SubtleCrypto, createCrypto } from './web/crypto.js';
import { TextDecoder, TextEncoder, atob, btoa } from './web/encoding.js';
import { AbortController, AbortSignal, DOMException, Event, EventTarget } from './web/events.js';
import { Headers, Request, Response, denials, fetch, legacyFetch } from './web/fetch.js';
import { structuredClone } from './web/clone.js';
import { clearInterval, clearTimeout, queueMicrotask, setInterval, setTimeout } from './web/timers.js';
import { CORE_JS_GLOBALS, URL, URLSearchParams } from './web/url.js';

type ToolModule = { default?: unknown };
type Factory = () => ToolModule;

export type Runner = {
  start(entry: ToolModule | Factory, kind: EntryKind, argsJson: string, maxResultBytes: number, maxLogLines: number, secretsJson: string, token: number, callJson: string): void;
  take(token: number): string | undefined;
  ping(): void;
};

/** The globals the runtime adds; the lockdown freezes them with the built-ins. */
export const WEB_GLOBALS = [
  'fetch', 'Request', 'Response', 'Headers', 'URL', 'URLSearchParams', 'TextEncoder', 'TextDecoder', 'atob', 'btoa',
  'structuredClone', 'crypto', 'Crypto', 'CryptoKey', 'SubtleCrypto', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval',
  'queueMicrotask', 'AbortController', 'AbortSignal', 'Event', 'EventTarget', 'DOMException', 'console',
] as const;

const MAX_LOG_LINE = 2000;
const MAX_RESULT_DEPTH = 100;
/** Stack frames kept from a tool's error: enough to find the line, small enough to log. */
const MAX_STACK_FRAMES = 10;
// Running out of room inside the isolate, reported as a memory limit, not as a tool bug.
const OOM_MESSAGES = new Set(['Invalid string length', 'Array buffer allocation failed', 'Invalid array length', 'Invalid typed array length']);
const STACK_MESSAGE = 'Maximum call stack size exceeded';
const RUNNER_FAILED = '{"ok":false,"code":"SANDBOX_ERROR","message":"runner failed","logs":[]}';

const codeOf = (e: unknown): string => {
  if (typeof e === 'object' && e !== null && denials.has(e)) return 'EGRESS_DENIED';
  try {
    if (e instanceof RangeError && OOM_MESSAGES.has(e.message)) return 'OUT_OF_MEMORY';
  } catch {
    // a hostile subclass: a tool error like any other
  }
  return 'TOOL_ERROR';
};

/** The frames of a thrown Error that lie in tool code (`tool:` file names), for source mapping on the host. */
const stackOf = (e: unknown): string | undefined => {
  try {
    if (!(e instanceof Error)) return undefined;
    const stack = e.stack;
    if (typeof stack !== 'string') return undefined;
    const frames = stack.split('\n').filter((l) => /^\s+at .*tool:/.test(l)).slice(0, MAX_STACK_FRAMES);
    return frames.length > 0 ? frames.join('\n').slice(0, 4000) : undefined;
  } catch {
    return undefined;
  }
};

const fmt = (v: unknown): string => {
  if (typeof v === 'string') return v;
  try {
    const s = JSON.stringify(v) as string | undefined;
    return s === undefined ? String(v) : s;
  } catch {
    try {
      return String(v);
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

function installGlobals(): void {
  const globals: Record<(typeof WEB_GLOBALS)[number], unknown> = {
    fetch, Request, Response, Headers, URL, URLSearchParams, TextEncoder, TextDecoder, atob, btoa, structuredClone,
    crypto: createCrypto(), Crypto, CryptoKey, SubtleCrypto, setTimeout, clearTimeout, setInterval, clearInterval, queueMicrotask,
    AbortController, AbortSignal, Event, EventTarget, DOMException, console: makeConsole(),
  };
  for (const name of WEB_GLOBALS) {
    const value = globals[name];
    // The bundle is minified without kept names: a global's own name is set here, once per isolate.
    if (typeof value === 'function' && value.name !== name) Object.defineProperty(value, 'name', { value: name, configurable: true });
    Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
  }
  for (const name of CORE_JS_GLOBALS) Reflect.deleteProperty(globalThis, name);
}

/** The module instance a tool with `isolation: "isolate"` keeps in this isolate; an isolate serves one tool version. */
let kept: { factory: Factory; namespace: ToolModule } | undefined;

/** The tool's module namespace for this call: the evaluated module, or a factory's instance. Runs tool code for a factory. */
function load(entry: ToolModule | Factory, kind: EntryKind): ToolModule {
  if (kind === EntryKind.Module) return entry as ToolModule;
  const factory = entry as Factory;
  if (kind === EntryKind.Reuse && kept?.factory === factory) return kept.namespace;
  const namespace = factory();
  if (kind === EntryKind.Reuse) kept = { factory, namespace };
  return namespace;
}

async function runCall(call: CallState, entry: ToolModule | Factory, kind: EntryKind, argsJson: string, maxResultBytes: number, maxLogLines: number, secretsJson: string, callJson: string, logs: string[], dropped: { n: number }): Promise<string> {
  const finish = (obj: { ok: false; code: string; message: string; stack?: string; logs?: string[] }): string => {
    if (dropped.n) logs.push('… ' + dropped.n + ' more log lines dropped');
    obj.logs = logs;
    return JSON.stringify(obj);
  };
  const meta = JSON.parse(callJson) as { id?: string; attempt?: number };
  // Made on first use: most calls never look at it, and the warm path counts microseconds.
  let signal: AbortSignal | undefined;
  const ctx = Object.freeze({
    log: call.log,
    progress: makeProgress(call, logs),
    fetch: legacyFetch(call),
    secrets: Object.freeze(JSON.parse(secretsJson) as Record<string, string>),
    get signal(): AbortSignal {
      if (signal === undefined) {
        const controller = new AbortController();
        signal = controller.signal;
        call.onDone.push(() => controller.abort(new DOMException('the call has ended', 'AbortError')));
      }
      return signal;
    },
    callId: meta.id ?? '',
    attempt: meta.attempt ?? 1,
  });
  let value: unknown;
  try {
    const fn = load(entry, kind).default;
    if (typeof fn !== 'function') return finish({ ok: false, code: 'TOOL_ERROR', message: 'the default export is not a function' });
    value = await (fn as (args: unknown, context: unknown) => unknown)(JSON.parse(argsJson), ctx);
  } catch (e) {
    const stack = stackOf(e);
    return finish({ ok: false, code: codeOf(e), message: describe(e), ...(stack ? { stack } : {}) });
  }
  let out: string | undefined;
  try {
    out = JSON.stringify(value === undefined ? null : value) as string | undefined;
  } catch (e) {
    const code = codeOf(e);
    const message = e instanceof RangeError && e.message === STACK_MESSAGE ? 'result is nested too deeply' : describe(e);
    return finish({ ok: false, code: code === 'OUT_OF_MEMORY' ? code : 'TOOL_ERROR', message: 'result is not JSON-serializable: ' + message });
  }
  if (out === undefined) out = 'null';
  if (out.length > maxResultBytes) {
    return finish({ ok: false, code: 'RESULT_TOO_LARGE', message: 'result is ' + out.length + ' bytes, limit ' + maxResultBytes });
  }
  if (out.length > 2 * MAX_RESULT_DEPTH && depthOver(out, MAX_RESULT_DEPTH)) {
    return finish({ ok: false, code: 'TOOL_ERROR', message: 'result is nested deeper than ' + MAX_RESULT_DEPTH + ' levels' });
  }
  if (dropped.n) logs.push('… ' + dropped.n + ' more log lines dropped');
  return '{"ok":true,"value":' + out + ',"logs":' + JSON.stringify(logs) + '}';
}

/**
 * Installs the web globals and returns the runner. Applied once per isolate by the host, before the
 * lockdown; the host functions are kept in this bundle's closure only.
 */
export function boot(fetchRef: HostReference, report: HostReference, timer: HostReference, crypto: HostReference, limits: HostBridges['limits'], progress?: HostReference): Runner {
  runtime.host = { fetch: fetchRef, report, timer, crypto, limits: { maxUrlLength: limits.maxUrlLength, maxRequestBodyBytes: limits.maxRequestBodyBytes }, ...(progress ? { progress } : {}) };
  installGlobals();
  let current: { token: number; outcome: string | undefined; notify: boolean } | undefined;
  return Object.freeze({
    start(entry: ToolModule | Factory, kind: EntryKind, argsJson: string, maxResultBytes: number, maxLogLines: number, secretsJson: string, token: number, callJson: string): void {
      const previous = runtime.current;
      if (previous !== undefined) previous.done = true;
      const logs: string[] = [];
      const dropped = { n: 0 };
      const log = (...parts: unknown[]) => {
        if (logs.length >= maxLogLines) {
          dropped.n++;
          return;
        }
        let line = '';
        for (let i = 0; i < parts.length; i++) line += (i ? ' ' : '') + fmt(parts[i]);
        logs.push(line.length > MAX_LOG_LINE ? line.slice(0, MAX_LOG_LINE) + '…' : line);
      };
      const state: CallState = { token, log, timers: new Set(), timerSeq: 0, done: false, onDone: [] };
      runtime.current = state;
      const call = { token, outcome: undefined as string | undefined, notify: false };
      current = call;
      const settle = (json: unknown) => {
        if (call.outcome !== undefined) return;
        call.outcome = typeof json === 'string' ? json : RUNNER_FAILED;
        // Nothing of this call runs after its outcome: timers are dropped, `ctx.signal` aborts.
        state.done = true;
        state.timers.clear();
        for (const f of state.onDone.splice(0)) {
          try {
            f();
          } catch {
            // a listener of ctx.signal threw: the outcome is already decided
          }
        }
        if (runtime.current === state) runtime.current = undefined;
        if (call.notify) report.applyIgnored(undefined, [token, call.outcome]);
      };
      runCall(state, entry, kind, argsJson, maxResultBytes, maxLogLines, secretsJson, callJson, logs, dropped).then(settle, () => settle(RUNNER_FAILED));
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
