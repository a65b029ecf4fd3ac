import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Sandbox, type ToolSource } from './index.js';

/**
 * Conformance of the web-standard runtime inside real isolates: one row per behaviour a tool author
 * (or an npm package) relies on, the common subset of WinterTC / Cloudflare Workers. Each row is the
 * body of an async function run as a tool; its result must equal `expect`.
 */
type Row = { api: string; name: string; body: string; expect: unknown };

const ROWS: Row[] = [
  // URL / URLSearchParams
  { api: 'URL', name: 'parses and resolves relative', body: `const u = new URL('../c/d?x=1#h', 'https://a.example/b/e/f'); return [u.href, u.pathname, u.search, u.hash, u.origin]`, expect: ['https://a.example/b/c/d?x=1#h', '/b/c/d', '?x=1', '#h', 'https://a.example'] },
  { api: 'URL', name: 'host, port, credentials', body: `const u = new URL('http://u:p@H.Example:8080/'); return [u.host, u.hostname, u.port, u.username, u.password]`, expect: ['h.example:8080', 'h.example', '8080', 'u', 'p'] },
  { api: 'URL', name: 'IDNA and IPv6 hosts', body: `return [new URL('https://bücher.de/').hostname, new URL('http://[::1]:80/').host]`, expect: ['xn--bcher-kva.de', '[::1]'] },
  { api: 'URL', name: 'invalid URL throws TypeError', body: `try { new URL('not a url') } catch (e) { return e instanceof TypeError }`, expect: true },
  { api: 'URL', name: 'canParse and toJSON', body: `return [URL.canParse('https://x'), URL.canParse('x'), JSON.stringify({ u: new URL('https://x/y') })]`, expect: [true, false, '{"u":"https://x/y"}'] },
  { api: 'URL', name: 'percent-encodes path and query', body: `return new URL('https://x/a b?q=ä b').href`, expect: 'https://x/a%20b?q=%C3%A4%20b' },
  { api: 'URLSearchParams', name: 'append, get, getAll, sort, toString', body: `const p = new URLSearchParams('b=2&a=1'); p.append('a', '3 4'); p.sort(); return [p.get('a'), p.getAll('a'), p.toString(), [...p.keys()]]`, expect: ['1', ['1', '3 4'], 'a=1&a=3+4&b=2', ['a', 'a', 'b']] },
  { api: 'URLSearchParams', name: 'from an object, linked to URL', body: `const u = new URL('https://x/?a=1'); u.searchParams.set('b', 'c&d'); return [u.href, new URLSearchParams({ k: 'v' }).toString()]`, expect: ['https://x/?a=1&b=c%26d', 'k=v'] },
  // Encoding
  { api: 'TextEncoder', name: 'UTF-8 of BMP, astral and lone surrogates', body: `return [...new TextEncoder().encode('é😀\\ud800')]`, expect: [0xc3, 0xa9, 0xf0, 0x9f, 0x98, 0x80, 0xef, 0xbf, 0xbd] },
  { api: 'TextEncoder', name: 'encodeInto', body: `const b = new Uint8Array(3); return [new TextEncoder().encodeInto('aé€', b), [...b]]`, expect: [{ read: 2, written: 3 }, [0x61, 0xc3, 0xa9]] },
  { api: 'TextDecoder', name: 'round trip, BOM, replacement', body: `const d = new TextDecoder(); return [d.decode(new TextEncoder().encode('héllo 😀')), d.decode(new Uint8Array([0xef, 0xbb, 0xbf, 0x41])), d.decode(new Uint8Array([0xff, 0x41])), d.encoding]`, expect: ['héllo 😀', 'A', '\uFFFDA', 'utf-8'] },
  { api: 'TextDecoder', name: 'fatal and streaming', body: `let fatal; try { new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array([0xc3])) } catch (e) { fatal = e instanceof TypeError } const d = new TextDecoder(); return [fatal, d.decode(new Uint8Array([0xc3]), { stream: true }) + d.decode(new Uint8Array([0xa9]))]`, expect: [true, 'é'] },
  { api: 'atob/btoa', name: 'round trip and errors', body: `let bad; try { btoa('€') } catch (e) { bad = e.name } return [btoa('hello'), atob('aGVsbG8='), atob(' aGk '), bad]`, expect: ['aGVsbG8=', 'hello', 'hi', 'InvalidCharacterError'] },
  // structuredClone
  { api: 'structuredClone', name: 'deep copy with Map, Set, Date, cycles', body: `const o = { d: new Date(0), m: new Map([[1, { x: 1 }]]), s: new Set([1]), a: new Uint8Array([1, 2]) }; o.self = o; const c = structuredClone(o); return [c !== o, c.self === c, c.d.getTime(), c.m.get(1).x, c.s.has(1), [...c.a], c.m.get(1) !== o.m.get(1)]`, expect: [true, true, 0, 1, true, [1, 2], true] },
  { api: 'structuredClone', name: 'functions are refused with DataCloneError', body: `try { structuredClone({ f() {} }) } catch (e) { return [e.name, e instanceof DOMException] }`, expect: ['DataCloneError', true] },
  // crypto
  { api: 'crypto', name: 'getRandomValues fills and returns the array', body: `const arr = new Uint32Array(8); const r = crypto.getRandomValues(arr); return [r === arr, arr.some((x) => x !== 0)]`, expect: [true, true] },
  { api: 'crypto', name: 'getRandomValues limits', body: `const out = []; try { crypto.getRandomValues(new Uint8Array(65537)) } catch (e) { out.push(e.name) } try { crypto.getRandomValues(new Float64Array(1)) } catch (e) { out.push(e.name) } return out`, expect: ['QuotaExceededError', 'TypeMismatchError'] },
  { api: 'crypto', name: 'randomUUID is v4 and fresh', body: `const u1 = crypto.randomUUID(), u2 = crypto.randomUUID(); return [/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(u1), u1 !== u2]`, expect: [true, true] },
  { api: 'crypto.subtle', name: 'digest SHA-256 and SHA-1', body: `const hex = (b) => [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, '0')).join(''); return [hex(await crypto.subtle.digest('SHA-256', new TextEncoder().encode('abc'))), hex(await crypto.subtle.digest({ name: 'SHA-1' }, new Uint8Array(0)))]`, expect: ['ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad', 'da39a3ee5e6b4b0d3255bfef95601890afd80709'] },
  { api: 'crypto.subtle', name: 'HMAC sign and verify (RFC 4231 case 2)', body: `const e = new TextEncoder(); const k = await crypto.subtle.importKey('raw', e.encode('Jefe'), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']); const s = await crypto.subtle.sign('HMAC', k, e.encode('what do ya want for nothing?')); const hex = [...new Uint8Array(s)].map((x) => x.toString(16).padStart(2, '0')).join(''); return [hex, await crypto.subtle.verify('HMAC', k, s, e.encode('what do ya want for nothing?')), await crypto.subtle.verify('HMAC', k, s, e.encode('other')), k.algorithm.name, k.extractable]`, expect: ['5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843', true, false, 'HMAC', false] },
  { api: 'crypto.subtle', name: 'non-extractable keys stay inside', body: `const k = await crypto.subtle.importKey('raw', new Uint8Array([1, 2]), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']); try { await crypto.subtle.exportKey('raw', k) } catch (e) { return [e.name, Object.getOwnPropertyNames(k).length] }`, expect: ['InvalidAccessError', 0] },
  { api: 'crypto.subtle', name: 'unsupported algorithm rejects NotSupportedError', body: `try { await crypto.subtle.digest('MD5', new Uint8Array(1)) } catch (e) { return e.name }`, expect: 'NotSupportedError' },
  // timers and microtasks
  { api: 'setTimeout', name: 'fires in order of delay, with arguments', body: `const seen = []; await new Promise((r) => { setTimeout(() => seen.push('b'), 20); setTimeout((x) => seen.push(x), 5, 'a'); setTimeout(r, 40) }); return seen`, expect: ['a', 'b'] },
  { api: 'clearTimeout', name: 'a cleared timer never fires', body: `let fired = false; const id = setTimeout(() => { fired = true }, 5); clearTimeout(id); await new Promise((r) => setTimeout(r, 30)); return [typeof id, fired]`, expect: ['number', false] },
  { api: 'setInterval', name: 'repeats until cleared', body: `let n = 0; await new Promise((r) => { const id = setInterval(() => { if (++n === 3) { clearInterval(id); r() } }, 2) }); return n`, expect: 3 },
  { api: 'queueMicrotask', name: 'runs before timers', body: `const seen = []; setTimeout(() => seen.push('timer'), 0); queueMicrotask(() => seen.push('micro')); await new Promise((r) => setTimeout(r, 10)); return seen`, expect: ['micro', 'timer'] },
  // AbortController / events
  { api: 'AbortController', name: 'abort fires once with a reason', body: `const c = new AbortController(); let n = 0; c.signal.addEventListener('abort', () => n++); c.abort('why'); c.abort(); return [c.signal.aborted, c.signal.reason, n]`, expect: [true, 'why', 1] },
  { api: 'AbortSignal', name: 'abort(), timeout() and any()', body: `const t = AbortSignal.timeout(5); await new Promise((r) => t.addEventListener('abort', r)); const any = AbortSignal.any([new AbortController().signal, AbortSignal.abort('x')]); return [AbortSignal.abort().reason.name, t.reason.name, any.aborted, any.reason]`, expect: ['AbortError', 'TimeoutError', true, 'x'] },
  { api: 'EventTarget', name: 'listeners, once, handleEvent, dispatch result', body: `const t = new EventTarget(); const seen = []; t.addEventListener('x', (e) => seen.push(e.type), { once: true }); t.addEventListener('x', { handleEvent: () => seen.push('obj') }); const ok = t.dispatchEvent(new Event('x', { cancelable: true })); t.dispatchEvent(new Event('x')); return [seen, ok]`, expect: [['x', 'obj', 'obj'], true] },
  // Headers / Request / Response
  { api: 'Headers', name: 'case-insensitive, combined, sorted', body: `const h = new Headers({ B: '1', a: '2' }); h.append('b', '3'); return [h.get('b'), [...h], h.has('A')]`, expect: ['1, 3', [['a', '2'], ['b', '1, 3']], true] },
  { api: 'Headers', name: 'invalid names and values throw', body: `const out = []; try { new Headers({ 'bad name': 'x' }) } catch (e) { out.push(e.name) } try { new Headers({ a: 'x\\r\\ny: z' }) } catch (e) { out.push(e.name) } return out`, expect: ['TypeError', 'TypeError'] },
  { api: 'Response', name: 'body readers and bodyUsed', body: `const r = new Response('{"a":1}', { status: 201, headers: { 'x-y': 'z' } }); const c = r.clone(); const j = await r.json(); let again; try { await r.text() } catch (e) { again = e.name } return [j, r.status, r.ok, r.bodyUsed, again, await c.text(), r.headers.get('x-y')]`, expect: [{ a: 1 }, 201, true, true, 'TypeError', '{"a":1}', 'z'] },
  { api: 'Response', name: 'Response.json and arrayBuffer', body: `const r = Response.json({ x: 1 }); return [r.headers.get('content-type'), new TextDecoder().decode(await r.arrayBuffer())]`, expect: ['application/json', '{"x":1}'] },
  { api: 'Request', name: 'method, headers, body, clone', body: `const q = new Request('https://x/y', { method: 'post', headers: { a: 'b' }, body: 'hi' }); return [q.method, q.url, q.headers.get('a'), await q.clone().text(), q.headers.get('content-type')]`, expect: ['POST', 'https://x/y', 'b', 'hi', 'text/plain;charset=UTF-8'] },
  { api: 'Response', name: 'bodyUsed flips on the first read, every reader then rejects TypeError', body: `const r = new Response('x'); const before = r.bodyUsed; await r.bytes(); const out = []; for (const m of ['text', 'json', 'arrayBuffer', 'bytes']) { try { await r[m](); out.push('read') } catch (e) { out.push(e.name) } } return [before, r.bodyUsed, out]`, expect: [false, true, ['TypeError', 'TypeError', 'TypeError', 'TypeError']] },
  { api: 'Response', name: 'json() of bad JSON rejects with SyntaxError and uses the body', body: `const r = new Response('{nope'); const p = r.json(); const isPromise = p instanceof Promise; try { await p } catch (e) { return [isPromise, e.name, r.bodyUsed] }`, expect: [true, 'SyntaxError', true] },
  { api: 'Response', name: 'a clone reads independently, a used body cannot be cloned', body: `const r = new Response(new Uint8Array([104, 105])); const c = r.clone(); const first = await c.text(); const used = [r.bodyUsed, c.bodyUsed]; const bytes = [...new Uint8Array(await r.arrayBuffer())]; let again; try { r.clone() } catch (e) { again = e.name } return [first, used, bytes, again]`, expect: ['hi', [false, true], [104, 105], 'TypeError'] },
  { api: 'Response', name: 'no body reads as empty', body: `const r = new Response(null, { status: 204 }); return [r.body, await r.text(), r.bodyUsed, (await new Response().arrayBuffer()).byteLength]`, expect: [null, '', true, 0] },
  { api: 'Request', name: 'body readers, one read, bodyUsed', body: `const q = new Request('https://x/', { method: 'PUT', body: '{"a":[1]}' }); const c = q.clone(); const j = await q.json(); let again; try { await q.text() } catch (e) { again = e.name } let cl; try { q.clone() } catch (e) { cl = e.name } return [j, q.bodyUsed, again, cl, [...await c.bytes()].length, c.bodyUsed]`, expect: [{ a: [1] }, true, 'TypeError', 'TypeError', 9, true] },
  { api: 'Request', name: 'a Request made from a used Request is refused', body: `const q = new Request('https://x/', { method: 'POST', body: 'b' }); await q.text(); try { new Request(q) } catch (e) { return e.name }`, expect: 'TypeError' },
  { api: 'Response', name: 'body members are each class\'s own, as the Body mixin has them', body: `const keys = ['text', 'json', 'arrayBuffer', 'bytes', 'bodyUsed', 'body']; return [keys.every((k) => Object.hasOwn(Request.prototype, k) && Object.hasOwn(Response.prototype, k)), Request.prototype.text !== Response.prototype.text, Object.keys(Response.prototype), Object.getPrototypeOf(Response.prototype) === Object.prototype, Response.prototype.text.name, typeof Object.getOwnPropertyDescriptor(Request.prototype, 'bodyUsed').get]`, expect: [true, true, [], true, 'text', 'function'] },
  { api: 'Request', name: 'GET with a body is refused', body: `try { new Request('https://x', { body: 'x' }) } catch (e) { return e.name }`, expect: 'TypeError' },
  // fetch
  { api: 'fetch', name: 'GET returns a Response', body: `const r = await fetch(a.base + '/json'); return [r.status, r.ok, r.headers.get('content-type'), await r.json(), r instanceof Response]`, expect: [200, true, 'application/json', { path: '/json' }, true] },
  { api: 'fetch', name: 'POST with a Request, headers and a JSON body', body: `const r = await fetch(new Request(a.base + '/echo', { method: 'POST', headers: { 'x-k': 'v', 'content-type': 'application/json' }, body: JSON.stringify({ n: 1 }) })); return r.json()`, expect: { method: 'POST', xk: 'v', body: '{"n":1}' } },
  { api: 'fetch', name: 'URLSearchParams body is form-encoded', body: `return (await fetch(a.base + '/echo', { method: 'POST', body: new URLSearchParams({ a: 'b c' }) })).json()`, expect: { method: 'POST', xk: null, body: 'a=b+c', type: 'application/x-www-form-urlencoded;charset=UTF-8' } },
  { api: 'fetch', name: 'an aborted signal rejects with its reason', body: `const c = new AbortController(); c.abort(); try { await fetch(a.base + '/json', { signal: c.signal }) } catch (e) { return e.name }`, expect: 'AbortError' },
  { api: 'fetch', name: 'a host outside egress is a caught TypeError-like denial', body: `try { await fetch('http://example.com/') } catch (e) { return e.message.startsWith('egress denied') }`, expect: true },
  // console
  { api: 'console', name: 'console.* goes to the call logs', body: `console.log('a', 1); console.warn('w'); console.error({ e: 1 }); console.info('i'); return 0`, expect: 0 },
];

let server: Server;
let base = '';
const sandbox = new Sandbox({ allowPrivateNetworks: '127.0.0.1', maxIsolatesPerTool: 2 });

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      if (req.url === '/echo') {
        const type = req.headers['content-type'];
        return void res.end(JSON.stringify({ method: req.method, xk: req.headers['x-k'] ?? null, body, ...(type?.startsWith('application/x-www') ? { type } : {}) }));
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ path: req.url }));
    });
  }).listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await sandbox.close();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

let n = 0;
const tool = (body: string): ToolSource => ({
  key: `web${++n}`,
  code: `export default async (a, ctx) => { ${body} }`,
  timeoutMs: 2000,
  memoryMb: 32,
  maxResultBytes: 1 << 20,
  egress: [base.replace('http://', '')],
});

describe('web-standard runtime conformance', () => {
  test.each(ROWS)('$api: $name', async (row) => {
    const { value } = await sandbox.run(tool(row.body), { base });
    expect(value).toEqual(row.expect);
  });

  test('every API of the issue has rows', () => {
    const apis = new Set(ROWS.map((r) => r.api));
    for (const api of ['URL', 'URLSearchParams', 'TextEncoder', 'TextDecoder', 'atob/btoa', 'structuredClone', 'crypto', 'crypto.subtle', 'setTimeout', 'clearTimeout', 'queueMicrotask', 'AbortController', 'AbortSignal', 'Headers', 'Request', 'Response', 'fetch', 'console']) {
      expect(apis.has(api), api).toBe(true);
    }
  });

  test('console lines land in the call logs, levels marked', async () => {
    const row = ROWS.find((r) => r.api === 'console')!;
    const { logs } = await sandbox.run(tool(row.body), {});
    expect(logs).toEqual(['a 1', '[warn] w', '[error] {"e":1}', 'i']);
  });

  test('globals are the web ones and none is writable', async () => {
    const { value } = await sandbox.run(
      tool(`return ['fetch', 'URL', 'crypto', 'setTimeout', 'console', 'Response'].map((k) => { const d = Object.getOwnPropertyDescriptor(globalThis, k); return [k, d.writable, d.configurable, Object.isFrozen(globalThis[k])] })`),
      {},
    );
    expect(value).toEqual(['fetch', 'URL', 'crypto', 'setTimeout', 'console', 'Response'].map((k) => [k, false, false, true]));
  });

  test('every global function and class carries its own name', async () => {
    const names = ['fetch', 'Request', 'Response', 'Headers', 'URL', 'URLSearchParams', 'TextEncoder', 'TextDecoder', 'atob', 'btoa', 'structuredClone', 'Crypto', 'CryptoKey', 'SubtleCrypto', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'queueMicrotask', 'AbortController', 'AbortSignal', 'Event', 'EventTarget', 'DOMException'];
    const { value } = await sandbox.run(tool(`return ${JSON.stringify(names)}.map((k) => globalThis[k].name)`), {});
    expect(value).toEqual(names);
  });

  test('ctx carries the call id and attempt', async () => {
    const { value } = await sandbox.run(tool('return [ctx.callId, ctx.attempt, ctx.signal.aborted]'), {}, { call: { id: 'abc', attempt: 3 } });
    expect(value).toEqual(['abc', 3, false]);
  });
});
