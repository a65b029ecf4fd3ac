import { timingSafeEqual, createHash } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import { DEFAULT_TENANT, RequestError, hasScope, type Principal, type Scope } from '@toolplane/core';
import type { PlannerDeps } from './deps.js';

/** Who every request acts as while auth is off (`TOOLPLANE_AUTH=off`): a local, single-tenant setup. */
const ANONYMOUS: Principal = { keyId: 'anonymous', tenant: DEFAULT_TENANT, scopes: ['admin'] };
export const ADMIN: Principal = { keyId: 'admin', tenant: DEFAULT_TENANT, scopes: ['admin'] };

export function bearerOf(req: Request): string | undefined {
  const header = req.get('authorization');
  const m = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  return m?.[1];
}

/** Constant-time comparison of secrets of any length. */
export function sameSecret(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

/**
 * Resolves the request's API key to a {@link Principal} in `res.locals.principal`. The admin key acts
 * as an admin of the default tenant; other keys as their tenant with their scopes. Unknown keys are
 * 401; keys are never logged. Only `authOff` lets requests through without a key.
 */
export function authenticate(deps: Pick<PlannerDeps, 'authOff' | 'adminKey' | 'apiKeys'>): RequestHandler {
  return async (req, res, next) => {
    if (deps.authOff) {
      res.locals.principal = ANONYMOUS;
      return next();
    }
    const token = bearerOf(req);
    if (!token) return next(new RequestError('UNAUTHORIZED', 'send an API key as Authorization: Bearer <key>'));
    if (deps.adminKey && sameSecret(token, deps.adminKey)) {
      res.locals.principal = ADMIN;
      return next();
    }
    const principal = await deps.apiKeys.verify(token);
    if (!principal) return next(new RequestError('UNAUTHORIZED', 'the API key is unknown or revoked'));
    res.locals.principal = principal;
    next();
  };
}

export function principalOf(res: Response): Principal {
  const p = res.locals.principal as Principal | undefined;
  if (!p) throw new RequestError('UNAUTHORIZED', 'not authenticated');
  return p;
}

/** Throws 403 `FORBIDDEN` unless the principal's key has `scope` (or `admin`). */
export function assertScope(principal: Principal, scope: Scope): void {
  if (!hasScope(principal, scope)) throw new RequestError('FORBIDDEN', `this API key lacks the '${scope}' scope`);
}

/** Middleware form of {@link assertScope}. */
export function requireScope(scope: Scope): RequestHandler {
  return (_req, res, next) => {
    assertScope(principalOf(res), scope);
    next();
  };
}

/**
 * Requests per second per API key, counted in Redis so the limit holds across planner replicas.
 * Over it: 429 `RATE_LIMITED` with `Retry-After`.
 */
export function rateLimitPerKey(deps: PlannerDeps, perSecond: number): RequestHandler {
  return async (_req, res, next) => {
    if (perSecond <= 0) return next();
    if (!(await deps.apiKeys.admitRequest(principalOf(res).keyId, perSecond))) {
      res.set('retry-after', '1');
      return next(new RequestError('RATE_LIMITED', `more than ${perSecond} requests per second with this API key`));
    }
    next();
  };
}

/** Parsed JSON nested deeper than this is refused: deep nesting only serves to exhaust stacks downstream. */
export function limitJsonDepth(maxDepth: number): RequestHandler {
  return (req, _res, next) => {
    next(depthOf(req.body, maxDepth) > maxDepth ? new RequestError('INVALID_REQUEST', `JSON is nested deeper than ${maxDepth} levels`) : undefined);
  };
}

function depthOf(value: unknown, cap: number): number {
  let max = 0;
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (d + 1 > max) max = d + 1;
    if (max > cap) return max;
    for (const child of Object.values(v)) stack.push([child, d + 1]);
  }
  return max;
}
