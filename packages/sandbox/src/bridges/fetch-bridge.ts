import { lookup as dnsLookup } from 'node:dns/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { SpanKind, SpanStatusCode, trace, type Attributes, type Context } from '@opentelemetry/api';
import { hostOf, isPrivateAddress, matchEgress, type EgressRule, type NetworkList } from './egress.js';

/** What tool code asked for, as the runner serialized it. Checked here again: it is hostile input. */
export type FetchRequest = { url: string; method: string; headers: Record<string, string>; body: string | null };

/** What goes back into the isolate, as JSON. */
export type FetchReply =
  | { status: number; statusText: string; url: string; redirected: boolean; headers: Record<string, string>; body: string }
  | { denied: true; message: string }
  | { error: string };

/** Resolves a host name to its addresses; swapped in tests and for custom resolvers. */
export type HostResolver = (host: string) => Promise<string[]>;

export type FetchLimits = {
  rules: readonly EgressRule[];
  /** Absolute `performance.now()` time the request must finish by: the call's deadline. */
  deadline: number;
  signal: AbortSignal;
  maxResponseBytes: number;
  resolve: HostResolver;
  /**
   * Private ranges the operator opened (`TOOLPLANE_ALLOW_PRIVATE_NETWORKS`). Any other private,
   * loopback, link-local or reserved address is refused, whatever the tool's egress list says.
   * @default none
   */
  allowPrivate?: NetworkList;
  /** A 429 or 503 carried `Retry-After`; milliseconds from now. */
  onRetryAfter?: (ms: number) => void;
  /** Trace context of the call (the `sandbox.run` span): the fetch's span becomes its child. */
  trace?: Context;
  /**
   * Follow redirects (each hop checked again). Off for webhook deliveries: a receiver answers where
   * it was asked, and a 3xx is its answer.
   * @default true
   */
  followRedirects?: boolean;
};

export const MAX_REDIRECTS = 5;
const MAX_URL_LENGTH = 8192;
const MAX_REQUEST_BODY_BYTES = 1024 * 1024;
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
/** Headers Node computes itself or that would let the tool smuggle a different request. */
const FORBIDDEN_HEADERS = new Set(['host', 'connection', 'content-length', 'transfer-encoding', 'keep-alive', 'upgrade', 'te', 'trailer', 'expect', 'proxy-authorization']);
/** Dropped when a redirect leaves the origin, as browsers do. */
const CREDENTIAL_HEADERS = new Set(['authorization', 'cookie']);

export const defaultResolver: HostResolver = async (host) =>
  (await dnsLookup(host, { all: true, verbatim: true })).map((a) => a.address);

class Denied extends Error {}

/**
 * Runs one `ctx.fetch` on the host: allowlist, scheme and port checked on every hop, redirects
 * followed by hand (at most {@link MAX_REDIRECTS}), DNS resolved here and the connection pinned to
 * the checked address (no rebinding between check and connect), body capped, time bounded by the
 * call's deadline. Every hop's addresses must be public or in {@link FetchLimits.allowPrivate};
 * if one answer of several is not, the hop is refused rather than pinned to another answer.
 * Never throws: every outcome is a {@link FetchReply}.
 */
export async function hostFetch(req: FetchRequest, limits: FetchLimits): Promise<FetchReply> {
  // The context is handed in: host callbacks from an isolate do not carry the caller's async context.
  const span = tracer.startSpan('ctx.fetch', { kind: SpanKind.CLIENT, attributes: fetchAttributes(req) }, limits.trace);
  try {
    const reply = await fetchChecked(req, limits);
    if ('status' in reply) {
      span.setAttribute('http.response.status_code', reply.status);
      if (reply.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
    } else {
      span.setAttribute('toolplane.fetch.outcome', 'denied' in reply ? 'denied' : 'error');
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
    return reply;
  } finally {
    span.end();
  }
}

const tracer = trace.getTracer('@toolplane/sandbox');

/**
 * Method, host and port of a request, for its span. Never the path, query or headers: those carry
 * arguments and credentials of the tool's caller.
 */
function fetchAttributes(req: FetchRequest): Attributes {
  const method = String(req?.method).toUpperCase();
  const attributes: Attributes = { 'http.request.method': METHODS.has(method) ? method : '_OTHER' };
  try {
    const url = new URL(String(req?.url));
    attributes['server.address'] = hostOf(url);
    attributes['server.port'] = Number(url.port) || (url.protocol === 'https:' ? 443 : 80);
  } catch {
    // An invalid URL is refused below; its span says so without repeating it.
  }
  return attributes;
}

async function fetchChecked(req: FetchRequest, limits: FetchLimits): Promise<FetchReply> {
  try {
    return await follow(checkRequest(req), limits);
  } catch (err: unknown) {
    if (err instanceof Denied) return { denied: true, message: err.message };
    if (limits.signal.aborted) return { error: 'the call ran out of time' };
    return { error: err instanceof Error ? err.message.slice(0, 500) : 'request failed' };
  }
}

function checkRequest(req: FetchRequest): FetchRequest {
  if (typeof req?.url !== 'string' || req.url.length > MAX_URL_LENGTH) throw new Error(`url must be a string of at most ${MAX_URL_LENGTH} characters`);
  const method = String(req.method).toUpperCase();
  if (!METHODS.has(method)) throw new Error(`method ${method.slice(0, 20)} is not allowed`);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers ?? {})) {
    const name = k.toLowerCase();
    if (FORBIDDEN_HEADERS.has(name)) continue;
    if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(name) || /[\r\n\0]/.test(String(v))) throw new Error(`invalid header ${name.slice(0, 40)}`);
    headers[name] = String(v);
  }
  if (req.body !== null && typeof req.body !== 'string') throw new Error('body must be a string');
  if (req.body !== null && Buffer.byteLength(req.body) > MAX_REQUEST_BODY_BYTES) throw new Error('request body is too large');
  if (req.body !== null && (method === 'GET' || method === 'HEAD')) throw new Error(`a ${method} request cannot have a body`);
  return { url: req.url, method, headers, body: req.body };
}

async function follow(first: FetchRequest, limits: FetchLimits): Promise<FetchReply> {
  let req = first;
  let url = parseUrl(req.url);
  for (let hop = 0; ; hop++) {
    const address = await allowedAddress(url, limits);
    const res = await send(url, address, req, limits);
    const location = res.headers.location;
    if (limits.followRedirects !== false && res.statusCode && [301, 302, 303, 307, 308].includes(res.statusCode) && location) {
      res.resume();
      if (hop >= MAX_REDIRECTS) throw new Error(`more than ${MAX_REDIRECTS} redirects`);
      const next = parseUrl(location, url);
      const headers = { ...req.headers };
      if (next.origin !== url.origin) for (const h of CREDENTIAL_HEADERS) delete headers[h];
      const toGet = res.statusCode === 303 || ((res.statusCode === 301 || res.statusCode === 302) && req.method === 'POST');
      req = toGet ? { url: next.href, method: 'GET', headers, body: null } : { ...req, url: next.href, headers };
      url = next;
      continue;
    }
    const body = await readBody(res, limits.maxResponseBytes);
    const status = res.statusCode ?? 0;
    if ((status === 429 || status === 503) && limits.onRetryAfter) {
      const ms = retryAfterMs(res.headers['retry-after']);
      if (ms !== undefined) limits.onRetryAfter(ms);
    }
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
    return { status, statusText: res.statusMessage ?? '', url: url.href, redirected: hop > 0, headers, body };
  }
}

function parseUrl(raw: string, base?: URL): URL {
  try {
    return new URL(raw, base);
  } catch {
    throw new Error('invalid url');
  }
}

/** Checks the URL against the rules and returns the one address the connection may use. */
async function allowedAddress(url: URL, limits: FetchLimits): Promise<string> {
  const match = matchEgress(limits.rules, url);
  if (!match.ok) throw new Denied(match.reason);
  const host = hostOf(url);
  let addresses: string[];
  if (isIP(host)) addresses = [host];
  else {
    try {
      addresses = await limits.resolve(host);
    } catch {
      throw new Error(`cannot resolve ${host}`);
    }
  }
  if (addresses.length === 0) throw new Error(`cannot resolve ${host}`);
  // One closed answer is enough to refuse: another client (or a retry) may get that answer, and a
  // name that points into a private network at all is refused rather than steered around. The
  // message never names the address: internal DNS answers are not the tenant's to read.
  if (addresses.some((a) => isPrivateAddress(a) && limits.allowPrivate?.includes(a) !== true)) {
    throw new Denied(
      isIP(host)
        ? `${host} is a private or loopback address the operator has not opened`
        : `${host} resolves to a private or loopback address the operator has not opened`,
    );
  }
  // The connection goes to this address and nowhere else (see `send`): no second lookup to rebind.
  return addresses[0]!;
}

function send(url: URL, address: string, req: FetchRequest, limits: FetchLimits): Promise<IncomingMessage> {
  const pinned: LookupFunction = (_host, options, callback) => {
    const family = isIP(address);
    if ((options as { all?: boolean }).all) (callback as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address, family }]);
    else callback(null, address, family);
  };
  const timeoutMs = Math.max(1, Math.ceil(limits.deadline - performance.now()));
  return new Promise((resolve, reject) => {
    const request = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, {
      method: req.method,
      headers: req.headers,
      lookup: pinned,
      signal: AbortSignal.any([limits.signal, AbortSignal.timeout(timeoutMs)]),
      agent: false,
    });
    request.once('response', resolve);
    request.once('error', reject);
    request.end(req.body ?? undefined);
  });
}

function readBody(res: IncomingMessage, maxBytes: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        reject(new Error(`response body is larger than ${maxBytes} bytes`));
        res.destroy();
        return;
      }
      chunks.push(chunk);
    });
    res.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.once('error', reject);
    res.once('aborted', () => reject(new Error('response aborted')));
  });
}

/** `Retry-After` as delay-seconds or an HTTP date, in milliseconds; capped at one day. */
export function retryAfterMs(header: string | string[] | undefined): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (!value) return undefined;
  const ms = /^\d+$/.test(value.trim()) ? Number(value.trim()) * 1000 : Date.parse(value) - Date.now();
  if (!Number.isFinite(ms)) return undefined;
  return Math.min(Math.max(0, ms), 86_400_000);
}
