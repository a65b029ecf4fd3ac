import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { watchHealth } from '../support/health.js';
import { ADD_TOOL, api, startPlanner, startWorker, uniquePrefix, type ServiceProcess } from '../support/services.js';

/**
 * Hostile tenants against the stack `make up` runs (a planner and two workers), by class: tool code
 * that blocks or bloats the process it runs in, hostile values that run code when the host reads
 * them, fetch replies that are too big or too late, registrations whose top level never ends,
 * schemas that backtrack, egress to every kind of private address, and arguments shaped to fool a
 * hash. Each case asserts its code, that the planner's and every worker's `/healthz` answered
 * within a second the whole time, and that the next ordinary call succeeds.
 */

const SPIN_IN_MICROTASKS = 'function bad() { Promise.resolve().then(function () { bad(); for (;;); }); } bad(); for (;;);';

type CallCase = {
  name: string;
  code: string;
  /** The codes that are right (the first limit to trip can depend on machine load); 'ok' = succeeds. */
  expect: string[];
  tool?: Record<string, unknown>;
  args?: Record<string, unknown>;
};

const CALL_CASES: CallCase[] = [
  { name: 'microtask recursion with spins', code: `export default () => { ${SPIN_IN_MICROTASKS} }`, expect: ['TIMEOUT'] },
  { name: 'endless microtask chain that spins a little each time', code: 'export default () => { const go = () => Promise.resolve().then(() => { go(); const t = Date.now(); while (Date.now() - t < 20); }); go(); return 1 }', expect: ['TIMEOUT'] },
  { name: 'one huge native allocation', code: 'export default () => { void new Array(2 ** 27).fill(0); return 1 }', expect: ['OUT_OF_MEMORY', 'TIMEOUT'] },
  { name: 'typed array bomb', code: 'export default () => new Float64Array(2 ** 28).length', expect: ['OUT_OF_MEMORY'] },
  { name: 'string bomb', code: 'export default () => "x".repeat(2 ** 29).length', expect: ['OUT_OF_MEMORY'] },
  { name: 'getter on a rejected value', code: 'export default () => { Promise.reject({ get message() { for (;;) {} } }); return 1 }', expect: ['ok', 'TIMEOUT'] },
  { name: 'Proxy as a rejected value', code: 'export default () => { Promise.reject(new Proxy({}, { get() { for (;;) {} } })); return 1 }', expect: ['ok', 'TIMEOUT'] },
  { name: 'thrown value with a spinning getter', code: 'export default () => { throw { get message() { for (;;) {} } } }', expect: ['TIMEOUT'] },
  { name: 'thrown Proxy', code: 'export default () => { throw new Proxy({}, { get() { for (;;) {} } }) }', expect: ['TIMEOUT'] },
  { name: 'thenable that spins', code: 'export default () => ({ then() { for (;;) {} } })', expect: ['TIMEOUT'] },
  { name: 'thenable that never settles but keeps scheduling', code: 'export default () => ({ then(r) { Promise.resolve().then(() => this.then(r)) } })', expect: ['TIMEOUT'] },
  { name: 'toJSON that spins', code: 'export default () => ({ toJSON() { for (;;) {} } })', expect: ['TIMEOUT'] },
  { name: 'fetch reply over the size cap', code: 'export default async (a, ctx) => (await ctx.fetch(a.base + "/huge")).body.length', expect: ['TOOL_ERROR'] },
  { name: 'fetch replies that add up past the heap', code: 'export default async (a, ctx) => (await Promise.all(Array.from({ length: 50 }, () => ctx.fetch(a.base + "/mib")))).map((r) => r.body).join("").length', expect: ['OUT_OF_MEMORY', 'TOOL_ERROR', 'TIMEOUT', 'POISONED'] },
  { name: 'fetch reply that comes after the deadline', code: 'export default async (a, ctx) => (await ctx.fetch(a.base + "/slow")).status', expect: ['TIMEOUT'], tool: { limits: { timeoutMs: 500 } } },
  { name: 'request body over the cap is refused in the isolate', code: 'export default async (a, ctx) => (await ctx.fetch(a.base + "/echo", { method: "POST", body: "x".repeat(2 * 1024 * 1024) })).status', expect: ['TOOL_ERROR'] },
];

/**
 * A module's top level runs inside each call (module factories, issue 14), where the registration
 * check never sees it: timers refuse outside a call, so this prefix is false at registration and true
 * in a call, and the code after it turns hostile only when it runs for real.
 */
const ONLY_IN_A_CALL = 'let inCall = false; try { setTimeout(() => {}, 0); inCall = true } catch {}\n';
const TOP_LEVEL_IN_A_CALL: CallCase[] = [
  { name: 'top level that spins only inside a call', code: `${ONLY_IN_A_CALL}if (inCall) for (;;) {}\nexport default () => 1`, expect: ['TIMEOUT'] },
  { name: 'top level that spins in microtasks only inside a call', code: `${ONLY_IN_A_CALL}if (inCall) { ${SPIN_IN_MICROTASKS} }\nexport default () => 1`, expect: ['TIMEOUT'] },
  { name: 'top-level allocation bomb only inside a call', code: `${ONLY_IN_A_CALL}if (inCall) void new Array(2 ** 27).fill(0);\nexport default () => 1`, expect: ['OUT_OF_MEMORY', 'TIMEOUT'] },
  { name: 'top-level rejected getter only inside a call', code: `${ONLY_IN_A_CALL}if (inCall) Promise.reject({ get message() { for (;;) {} } });\nexport default () => 1`, expect: ['ok', 'TIMEOUT'] },
  { name: 'top-level rejected Proxy only inside a call', code: `${ONLY_IN_A_CALL}if (inCall) Promise.reject(new Proxy({}, { get() { for (;;) {} } }));\nexport default () => 1`, expect: ['ok', 'TIMEOUT'] },
  { name: 'top-level thrown getter only inside a call', code: `${ONLY_IN_A_CALL}if (inCall) throw { get message() { for (;;) {} } };\nexport default () => 1`, expect: ['TIMEOUT'] },
  { name: 'default export that is a spinning Proxy only inside a call', code: `${ONLY_IN_A_CALL}export default inCall ? new Proxy(() => 1, { apply() { for (;;) {} } }) : () => 1`, expect: ['TIMEOUT'] },
  { name: 'default export returning a spinning thenable only inside a call', code: `${ONLY_IN_A_CALL}export default () => (inCall ? { then() { for (;;) {} } } : 1)`, expect: ['TIMEOUT'] },
];

const EGRESS_CASES: Array<[string, string, string]> = [
  ['cloud metadata', 'http://169.254.169.254/latest/meta-data/', '169.254.169.254'],
  ['another loopback address', 'http://127.0.0.2:PORT/', '127.0.0.2:PORT'],
  ['loopback as a decimal number', 'http://2130706434:PORT/', '127.0.0.2:PORT'],
  ['loopback in hex', 'http://0x7f000002:PORT/', '127.0.0.2:PORT'],
  ['private 10/8', 'http://10.0.0.1/', '10.0.0.1'],
  ['private 192.168/16', 'http://192.168.1.1/', '192.168.1.1'],
  ['CGNAT', 'http://100.64.0.1/', '100.64.0.1'],
  ['multicast', 'http://224.0.0.1/', '224.0.0.1'],
  ['unspecified', 'http://0.0.0.0:PORT/', '0.0.0.0:PORT'],
  ['IPv6 loopback', 'http://[::1]:PORT/', '[::1]:PORT'],
  ['IPv4-mapped IPv6 loopback', 'http://[::ffff:127.0.0.2]:PORT/', '[::ffff:127.0.0.2]:PORT'],
  ['IPv6 unique local', 'http://[fd00::1]/', '[fd00::1]'],
  ['IPv6 link-local', 'http://[fe80::1]/', '[fe80::1]'],
  ['NAT64 of metadata', 'http://[64:ff9b::a9fe:a9fe]/', '[64:ff9b::a9fe:a9fe]'],
  ['a port not listed with the host', 'http://example.com:8080/', 'example.com'],
];

const REGISTRATION_BOMBS: Array<[string, string]> = [
  ['microtask recursion with spins at top level', `${SPIN_IN_MICROTASKS} export default () => 1`],
  ['endless loop at top level', 'for (;;) {} export default () => 1'],
  ['huge allocation at top level', 'void new Array(2 ** 27).fill(0); export default () => 1'],
  ['rejected getter at top level', 'Promise.reject({ get message() { for (;;) {} } }); export default () => 1'],
  ['rejected Proxy at top level', 'Promise.reject(new Proxy({}, { get() { for (;;) {} } })); export default () => 1'],
  ['thrown getter at top level', 'throw { get message() { for (;;) {} } }; export default () => 1'],
  ['awaited thenable that spins at top level', 'await { then() { for (;;) {} } }; export default () => 1'],
  ['endless microtask chain at top level', 'const go = () => Promise.resolve().then(go); go(); export default () => 1'],
  ['typed array bomb at top level', 'const big = new Float64Array(2 ** 28); export default () => big.length'],
  ['top-level await that never ends', 'await new Promise(() => {}); export default () => 1'],
  ['getter read at top level that spins', 'const o = { get x() { for (;;) {} } }; const v = o.x; export default () => v'],
  ['Proxy trap hit at top level that spins', 'const p = new Proxy({}, { get() { for (;;) {} } }); const v = p.x; export default () => v'],
  ['queueMicrotask that spins at top level', 'queueMicrotask(() => { for (;;) {} }); export default () => 1'],
  ['spin after an await in a top-level async function', 'export default () => 1; (async () => { await null; for (;;) {} })()'],
  ['backtracking regular expression at top level', 'const v = /(a+)+$/.test("a".repeat(40) + "b"); export default () => v'],
];

describe('hostile tenants against a planner and two workers', () => {
  let planner: ServiceProcess;
  let workers: ServiceProcess[] = [];
  let downstream: Server;
  let base = '';
  let port = 0;
  const env = { REDIS_URL: inject('redisUrl'), TOOLPLANE_PREFIX: uniquePrefix() };
  let n = 0;

  const register = (name: string, code: string, extra: Record<string, unknown> = {}) =>
    api(planner.url, 'PUT', `/v1/tools/${name}`, { description: name, parameters: { type: 'object' }, code, retries: { attempts: 1 }, ...extra });
  const call = (tool: string, args: unknown = {}, waitMs = 20_000) => api(planner.url, 'POST', '/v1/calls', { tool, arguments: args, wait: waitMs });
  const services = () => [planner.url, ...workers.map((w) => w.url)];

  /** Runs `fn` while watching every service's health; then checks that an ordinary call succeeds. */
  async function contained(fn: () => Promise<void>): Promise<void> {
    const watch = watchHealth(services());
    try {
      await fn();
    } finally {
      expect(await watch.stop()).toEqual([]);
    }
    const next = await call('add', { a: 20, b: 22 }, 5_000);
    expect(next.body).toMatchObject({ status: 'succeeded', result: 42 });
  }

  beforeAll(async () => {
    downstream = createServer((req, res) => {
      if (req.url === '/huge') return void res.end('x'.repeat(8 * 1024 * 1024));
      if (req.url === '/mib') return void res.end('y'.repeat(1024 * 1024 - 64));
      if (req.url === '/slow') return void setTimeout(() => res.end('late'), 3_000);
      req.resume();
      res.end('ok');
    }).listen(0, '127.0.0.1');
    await new Promise((r) => downstream.once('listening', r));
    port = (downstream.address() as AddressInfo).port;
    base = `http://127.0.0.1:${port}`;
    [planner, ...workers] = await Promise.all([startPlanner(env), startWorker(env), startWorker(env)]);
    expect((await api(planner.url, 'PUT', '/v1/tools/add', ADD_TOOL)).status).toBe(201);
  });
  afterAll(async () => {
    await Promise.all([planner, ...workers].map((p) => p?.kill()));
    downstream?.closeAllConnections();
    await new Promise((r) => downstream?.close(r));
  });

  for (const c of [...CALL_CASES, ...TOP_LEVEL_IN_A_CALL]) {
    test(`call: ${c.name} → ${c.expect.join(' or ')}`, async () => {
      const name = `c${++n}`;
      const put = await register(name, c.code, { limits: { timeoutMs: 1_000, memoryMb: 32 }, egress: [`127.0.0.1:${port}`], ...c.tool });
      expect(put.status, JSON.stringify(put.body)).toBe(201);
      await contained(async () => {
        const res = await call(name, { base, ...c.args });
        const got = res.body.status === 'succeeded' ? 'ok' : res.body.error?.code;
        expect(c.expect, JSON.stringify(res.body)).toContain(got);
      });
    });
  }

  for (const [name, url, rule] of EGRESS_CASES) {
    test(`egress: ${name} is refused whatever the tool lists`, async () => {
      const tool = `e${++n}`;
      const egress = [rule.replace('PORT', String(port))];
      const put = await register(tool, 'export default async (a, ctx) => (await ctx.fetch(a.url)).status', { egress, limits: { timeoutMs: 3_000 } });
      expect(put.status, JSON.stringify(put.body)).toBe(201);
      await contained(async () => {
        const res = await call(tool, { url: url.replace('PORT', String(port)) });
        expect(res.body, JSON.stringify(res.body)).toMatchObject({ status: 'failed', error: { code: 'EGRESS_DENIED' } });
      });
    });
  }

  for (const [name, code] of REGISTRATION_BOMBS) {
    test(`registration: ${name} is refused within about a second, off the API process`, async () => {
      await contained(async () => {
        const started = performance.now();
        const res = await register(`r${++n}`, code);
        expect([res.status, res.body.error?.code], JSON.stringify(res.body)).toEqual([400, 'INVALID_TOOL']);
        expect(performance.now() - started).toBeLessThan(2_500);
      });
    });
  }

  test('schema: a backtracking pattern runs in linear time on the planner', async () => {
    const schema = { type: 'object', properties: { s: { type: 'string', pattern: '^(a+)+$' } }, required: ['s'] };
    expect((await api(planner.url, 'PUT', '/v1/tools/redos', { ...ADD_TOOL, parameters: schema })).status).toBe(201);
    await contained(async () => {
      const started = performance.now();
      const bad = await Promise.all(Array.from({ length: 20 }, () => api(planner.url, 'POST', '/v1/calls', { tool: 'redos', arguments: { s: `${'a'.repeat(64)}!` } })));
      expect(bad.map((r) => r.body.error?.code)).toEqual(Array.from({ length: 20 }, () => 'INVALID_ARGUMENTS'));
      expect(performance.now() - started).toBeLessThan(2_000);
    });
  });

  test('hashes: an own "__proto__" argument is part of the call, not hidden from the result cache', async () => {
    const keys = { description: 'keys', parameters: { type: 'object' }, code: 'export default (a) => Object.keys(a)', cacheTtlMs: 60_000 };
    expect((await api(planner.url, 'PUT', '/v1/tools/keys', keys)).status).toBe(201);
    const plain = await call('keys', { q: 1 });
    expect(plain.body).toMatchObject({ status: 'succeeded', result: ['q'] });
    const raw = '{"tool":"keys","arguments":{"q":1,"__proto__":{"x":1}},"wait":10000}';
    const proto = await api(planner.url, 'POST', '/v1/calls', raw);
    expect(proto.body).toMatchObject({ status: 'succeeded', result: ['q', '__proto__'] });
    expect(proto.body.argsHash).not.toBe(plain.body.argsHash);
  });

  test('caches: rotating a secret the tool reads misses the result cache', async () => {
    const tool = { description: 'len', parameters: { type: 'object' }, code: 'export default (a, ctx) => ctx.secrets.TOKEN.length', cacheTtlMs: 60_000, secrets: ['TOKEN'] };
    expect((await api(planner.url, 'PUT', '/v1/secrets/TOKEN', { value: 'first-value' })).status).toBe(201);
    expect((await api(planner.url, 'PUT', '/v1/tools/secret-len', tool)).status).toBe(201);
    expect((await call('secret-len')).body).toMatchObject({ status: 'succeeded', result: 11 });
    expect((await call('secret-len')).body).toMatchObject({ status: 'succeeded', result: 11, cached: true });
    expect((await api(planner.url, 'PUT', '/v1/secrets/TOKEN', { value: 'the-rotated-value' })).status).toBe(200);
    expect((await call('secret-len')).body).toMatchObject({ status: 'succeeded', result: 17 });
  });

  test('every worker and the planner are still the processes that started', () => {
    for (const p of [planner, ...workers]) expect(p.proc.exitCode).toBeNull();
  });
});
