import type { Request, RequestHandler } from 'express';
import { RequestError } from '@toolplane/core';

/** Media types a request body may have: JSON, also with a `+json` suffix (`application/merge-patch+json`). */
export const JSON_TYPES = ['application/json', 'application/*+json'];

/**
 * Refuses a request that has a body of any other type than JSON with 415 `UNSUPPORTED_MEDIA_TYPE`.
 * A page of another site can send `text/plain`, `application/x-www-form-urlencoded` or
 * `multipart/form-data` without asking the browser first (a "simple" request); `application/json`
 * makes the browser ask with a CORS preflight, which the planner never grants. Requests without a
 * body (no `Content-Length` above 0, no `Transfer-Encoding`) pass whatever they declare.
 */
export function requireJsonBody(): RequestHandler {
  return (req, _res, next) => {
    // Not `req.is`'s own body test: it counts `Content-Length: 0`, which clients send on bodiless POSTs.
    const length = Number(req.get('content-length') ?? 0);
    const hasBody = req.get('transfer-encoding') !== undefined || length !== 0;
    if (hasBody && !req.is(JSON_TYPES)) {
      return next(new RequestError('UNSUPPORTED_MEDIA_TYPE', 'request bodies must be JSON: send Content-Type: application/json'));
    }
    next();
  };
}

/** What {@link isCrossOrigin} reads: request headers by name, as express's `req.get`. */
export type HeaderSource = { get(name: string): string | undefined };

/**
 * Whether a browser sent the request on behalf of a page of another origin, judged from what
 * browsers add themselves and pages cannot forge:
 * - `Sec-Fetch-Site` (every current browser, every request, top-level navigations included):
 *   only `same-origin` and `none` (typed into the address bar, a bookmark) pass. `same-site` does
 *   not: another port of the same host (Grafana on :3000) is same-site.
 * - `Origin` (POSTs and other cross-origin requests): its host must be the `Host` the request was
 *   sent to; `null` (sandboxed frames, `file:`) never passes.
 * - `Referer`, only when neither is there (older browsers): its host must be the `Host`.
 *
 * Requests with none of these come from scripts and curl, which hold no cookie a page could borrow.
 * Behind a proxy that rewrites `Host`, same-origin browser requests would be refused: pass `Host` on.
 */
export function isCrossOrigin(req: HeaderSource): boolean {
  const host = req.get('host')?.toLowerCase();
  const site = req.get('sec-fetch-site')?.toLowerCase();
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return true;
  const origin = req.get('origin');
  if (origin !== undefined) return hostOf(origin) === undefined || hostOf(origin) !== host;
  if (site !== undefined) return false;
  const referer = req.get('referer');
  return referer !== undefined && hostOf(referer) !== host;
}

/**
 * Refuses with 403 `FORBIDDEN` the cross-origin requests (see {@link isCrossOrigin}) that `guarded`
 * picks. For pages a browser signs in to (`/admin/queues`, the console): their cookies ride along
 * on any request the browser sends, so whatever changes state or signs in must come from the page itself.
 */
export function refuseCrossOrigin(guarded: (req: Request) => boolean): RequestHandler {
  return (req, _res, next) => {
    if (guarded(req) && isCrossOrigin(req)) {
      return next(new RequestError('FORBIDDEN', 'cross-origin request refused: open this page directly, not from another site'));
    }
    next();
  };
}

/** Methods that change nothing; every other one is guarded. */
export function isStateChanging(req: Pick<Request, 'method'>): boolean {
  return !['GET', 'HEAD', 'OPTIONS'].includes(req.method);
}

function hostOf(url: string): string | undefined {
  try {
    const u = new URL(url);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.host.toLowerCase() : undefined;
  } catch {
    return undefined;
  }
}
