/**
 * `fetch`, `Headers`, `Request` and `Response` (Fetch standard subset, bodies buffered, no streams),
 * and {@link sendRequest}, the one way a request leaves the isolate, shared with `ctx.fetch`: the
 * same size checks here, the same egress rules, DNS pinning and caps on the host.
 */
import { activeCall, describe, hostBridges, runtime, type CallState } from './call.js';
import { AbortSignal, DOMException, createSignal } from './events.js';
import { TextDecoder, bytesOf, utf8Encode } from './encoding.js';
import { URL } from './url.js';

/** Errors only the runtime can make: one a tool does not catch ends the call as EGRESS_DENIED. */
export const denials = new WeakSet<object>();

/** The host's reply to one request, as JSON. */
export type Reply = {
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

/** Sends one request through the host's egress bridge for `call`. Never resolves for a finished call. */
export async function sendRequest(call: CallState, api: string, url: string, method: string, headers: Record<string, string>, body: string | null): Promise<Reply> {
  const host = hostBridges();
  let request: string;
  try {
    // Checked here, in the isolate: nothing oversized is ever copied to the host.
    if (url.length > host.limits.maxUrlLength) throw new TypeError('the URL is longer than ' + host.limits.maxUrlLength + ' characters');
    if (body !== null && body.length > host.limits.maxRequestBodyBytes) throw new TypeError('the body is larger than ' + host.limits.maxRequestBodyBytes + ' bytes');
    request = JSON.stringify({ url, method, headers, body });
    if (request.length > host.limits.maxUrlLength + 3 * host.limits.maxRequestBodyBytes) throw new TypeError('the request is too large');
  } catch (e) {
    throw new TypeError(api + ': bad request: ' + describe(e));
  }
  const raw = await host.fetch.apply(undefined, [call.token, request], { result: { promise: true, copy: true } });
  const res = JSON.parse(String(raw)) as Reply;
  // The call this request belonged to is over: nothing of it may run again.
  if (res.stale || runtime.current !== call || call.done) return new Promise<never>(() => {});
  if (res.denied) {
    const e = new Error('egress denied: ' + String(res.message));
    denials.add(e);
    throw e;
  }
  if (res.error) throw new TypeError(api + ' failed: ' + res.error);
  return res;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const normalizeValue = (v: unknown): string => String(v).replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, '');

export class Headers {
  readonly #map = new Map<string, string[]>();
  constructor(init: unknown = undefined) {
    if (init === undefined || init === null) return;
    if (init instanceof Headers) {
      for (const [k, v] of init) this.append(k, v);
    } else if (typeof (init as { [Symbol.iterator]?: unknown })[Symbol.iterator] === 'function') {
      for (const pair of init as Iterable<unknown>) {
        const p = [...(pair as Iterable<unknown>)];
        if (p.length !== 2) throw new TypeError('Headers: each header must be a [name, value] pair');
        this.append(p[0], p[1]);
      }
    } else if (typeof init === 'object') {
      for (const k of Object.keys(init)) this.append(k, (init as Record<string, unknown>)[k]);
    } else throw new TypeError('Headers: init must be an object, an iterable of pairs or Headers');
  }
  #name(name: unknown): string {
    const n = String(name);
    if (!TOKEN.test(n)) throw new TypeError(`Headers: '${n}' is not a valid header name`);
    return n.toLowerCase();
  }
  #value(value: unknown): string {
    const v = normalizeValue(value);
    if (/[\0\r\n]/.test(v)) throw new TypeError('Headers: invalid header value');
    return v;
  }
  append(name: unknown, value: unknown): void {
    const n = this.#name(name);
    const list = this.#map.get(n);
    if (list) list.push(this.#value(value));
    else this.#map.set(n, [this.#value(value)]);
  }
  set(name: unknown, value: unknown): void {
    this.#map.set(this.#name(name), [this.#value(value)]);
  }
  delete(name: unknown): void {
    this.#map.delete(this.#name(name));
  }
  get(name: unknown): string | null {
    const list = this.#map.get(this.#name(name));
    return list === undefined ? null : list.join(', ');
  }
  has(name: unknown): boolean {
    return this.#map.has(this.#name(name));
  }
  getSetCookie(): string[] {
    return [...(this.#map.get('set-cookie') ?? [])];
  }
  forEach(callback: (value: string, name: string, headers: Headers) => void, thisArg: unknown = undefined): void {
    for (const [k, v] of this) callback.call(thisArg, v, k, this);
  }
  *entries(): IterableIterator<[string, string]> {
    for (const k of [...this.#map.keys()].sort()) {
      if (k === 'set-cookie') for (const v of this.#map.get(k)!) yield [k, v];
      else yield [k, this.#map.get(k)!.join(', ')];
    }
  }
  *keys(): IterableIterator<string> {
    for (const [k] of this.entries()) yield k;
  }
  *values(): IterableIterator<string> {
    for (const [, v] of this.entries()) yield v;
  }
  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }
}

type BodyInit = string | ArrayBuffer | ArrayBufferView | { toString(): string } | null | undefined;

/** A body kept whole: text or bytes, read once. */
class Body {
  #text: string | null = null;
  #bytes: Uint8Array | null = null;
  #used = false;
  constructor(init: BodyInit, headers: Headers) {
    if (init === null || init === undefined) return;
    if (typeof init === 'string') {
      this.#text = init;
      if (!headers.has('content-type')) headers.set('content-type', 'text/plain;charset=UTF-8');
    } else if (init instanceof ArrayBuffer || ArrayBuffer.isView(init)) {
      this.#bytes = bytesOf(init, 'body').slice();
    } else if (isSearchParams(init)) {
      this.#text = String(init);
      if (!headers.has('content-type')) headers.set('content-type', 'application/x-www-form-urlencoded;charset=UTF-8');
    } else {
      this.#text = String(init);
      if (!headers.has('content-type')) headers.set('content-type', 'text/plain;charset=UTF-8');
    }
  }
  get present(): boolean {
    return this.#text !== null || this.#bytes !== null;
  }
  get used(): boolean {
    return this.#used;
  }
  /** The body as text without consuming it (for sending and cloning). */
  peekText(): string | null {
    if (this.#text !== null) return this.#text;
    return this.#bytes === null ? null : new TextDecoder().decode(this.#bytes);
  }
  peekBytes(): Uint8Array | null {
    if (this.#bytes !== null) return this.#bytes;
    return this.#text === null ? null : utf8Encode(this.#text);
  }
  /** Consumes the body: the Fetch standard's one-read rule (a second read is a TypeError). */
  #take(): void {
    if (this.#used) throw new TypeError('the body has already been read');
    this.#used = true;
  }
  takeText(): string {
    this.#take();
    return this.peekText() ?? '';
  }
  takeBytes(): Uint8Array {
    this.#take();
    return (this.peekBytes() ?? new Uint8Array(0)).slice();
  }
}

/** What the Fetch standard's Body mixin adds to `Request` and `Response` ({@link mixBody}). */
interface BodyReaders {
  readonly bodyUsed: boolean;
  /** Always null: bodies are buffered, this runtime has no streams. */
  readonly body: null;
  text(): Promise<string>;
  json(): Promise<unknown>;
  arrayBuffer(): Promise<ArrayBuffer>;
  bytes(): Promise<Uint8Array>;
}

/**
 * Installs the body readers on `owner.prototype`, once for `Request` and once for `Response`, as the
 * Fetch standard's Body mixin: each class gets its own functions, and each of them brand-checks its
 * `this` through `find`, which reads the class's private field. Tool code may call these with any
 * `this` (a plain object, a Proxy of a real Response, the other class): that is a TypeError (a
 * rejected promise from the readers), and no getter or trap of that object ever runs.
 */
function mixBody(owner: { name: string; prototype: object }, find: (self: unknown) => Body | undefined): void {
  const bodyOf = (self: unknown, member: string): Body => {
    const body = find(self);
    if (body === undefined) throw new TypeError(`${owner.name}.${member}: 'this' is not a ${owner.name}`);
    return body;
  };
  // Promise-returning members reject instead of throwing, bad `this` included (as WebIDL has it).
  const reading = <T>(read: () => T): Promise<T> => {
    try {
      return Promise.resolve(read());
    } catch (e) {
      return Promise.reject(e as Error);
    }
  };
  const readers: BodyReaders & ThisType<unknown> = {
    get bodyUsed() {
      return bodyOf(this, 'bodyUsed').used;
    },
    get body() {
      bodyOf(this, 'body');
      return null;
    },
    text() {
      return reading(() => bodyOf(this, 'text').takeText());
    },
    json() {
      // A SyntaxError for bad JSON, as a rejection.
      return reading(() => JSON.parse(bodyOf(this, 'json').takeText()) as unknown);
    },
    arrayBuffer() {
      return reading(() => bodyOf(this, 'arrayBuffer').takeBytes().buffer as ArrayBuffer);
    },
    bytes() {
      return reading(() => bodyOf(this, 'bytes').takeBytes());
    },
  };
  const members = Object.getOwnPropertyDescriptors(readers);
  // Like class members: not enumerable, still configurable until the lockdown freezes the prototype.
  for (const key of Object.keys(members)) members[key]!.enumerable = false;
  Object.defineProperties(owner.prototype, members);
}

function isSearchParams(v: unknown): boolean {
  return typeof v === 'object' && v !== null && Object.prototype.toString.call(v) === '[object URLSearchParams]';
}

const METHODS = new Set(['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'PATCH']);

type RequestInit = { method?: unknown; headers?: unknown; body?: BodyInit; signal?: unknown; redirect?: unknown };

// Module-private helpers set by static blocks, so no global class carries them.
let requestBody: (r: Request) => string | null;
let responseFromReply: (reply: Reply) => Response;

// The body readers come from mixBody, in each class's static block.
export interface Request extends BodyReaders {}
export class Request {
  readonly #url: string;
  readonly #method: string;
  readonly #headers: Headers;
  readonly #body: Body;
  readonly #signal: AbortSignal;
  constructor(input: unknown, init: RequestInit | undefined = undefined) {
    const from = input instanceof Request ? input : undefined;
    const i = init ?? {};
    this.#url = from ? from.url : new URL(String(input)).href;
    const m = i.method !== undefined ? String(i.method) : from ? from.method : 'GET';
    const upper = m.toUpperCase();
    this.#method = METHODS.has(upper) ? upper : m;
    if (!TOKEN.test(this.#method) || ['CONNECT', 'TRACE', 'TRACK'].includes(upper)) throw new TypeError(`Request: '${m}' is not an allowed method`);
    this.#headers = new Headers(i.headers !== undefined ? i.headers : from?.headers);
    const body = i.body !== undefined ? i.body : from ? requestBody(from) : null;
    if (body !== null && body !== undefined && (this.#method === 'GET' || this.#method === 'HEAD')) throw new TypeError('Request: a GET or HEAD request cannot have a body');
    this.#body = new Body(body, this.#headers);
    const signal = i.signal !== undefined && i.signal !== null ? i.signal : from?.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw new TypeError('Request: signal must be an AbortSignal');
    this.#signal = signal ?? createSignal();
  }
  get url(): string {
    return this.#url;
  }
  get method(): string {
    return this.#method;
  }
  get headers(): Headers {
    return this.#headers;
  }
  get signal(): AbortSignal {
    return this.#signal;
  }
  clone(): Request {
    if (this.#body.used) throw new TypeError('Request.clone: the body has already been read');
    return new Request(this);
  }
  static {
    mixBody(Request, (self) => (typeof self === 'object' && self !== null && #body in self ? self.#body : undefined));
    requestBody = (r) => {
      if (r.#body.used) throw new TypeError('Request: the body has already been read');
      return r.#body.peekText();
    };
  }
}


type ResponseInit = { status?: unknown; statusText?: unknown; headers?: unknown };
type ResponseMeta = { url: string; redirected: boolean; type: string };
const NO_META: ResponseMeta = { url: '', redirected: false, type: 'default' };

export interface Response extends BodyReaders {}
export class Response {
  readonly #status: number;
  readonly #statusText: string;
  readonly #headers: Headers;
  readonly #body: Body;
  #meta: ResponseMeta = NO_META;
  constructor(body: BodyInit = null, init: ResponseInit | undefined = undefined) {
    const status = init?.status === undefined ? 200 : Number(init.status);
    if (!Number.isInteger(status) || status < 200 || status > 599) throw new RangeError(`Response: status ${String(init?.status)} is not in 200-599`);
    if (body !== null && body !== undefined && (status === 204 || status === 205 || status === 304)) throw new TypeError(`Response: a ${status} response cannot have a body`);
    this.#status = status;
    this.#statusText = init?.statusText === undefined ? '' : String(init.statusText);
    this.#headers = new Headers(init?.headers);
    this.#body = new Body(body, this.#headers);
  }
  get status(): number {
    return this.#status;
  }
  get statusText(): string {
    return this.#statusText;
  }
  get ok(): boolean {
    return this.#status >= 200 && this.#status < 300;
  }
  get headers(): Headers {
    return this.#headers;
  }
  get url(): string {
    return this.#meta.url;
  }
  get redirected(): boolean {
    return this.#meta.redirected;
  }
  get type(): string {
    return this.#meta.type;
  }
  clone(): Response {
    if (this.#body.used) throw new TypeError('Response.clone: the body has already been read');
    const copy = new Response(this.#body.peekBytes(), { status: this.#status, statusText: this.#statusText, headers: this.#headers });
    copy.#meta = this.#meta;
    return copy;
  }
  static json(data: unknown, init: ResponseInit | undefined = undefined): Response {
    const headers = new Headers(init?.headers);
    if (!headers.has('content-type')) headers.set('content-type', 'application/json');
    return new Response(JSON.stringify(data), { ...init, headers });
  }
  static error(): Response {
    const r = new Response(null, { status: 200 });
    r.#meta = { url: '', redirected: false, type: 'error' };
    return r;
  }
  static redirect(url: unknown, status: unknown = 302): Response {
    const s = Number(status);
    if (![301, 302, 303, 307, 308].includes(s)) throw new RangeError(`Response.redirect: ${s} is not a redirect status`);
    return new Response(null, { status: s, headers: { location: new URL(String(url)).href } });
  }
  static {
    mixBody(Response, (self) => (typeof self === 'object' && self !== null && #body in self ? self.#body : undefined));
    responseFromReply = (reply) => {
      const nullBody = reply.status === 204 || reply.status === 205 || reply.status === 304;
      const status = reply.status < 200 || reply.status > 599 ? 200 : reply.status;
      const r = new Response(nullBody ? null : reply.body, { status, statusText: reply.statusText, headers: reply.headers });
      r.#meta = { url: reply.url, redirected: reply.redirected, type: 'basic' };
      return r;
    };
  }
}

/** `fetch`: the same egress rules as `ctx.fetch`, a web `Response`. */
export async function fetch(input: unknown, init: RequestInit | undefined = undefined): Promise<Response> {
  const call = activeCall('fetch');
  const request = new Request(input, init);
  const signal = request.signal;
  signal.throwIfAborted();
  const headers: Record<string, string> = {};
  for (const [k, v] of request.headers) headers[k] = k in headers ? headers[k] + ', ' + v : v;
  const sent = sendRequest(call, 'fetch', request.url, request.method, headers, requestBody(request));
  const reply = await new Promise<Reply>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    sent.then(resolve, reject);
  });
  signal.throwIfAborted();
  return responseFromReply(reply);
}

/** `ctx.fetch`: the reply as it has always been given (plain headers, `body` as text), kept for the tools written against it. */
export function legacyFetch(call: CallState) {
  return async (url: unknown, init?: { method?: unknown; headers?: unknown; body?: unknown } | null) => {
    let args: [string, string, Record<string, string>, string | null];
    try {
      const i = init === undefined || init === null ? {} : init;
      args = [String(url), i.method === undefined ? 'GET' : String(i.method), legacyHeaders(i.headers), i.body === undefined || i.body === null ? null : String(i.body)];
    } catch (e) {
      throw new TypeError('ctx.fetch: bad request: ' + describe(e));
    }
    const res = await sendRequest(call, 'ctx.fetch', ...args);
    const body = res.body;
    return Object.freeze({
      status: res.status,
      statusText: res.statusText,
      ok: res.status >= 200 && res.status < 300,
      url: res.url,
      redirected: res.redirected,
      headers: Object.freeze(res.headers),
      body,
      text: () => Promise.resolve(body),
      json: async () => JSON.parse(body) as unknown,
    });
  };
}

function legacyHeaders(h: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (h === undefined || h === null) return out;
  if (h instanceof Headers) {
    for (const [k, v] of h) out[k] = v;
    return out;
  }
  if (Array.isArray(h)) {
    for (const pair of h as unknown[]) {
      if (!Array.isArray(pair) || pair.length !== 2) throw new TypeError('headers must be [name, value] pairs');
      out[String(pair[0])] = String(pair[1]);
    }
    return out;
  }
  if (typeof h !== 'object') throw new TypeError('headers must be an object');
  for (const k of Object.keys(h)) out[k] = String((h as Record<string, unknown>)[k]);
  return out;
}

export { DOMException };
