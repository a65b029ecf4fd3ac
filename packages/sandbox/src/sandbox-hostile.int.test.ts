import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { isToolExecError } from '@toolplane/core';
import { Sandbox, type ToolSource } from './index.js';

/**
 * Hostile tool code against real isolates, one Sandbox for the whole file as in a worker. Every
 * case ends with its expected code (or value), the next call of a plain tool on the same sandbox
 * succeeds, and nothing the case returned, threw or logged carries host data.
 */

type Case = {
  name: string;
  code: string;
  /** A call error code, or `ok` when the call must succeed. */
  expect: string;
  /** Another code that is as right, when which limit trips first depends on machine load. */
  orElse?: string;
  /** Checks the value of an `ok` case, or the message of a failed one. */
  check?: (valueOrMessage: unknown, logs: string[]) => void;
  limits?: Partial<ToolSource>;
  args?: unknown;
  secrets?: Record<string, string>;
};

let server: Server;
let other: Server;
let port = 0;
let otherPort = 0;
let n = 0;
const unhandled: unknown[] = [];
const onUnhandled = (e: unknown) => unhandled.push(e);
const sandbox = new Sandbox({
  maxIsolatesPerTool: 2,
  maxResponseBytes: 64 * 1024,
  // The test servers listen on 127.0.0.1, which the "operator" opens; every name resolves to
  // 127.0.0.2, which stays closed however a tool lists it.
  allowPrivateNetworks: '127.0.0.1',
  resolveHost: async () => ['127.0.0.2'],
});

const HOST_DATA = [
  process.cwd(),
  process.execPath,
  process.version,
  ...Object.values(process.env).filter((v): v is string => typeof v === 'string' && v.length >= 8 && !/^(true|false|\d+)$/.test(v)),
];

function expectNoHostData(text: string): void {
  for (const needle of HOST_DATA) expect(text.includes(needle), `leaks host data ${needle.slice(0, 30)}`).toBe(false);
}

function tool(code: string, limits: Partial<ToolSource> = {}): ToolSource {
  return { key: `t${++n}`, code, timeoutMs: 1000, memoryMb: 16, maxResultBytes: 64 * 1024, egress: [`127.0.0.1:${port}`], ...limits };
}

const ESCAPES: Case[] = [
  { name: 'process is not defined', code: 'export default () => typeof process', expect: 'ok', check: (v) => expect(v).toBe('undefined') },
  { name: 'require is not defined', code: 'export default () => typeof require + typeof module + typeof exports', expect: 'ok', check: (v) => expect(v).toBe('undefinedundefinedundefined') },
  { name: 'Function constructor reaches only the isolate', code: "export default () => Function('return typeof process')()", expect: 'ok', check: (v) => expect(v).toBe('undefined') },
  { name: 'constructor chain from ctx.log', code: "export default (a, ctx) => ctx.log.constructor('return Object.getOwnPropertyNames(globalThis)')()", expect: 'ok', check: (v) => expect(v).not.toEqual(expect.arrayContaining(['process'])) },
  { name: 'constructor chain from ctx.fetch', code: "export default (a, ctx) => ctx.fetch.constructor.constructor('return process')()", expect: 'TOOL_ERROR', check: (m) => expect(m).toMatch(/process is not defined/) },
  { name: 'globals list holds only built-ins', code: 'export default () => Object.getOwnPropertyNames(globalThis)', expect: 'ok', check: (v) => {
    for (const name of ['process', 'require', 'ivm', '_ivm', 'WebAssembly', 'SharedArrayBuffer', 'FinalizationRegistry', 'WeakRef', '__core-js_shared__', 'setImmediate', 'Buffer']) expect(v).not.toContain(name);
  } },
  { name: 'ctx offers only log, progress, fetch, secrets, signal, callId and attempt', code: 'export default (a, ctx) => Reflect.ownKeys(ctx).map(String)', expect: 'ok', check: (v) => expect(v).toEqual(['log', 'progress', 'fetch', 'secrets', 'signal', 'callId', 'attempt']) },
  { name: 'constructor chain from ctx.progress stays in the isolate', code: "export default (a, ctx) => ctx.progress.constructor('return typeof process + typeof require')()", expect: 'ok', check: (v) => expect(v).toBe('undefinedundefined') },
  { name: 'Error.prepareStackTrace cannot be set', code: 'export default () => { Error.prepareStackTrace = (e, s) => s[0].getThis(); return new Error().stack }', expect: 'TOOL_ERROR', check: (m) => expect(m).toMatch(/read only|not extensible/) },
  { name: 'Error.stackTraceLimit cannot be changed', code: 'export default () => { Error.stackTraceLimit = Infinity }', expect: 'TOOL_ERROR' },
  { name: 'stack traces name no host file', code: 'export default () => { function f() { return new Error("x").stack } return f() }', expect: 'ok', check: (v) => expect(String(v)).not.toMatch(/\/work\/|node:|file:\/\//) },
  { name: 'Object.prototype cannot be polluted', code: 'export default () => { Object.prototype.polluted = 1 }', expect: 'TOOL_ERROR' },
  { name: 'Array.prototype.push cannot be patched', code: 'export default () => { Array.prototype.push = () => 0 }', expect: 'TOOL_ERROR' },
  { name: 'Promise.prototype.then cannot be patched', code: 'export default () => { Promise.prototype.then = function () {} }', expect: 'TOOL_ERROR' },
  { name: 'JSON.stringify cannot be replaced', code: 'export default () => { JSON.stringify = () => "{}" }', expect: 'TOOL_ERROR' },
  { name: 'no new globals', code: 'export default () => { globalThis.leak = 1 }', expect: 'TOOL_ERROR' },
  { name: 'dynamic import is refused', code: 'export default async () => { await import("node:fs") }', expect: 'TOOL_ERROR' },
  { name: 'static import is refused', code: 'import fs from "node:fs"; export default () => fs', expect: 'TOOL_ERROR', check: (m) => expect(m).toMatch(/not allowed/) },
  { name: 'eval sees no host either', code: 'export default () => eval("typeof process")', expect: 'ok', check: (v) => expect(v).toBe('undefined') },
  { name: 'sloppy caller sniffing finds nothing', code: 'export default () => Function("return typeof arguments.callee.caller")()', expect: 'ok' },
  { name: 'ctx.secrets is frozen', code: 'export default (a, ctx) => { ctx.secrets.X = "y" }', expect: 'TOOL_ERROR' },
  { name: 'ctx cannot be extended', code: 'export default (a, ctx) => { ctx.fetch = null }', expect: 'TOOL_ERROR' },
  { name: 'RegExp legacy statics are gone', code: 'export default () => { /(a)/.exec("a"); return [typeof RegExp.$1, typeof RegExp.lastMatch] }', expect: 'ok', check: (v) => expect(v).toEqual(['undefined', 'undefined']) },
  { name: 'SharedArrayBuffer is gone', code: 'export default () => new SharedArrayBuffer(8)', expect: 'TOOL_ERROR' },
  { name: 'Atomics.wait cannot block', code: 'export default () => Atomics.wait(new Int32Array(4), 0, 0)', expect: 'TOOL_ERROR' },
  { name: 'WebAssembly.Memory growth is impossible', code: 'export default () => { const m = new WebAssembly.Memory({ initial: 1 }); for (;;) m.grow(16) }', expect: 'TOOL_ERROR', check: (m) => expect(m).toMatch(/WebAssembly is not defined/) },
  { name: 'FinalizationRegistry is gone', code: 'export default () => new FinalizationRegistry(() => { for (;;) {} })', expect: 'TOOL_ERROR' },
  { name: 'thrown Proxy with throwing traps', code: 'export default () => { throw new Proxy({}, { get() { throw new Error("trap") }, getPrototypeOf() { throw new Error("trap") } }) }', expect: 'TOOL_ERROR', check: (m) => expect(m).toMatch(/cannot be described/) },
  { name: 'thrown object with throwing toString', code: 'export default () => { throw { toString() { throw 1 } } }', expect: 'TOOL_ERROR' },
  { name: 'thrown object whose message getter never returns', code: 'export default () => { throw { get message() { for (;;) {} } } }', expect: 'TIMEOUT', limits: { timeoutMs: 150 } },
  { name: 'result Proxy whose ownKeys never returns', code: 'export default () => new Proxy({}, { ownKeys() { for (;;) {} } })', expect: 'TIMEOUT', limits: { timeoutMs: 150 } },
  { name: 'result getter that never returns', code: 'export default () => ({ get x() { for (;;) {} } })', expect: 'TIMEOUT', limits: { timeoutMs: 150 } },
  { name: 'result toJSON that throws', code: 'export default () => ({ toJSON() { throw new Error("no") } })', expect: 'TOOL_ERROR', check: (m) => expect(m).toMatch(/not JSON-serializable/) },
  { name: 'result with a BigInt', code: 'export default () => 1n', expect: 'TOOL_ERROR' },
  { name: 'cyclic result', code: 'export default () => { const o = {}; o.o = o; return o }', expect: 'TOOL_ERROR' },
  { name: 'thenable result with a hostile then', code: 'export default () => ({ then(r) { r({ then(r2) { for (;;) {} } }) } })', expect: 'TIMEOUT', limits: { timeoutMs: 150 } },
  { name: 'unhandled rejection stays inside', code: 'export default () => { Promise.reject(new Error("stray")); return 1 }', expect: 'ok', check: (v) => expect(v).toBe(1) },
  { name: 'default export is not a function', code: 'export default 42', expect: 'TOOL_ERROR' },
  { name: 'syntax error', code: 'export default (', expect: 'TOOL_ERROR', check: (m) => expect(m).toMatch(/SyntaxError/) },
  { name: 'top-level throw', code: 'throw new Error("at load")\nexport default () => 1', expect: 'TOOL_ERROR' },
];

const BOMBS: Case[] = [
  { name: 'endless loop', code: 'export default () => { for (;;) {} }', expect: 'TIMEOUT', limits: { timeoutMs: 150 } },
  { name: 'endless loop at top level', code: 'for (;;) {}\nexport default () => 1', expect: 'TIMEOUT', limits: { timeoutMs: 150 } },
  { name: 'never-settling promise', code: 'export default () => new Promise(() => {})', expect: 'TIMEOUT', limits: { timeoutMs: 150 } },
  { name: 'endless microtask loop', code: 'export default () => { const f = () => Promise.resolve().then(f); return f() }', expect: 'TIMEOUT', limits: { timeoutMs: 150 }, orElse: 'OUT_OF_MEMORY' },
  { name: 'leftover microtask loop after returning', code: 'export default () => { const f = () => Promise.resolve().then(f); f(); return 1 }', expect: 'TIMEOUT', limits: { timeoutMs: 150 }, orElse: 'OUT_OF_MEMORY' },
  { name: 'async loop awaiting forever', code: 'export default async () => { for (;;) await null }', expect: 'TIMEOUT', limits: { timeoutMs: 150 } },
  { name: 'CPU cap below the wall deadline', code: 'export default () => { for (;;) {} }', expect: 'TIMEOUT', limits: { timeoutMs: 5000, cpuMs: 60 }, check: (m) => expect(m).toMatch(/CPU/) },
  { name: 'deep recursion', code: 'export default () => { const f = (i) => f(i + 1) + 1; return f(0) }', expect: 'TOOL_ERROR', check: (m) => expect(m).toMatch(/call stack/) },
  { name: 'heap bomb', code: 'export default () => { const a = []; for (;;) a.push({ i: a.length, s: "x" + a.length }) }', expect: 'OUT_OF_MEMORY', limits: { timeoutMs: 5000 } },
  { name: 'huge string', code: 'export default () => { let s = "x"; for (;;) s += s }', expect: 'OUT_OF_MEMORY' },
  { name: 'ArrayBuffer bomb', code: 'export default () => { const a = []; for (;;) a.push(new ArrayBuffer(1 << 20)) }', expect: 'OUT_OF_MEMORY', limits: { timeoutMs: 5000 } },
  { name: 'Atomics.wait spin on a plain array', code: 'export default () => { const i = new Int32Array(1); for (;;) Atomics.load(i, 0) }', expect: 'TIMEOUT', limits: { timeoutMs: 150 } },
];

const OUTPUT: Case[] = [
  { name: 'result over the size cap', code: 'export default () => "x".repeat(100000)', expect: 'RESULT_TOO_LARGE' },
  { name: 'deeply nested result', code: 'export default () => { let v = []; for (let i = 0; i < 5000; i++) v = [v]; return v }', expect: 'TOOL_ERROR', check: (m) => expect(m).toMatch(/nested/) },
  { name: 'log bomb is bounded', code: 'export default (a, ctx) => { for (let i = 0; i < 5000; i++) ctx.log("y".repeat(10000)); return 1 }', expect: 'ok', check: (_v, logs) => {
    expect(logs.length).toBeLessThanOrEqual(201);
    for (const l of logs) expect(l.length).toBeLessThanOrEqual(2001);
    expect(logs.at(-1)).toMatch(/more log lines dropped/);
  } },
  { name: 'logging hostile objects', code: 'export default (a, ctx) => { ctx.log({ toJSON() { throw 1 } }, new Proxy({}, { get() { throw 2 } }), 1n); return 1 }', expect: 'ok' },
  { name: 'huge error message is cut', code: 'export default () => { throw new Error("z".repeat(100000)) }', expect: 'TOOL_ERROR', check: (m) => expect(String(m).length).toBeLessThanOrEqual(4000) },
];

const fetchTo = (url: string, extra = '') => `export default async (a, ctx) => { const r = await ctx.fetch(${url}${extra}); return { status: r.status, body: r.body } }`;
const CTX_ABUSE: Case[] = [
  { name: 'fetch to a listed host works', code: 'export default async (a, ctx) => (await (await ctx.fetch(a.url)).json()).path', expect: 'ok', check: (v) => expect(v).toBe('/ok') },
  { name: 'fetch to 127.0.0.1 on an unlisted port', code: 'export default async (a, ctx) => ctx.fetch(a.other)', expect: 'EGRESS_DENIED' },
  { name: 'fetch to a host not listed', code: fetchTo('"http://example.com/"'), expect: 'EGRESS_DENIED' },
  { name: 'fetch to cloud metadata', code: fetchTo('"http://169.254.169.254/latest/meta-data/"'), expect: 'EGRESS_DENIED' },
  { name: 'fetch of a file URL', code: fetchTo('"file:///etc/passwd"'), expect: 'EGRESS_DENIED', check: (m) => expect(m).toMatch(/scheme/) },
  { name: 'fetch with credentials in the URL', code: 'export default async (a, ctx) => ctx.fetch(a.url.replace("http://", "http://u:p@"))', expect: 'EGRESS_DENIED' },
  { name: 'redirect to an unlisted host is checked again', code: 'export default async (a, ctx) => ctx.fetch(a.base + "/to-other")', expect: 'EGRESS_DENIED' },
  { name: 'redirect loop ends', code: 'export default async (a, ctx) => ctx.fetch(a.base + "/loop")', expect: 'TOOL_ERROR', check: (m) => expect(m).toMatch(/redirects/) },
  { name: 'wildcard host resolving to loopback', code: 'export default async (a, ctx) => ctx.fetch(`http://api.example.test:${a.port}/`)', expect: 'EGRESS_DENIED', limits: { egress: ['*.example.test:PORT'] }, check: (m) => expect(m).toMatch(/private or loopback/) },
  { name: 'literally listed name resolving to loopback', code: 'export default async (a, ctx) => (await ctx.fetch(`http://api.example.test:${a.port}/ok`)).status', expect: 'EGRESS_DENIED', limits: { egress: ['api.example.test:PORT'] } },
  { name: 'metadata address listed literally', code: fetchTo('"http://169.254.169.254/latest/meta-data/"'), expect: 'EGRESS_DENIED', limits: { egress: ['169.254.169.254'] } },
  { name: 'closed loopback address listed literally', code: 'export default async (a, ctx) => ctx.fetch(`http://127.0.0.2:${a.port}/`)', expect: 'EGRESS_DENIED', limits: { egress: ['127.0.0.2:PORT'] } },
  { name: 'IPv6 loopback listed literally', code: 'export default async (a, ctx) => ctx.fetch(`http://[::1]:${a.port}/`)', expect: 'EGRESS_DENIED', limits: { egress: ['[::1]:PORT'] } },
  { name: 'response over the size cap', code: 'export default async (a, ctx) => ctx.fetch(a.base + "/big")', expect: 'TOOL_ERROR', check: (m) => expect(m).toMatch(/larger than/) },
  { name: 'caught denial is the tool\'s business', code: 'export default async (a, ctx) => { try { await ctx.fetch("http://example.com/") } catch (e) { return "caught" } }', expect: 'ok', check: (v) => expect(v).toBe('caught') },
  { name: 'fetch with a url whose toString never returns', code: 'export default async (a, ctx) => ctx.fetch({ toString() { for (;;) {} } })', expect: 'TIMEOUT', limits: { timeoutMs: 150 } },
  { name: 'fetch of a slow host is bounded by the deadline', code: 'export default async (a, ctx) => ctx.fetch(a.base + "/hang")', expect: 'TIMEOUT', limits: { timeoutMs: 300 } },
  { name: 'fetch left running after the result', code: 'export default (a, ctx) => { ctx.fetch(a.base + "/hang").then(() => { for (;;) {} }); return "done" }', expect: 'ok', check: (v) => expect(v).toBe('done') },
  { name: 'forbidden request headers are dropped', code: 'export default async (a, ctx) => (await ctx.fetch(a.base + "/echo", { headers: { host: "evil", "x-a": "1" } })).json()', expect: 'ok', check: (v) => expect(v).toMatchObject({ host: `127.0.0.1:${port}`, 'x-a': '1' }) },
  { name: 'header injection is refused', code: 'export default async (a, ctx) => ctx.fetch(a.base + "/echo", { headers: { "x-a": "1\\r\\nx-b: 2" } })', expect: 'TOOL_ERROR' },
  { name: 'too many fetches in one call', code: 'export default async (a, ctx) => { for (let i = 0; i < 60; i++) await ctx.fetch(a.base + "/ok") }', expect: 'TOOL_ERROR', check: (m) => expect(m).toMatch(/more than 50/) },
  { name: 'only granted secrets, redacted on the way out', code: 'export default (a, ctx) => { ctx.log("token is", ctx.secrets.API_TOKEN); return { keys: Object.keys(ctx.secrets), t: ctx.secrets.API_TOKEN } }', expect: 'ok', secrets: { API_TOKEN: 'sk-live-123456' }, check: (v, logs) => {
    expect(v).toEqual({ keys: ['API_TOKEN'], t: '[REDACTED]' });
    expect(logs).toEqual(['token is [REDACTED]']);
  } },
  { name: 'secrets are redacted from errors too', code: 'export default (a, ctx) => { throw new Error("bad key " + ctx.secrets.API_TOKEN) }', expect: 'TOOL_ERROR', secrets: { API_TOKEN: 'sk-live-123456' }, check: (m) => expect(m).toBe('Error: bad key [REDACTED]') },
];

/** Cases aimed at the web runtime's globals: timers, fetch, crypto, URL and the classes' internals. */
const WEB_ABUSE: Case[] = [
  { name: 'timer set to spin after the result never runs', code: 'export default () => { setTimeout(() => { for (;;) {} }, 5); return "done" }', expect: 'ok', check: (v) => expect(v).toBe('done') },
  { name: 'interval left running after the result never runs', code: 'export default () => { setInterval(() => { for (;;) {} }, 1); return "done" }', expect: 'ok' },
  { name: 'a timer past the deadline does not hold the call', code: 'export default () => new Promise((r) => setTimeout(r, 60000))', expect: 'TIMEOUT', limits: { timeoutMs: 150 } },
  { name: 'a zero-delay interval is bounded by the deadline', code: 'export default () => { setInterval(() => {}, 0); return new Promise(() => {}) }', expect: 'TIMEOUT', limits: { timeoutMs: 200 } },
  { name: 'a timer callback that spins ends as TIMEOUT', code: 'export default () => new Promise(() => setTimeout(() => { for (;;) {} }, 1))', expect: 'TIMEOUT', limits: { timeoutMs: 200 } },
  { name: 'timer flood is refused', code: 'export default () => { for (let i = 0; i < 2000; i++) setTimeout(() => {}, 100000) }', expect: 'TOOL_ERROR', check: (m) => expect(m).toMatch(/timers pending/) },
  { name: 'a code string is not evaluated by setTimeout', code: 'export default () => setTimeout("globalThis.x = 1", 1)', expect: 'TOOL_ERROR', check: (m) => expect(m).toMatch(/must be a function/) },
  // A module with top-level await is evaluated before its call starts; any other module's top level
  // runs inside its call (module factory), where a timer is the call's like any other.
  { name: 'setTimeout while a module is evaluated outside a call is refused', code: 'await 0; setTimeout(() => {}, 1)\nexport default () => 1', expect: 'TOOL_ERROR', check: (m) => expect(m).toMatch(/only be used while a call runs/) },
  { name: 'setTimeout at the top level of a factory belongs to the call', code: 'let fired = false; setTimeout(() => { fired = true }, 1)\nexport default () => new Promise((r) => setTimeout(() => r(fired), 20))', expect: 'ok', check: (v) => expect(v).toBe(true) },
  { name: 'global fetch to a host not listed', code: 'export default () => fetch("http://example.com/")', expect: 'EGRESS_DENIED' },
  { name: 'global fetch to cloud metadata', code: 'export default () => fetch(new Request("http://169.254.169.254/latest/meta-data/"))', expect: 'EGRESS_DENIED' },
  { name: 'global fetch with credentials in the URL', code: 'export default (a) => fetch(a.url.replace("http://", "http://u:p@"))', expect: 'EGRESS_DENIED' },
  { name: 'global fetch redirected to an unlisted host', code: 'export default (a) => fetch(a.base + "/to-other")', expect: 'EGRESS_DENIED' },
  { name: 'global fetch of a file URL', code: 'export default () => fetch("file:///etc/passwd")', expect: 'EGRESS_DENIED' },
  { name: 'global fetch counts against the per-call request cap', code: 'export default async (a, ctx) => { for (let i = 0; i < 30; i++) { await fetch(a.base + "/ok"); await ctx.fetch(a.base + "/ok") } }', expect: 'TOOL_ERROR', check: (m) => expect(m).toMatch(/more than 50/) },
  { name: 'crypto.getRandomValues cannot be replaced', code: 'export default () => { crypto.getRandomValues = (a) => a }', expect: 'TOOL_ERROR' },
  { name: 'crypto.subtle.digest cannot be redefined', code: 'export default () => Object.defineProperty(crypto.subtle, "digest", { value: () => 1 })', expect: 'TOOL_ERROR' },
  { name: 'SubtleCrypto.prototype cannot be patched', code: 'export default () => { SubtleCrypto.prototype.sign = () => 1 }', expect: 'TOOL_ERROR' },
  { name: 'CryptoKey cannot be forged', code: 'export default () => new CryptoKey()', expect: 'TOOL_ERROR', check: (m) => expect(m).toMatch(/Illegal constructor/) },
  { name: 'the runtime classes carry no internal statics', code: 'export default () => [CryptoKey, AbortSignal, Request, Response, Event].map((C) => Object.getOwnPropertyNames(C).filter((k) => !["length", "name", "prototype"].includes(k)))', expect: 'ok', check: (v) => expect(v).toEqual([[], ['abort', 'timeout', 'any'], [], ['json', 'error', 'redirect'], []]) },
  { name: 'a non-extractable key cannot be read', code: 'export default async () => { const k = await crypto.subtle.importKey("raw", new Uint8Array([7, 7]), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]); return [JSON.stringify(k), Object.getOwnPropertyNames(k), Object.getOwnPropertySymbols(k).length] }', expect: 'ok', check: (v) => expect(v).toEqual(['{}', [], 0]) },
  { name: 'a digest over the size cap is refused in the isolate', code: 'export default async () => { try { await crypto.subtle.digest("SHA-256", new Uint8Array(5 * 1024 * 1024)) } catch (e) { return e.name } }', expect: 'ok', check: (v) => expect(v).toBe('QuotaExceededError'), limits: { memoryMb: 64 } },
  { name: 'URL.prototype cannot be patched', code: 'export default () => { URL.prototype.toString = () => "http://evil/" }', expect: 'TOOL_ERROR' },
  { name: 'URLSearchParams iterators cannot be patched', code: 'export default () => { Object.getPrototypeOf(new URLSearchParams("a=1").keys()).next = () => ({ done: true }) }', expect: 'TOOL_ERROR' },
  // The Body mixin's readers brand-check `this` through the class's private field: no getter or
  // Proxy trap of a fake `this` runs, a Proxy of a real body does not reach (or use) it, and a
  // Request is not a Response. Readers reject, the getters throw; all TypeErrors.
  { name: 'body readers refuse a hostile this', code: `export default async () => {
    const trapped = [];
    const real = new Response("secret");
    const proxy = new Proxy(real, { get(t, k) { trapped.push(String(k)); return Reflect.get(t, k) }, getPrototypeOf() { trapped.push("proto"); return Response.prototype } });
    const fake = Object.create(Response.prototype, { bodyUsed: { get() { trapped.push("getter"); return false } } });
    const others = [{}, proxy, fake, new Request("https://x/", { method: "POST", body: "b" }), null, undefined, 1, "s"];
    const out = [];
    for (const self of others) for (const m of ["text", "json", "arrayBuffer", "bytes"]) {
      const p = Response.prototype[m].call(self);
      try { await p; out.push("read") } catch (e) { out.push(p instanceof Promise && e instanceof TypeError ? "rejected" : "other") }
    }
    for (const self of [{}, proxy, fake]) for (const k of ["bodyUsed", "body"]) {
      try { Object.getOwnPropertyDescriptor(Request.prototype, k).get.call(self); out.push("read") } catch (e) { out.push(e.name) }
    }
    return { rejected: out.filter((x) => x === "rejected").length, thrown: out.filter((x) => x === "TypeError").length, other: out.filter((x) => x !== "rejected" && x !== "TypeError"), trapped, stillUnused: !real.bodyUsed, text: await real.text() };
  }`, expect: 'ok', check: (v) => expect(v).toEqual({ rejected: 32, thrown: 6, other: [], trapped: [], stillUnused: true, text: 'secret' }) },
  { name: 'Headers, Response and AbortSignal prototypes are frozen', code: 'export default () => [Headers.prototype, Response.prototype, AbortSignal.prototype, EventTarget.prototype, console].every(Object.isFrozen)', expect: 'ok', check: (v) => expect(v).toBe(true) },
  { name: 'console bomb is bounded', code: 'export default () => { for (let i = 0; i < 5000; i++) console.log("y".repeat(10000)); return 1 }', expect: 'ok', check: (_v, logs) => expect(logs.length).toBeLessThanOrEqual(201) },
  { name: 'structuredClone of a hostile Proxy stays inside', code: 'export default () => structuredClone(new Proxy({}, { ownKeys() { throw new Error("trap") } }))', expect: 'TOOL_ERROR', check: (m) => expect(m).toMatch(/trap/) },
];

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled);
  other = createServer((_req, res) => res.end('other')).listen(0, '127.0.0.1');
  server = createServer((req, res) => {
    if (req.url === '/to-other') return void res.writeHead(302, { location: `http://127.0.0.1:${otherPort}/` }).end();
    if (req.url === '/loop') return void res.writeHead(302, { location: '/loop' }).end();
    if (req.url === '/big') return void res.end('b'.repeat(200 * 1024));
    if (req.url === '/hang') return; // never answers
    if (req.url === '/echo') return void res.end(JSON.stringify(req.headers));
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ path: req.url }));
  }).listen(0, '127.0.0.1');
  await Promise.all([server, other].map((s) => new Promise((r) => s.once('listening', r))));
  port = (server.address() as AddressInfo).port;
  otherPort = (other.address() as AddressInfo).port;
});

afterAll(async () => {
  process.off('unhandledRejection', onUnhandled);
  await sandbox.close();
  server.closeAllConnections();
  await Promise.all([server, other].map((s) => new Promise((r) => s.close(r))));
});

const plain = () => tool('export default (a) => a.x * 2');

describe.each([
  ['escapes', ESCAPES],
  ['resource bombs', BOMBS],
  ['output bombs', OUTPUT],
  ['ctx abuse', CTX_ABUSE],
  ['web runtime abuse', WEB_ABUSE],
])('hostile tool code: %s', (_group, cases) => {
  test.each(cases)('$name → $expect', async (c) => {
    const egress = (c.limits?.egress ?? [`127.0.0.1:${port}`]).map((e) => e.replace('PORT', String(port)));
    const source = tool(c.code, { ...c.limits, egress });
    const args = c.args ?? { url: `http://127.0.0.1:${port}/ok`, base: `http://127.0.0.1:${port}`, other: `http://127.0.0.1:${otherPort}/`, port };
    let seen: string;
    try {
      const { value, logs } = await sandbox.run(source, args, c.secrets ? { secrets: c.secrets } : {});
      seen = JSON.stringify({ value, logs });
      expect('ok', `succeeded with ${seen.slice(0, 300)}`).toBe(c.expect);
      c.check?.(value, logs);
    } catch (err: unknown) {
      if (!isToolExecError(err)) throw err;
      const logs = (err as { logs?: string[] }).logs ?? [];
      seen = JSON.stringify({ code: err.code, message: err.message, logs });
      expect([c.expect, c.orElse ?? c.expect], err.message).toContain(err.code);
      c.check?.(err.message, logs);
    }
    expectNoHostData(seen);
    if (c.secrets) for (const v of Object.values(c.secrets)) expect(seen).not.toContain(v);
    // The sandbox stays up: the next call, of a plain tool and of this very tool version, works.
    await expect(sandbox.run(plain(), { x: 21 })).resolves.toMatchObject({ value: 42 });
    expect(sandbox.stats()[source.key] ?? 0).toBeLessThanOrEqual(2);
  });
});

test('a timer of one call never runs in the next call of the same isolate', async () => {
  const t = tool(`export default async (a, ctx) => {
    if (a.first) { setTimeout(() => console.log('leaked from the first call'), 20); return 'first' }
    await new Promise((r) => setTimeout(r, 80));
    return 'second';
  }`);
  await expect(sandbox.run(t, { first: true })).resolves.toMatchObject({ value: 'first', logs: [] });
  const second = await sandbox.run(t, { first: false });
  expect(second).toMatchObject({ value: 'second', logs: [] });
  expect(sandbox.stats()[t.key]).toBe(1);
});

test('crypto keeps no state a call could learn: random values differ across calls and isolates', async () => {
  const t = tool('export default () => [crypto.randomUUID(), [...crypto.getRandomValues(new Uint8Array(16))].join()]');
  const seen = new Set<string>();
  for (let i = 0; i < 5; i++) for (const v of (await sandbox.run(t, {})).value as string[]) seen.add(v);
  expect(seen.size).toBe(10);
});

test('at least 40 hostile cases run', () => {
  expect(ESCAPES.length + BOMBS.length + OUTPUT.length + CTX_ABUSE.length).toBeGreaterThanOrEqual(40);
});

test('two calls of the same tool never see each other\'s state', async () => {
  const stateful = tool(`
    let calls = 0;
    const cache = new Map();
    export default (a) => {
      calls++;
      cache.set(a.k, a.v);
      let stash = 'none';
      try { globalThis.__stash = a.v } catch { stash = 'refused' }
      try { Array.prototype.__stash = a.v } catch { stash += '+refused' }
      return { calls, size: cache.size, seen: typeof globalThis.__stash, stash };
    }`);
  const results = [];
  for (let i = 0; i < 4; i++) results.push((await sandbox.run(stateful, { k: `k${i}`, v: i })).value);
  for (const r of results) expect(r).toEqual({ calls: 1, size: 1, seen: 'undefined', stash: 'refused+refused' });
});

test('a tool that overruns the sync budget still runs, and stays correct on threads', async () => {
  const slow = tool('let n = 0; export default () => { const end = Date.now() + 15; while (Date.now() < end); return ++n }', { timeoutMs: 2000 });
  for (let i = 0; i < 3; i++) await expect(sandbox.run(slow, {})).resolves.toMatchObject({ value: 1 });
});

test('a call that waits on the network reports its result, and the isolate is reused', async () => {
  const t = tool('export default async (a, ctx) => (await ctx.fetch(a.url)).status');
  for (let i = 0; i < 3; i++) await expect(sandbox.run(t, { url: `http://127.0.0.1:${port}/ok` })).resolves.toMatchObject({ value: 200 });
  expect(sandbox.stats()[t.key]).toBe(1);
});

test('429 with Retry-After reaches onRetryAfter', async () => {
  const limited = createServer((_req, res) => res.writeHead(429, { 'retry-after': '7' }).end()).listen(0, '127.0.0.1');
  await new Promise((r) => limited.once('listening', r));
  const lport = (limited.address() as AddressInfo).port;
  const seen: number[] = [];
  const t = tool('export default async (a, ctx) => (await ctx.fetch(a.url)).status', { egress: [`127.0.0.1:${lport}`] });
  const { value } = await sandbox.run(t, { url: `http://127.0.0.1:${lport}/` }, { onRetryAfter: (ms) => seen.push(ms) });
  expect([value, seen]).toEqual([429, [7000]]);
  await new Promise((r) => limited.close(r));
});

test('cancelling a call disposes its isolate and answers CANCELLED', async () => {
  const ac = new AbortController();
  const running = sandbox.run(tool('export default () => new Promise(() => {})', { timeoutMs: 5000 }), {}, { signal: ac.signal });
  setImmediate(() => ac.abort());
  await expect(running).rejects.toMatchObject({ code: 'CANCELLED' });
});

test('no rejection of tool code reached the host', () => {
  expect(unhandled).toEqual([]);
});
