import express, { Router, type Request, type RequestHandler, type Response } from 'express';
import helmet from 'helmet';
import { z } from 'zod';
import { CONSOLE_INDEX, consoleAssetsDir } from '@toolplane/console';
import { RequestError, type Principal } from '@toolplane/core';
import { ADMIN, authenticate, rateLimitPerKey, sameSecret } from './auth.js';
import { isStateChanging, refuseCrossOrigin } from './browser-guards.js';
import { readCookie, sessionFields, signSession, startSession, verifySession, type SessionCookie } from './browser-session.js';
import type { PlannerDeps } from './deps.js';

/** Where the web console is served. */
export const CONSOLE_PATH = '/console';

/**
 * The console's session: one API key's, signed with the admin key (for the admin key) or with the
 * stored hash of the API key's secret, so revoking the key ends its sessions. Sent to /console only.
 */
const SESSION: SessionCookie = { name: 'toolplane_console', purpose: 'toolplane-console-session', path: CONSOLE_PATH, ttlMs: 12 * 3_600_000 };

const SignInBody = z.object({ key: z.string().min(1).max(512) }).strict();

/**
 * `/console`: the web console (`@toolplane/console`'s static files) and the API it reads.
 *
 * - Every page address (`/console`, `/console/calls/…`) answers the same `index.html`; the app draws
 *   the page the path names. `/console/assets/…` are the script and stylesheet.
 * - Sign-in as on `/admin/queues`: `?key=<key>` once sets an HttpOnly, SameSite=Strict cookie and
 *   redirects to the address without the key; or the sign-in form posts the key as JSON to
 *   `/console/api/session`, so it never enters the address bar at all. Any API key works: a tenant
 *   key sees its tenant, an admin key every tenant.
 * - `/console/api/v1/…` is the /v1 API (`apiRouters`, the same routers) authenticated by that
 *   cookie instead of `Authorization`, with the same scopes, tenant walls and rate limit per key.
 *   Cross-origin sign-ins and state changes are refused ({@link refuseCrossOrigin}), and the
 *   cookie never goes to /v1 itself, so the API's bearer-only stance is unchanged.
 * - With `TOOLPLANE_AUTH=off` the console, like the API, acts as an admin without signing in.
 */
export function consoleRouter(deps: PlannerDeps, apiRouters: Router[]): Router {
  const router = Router();
  router.use(refuseCrossOrigin((req) => isStateChanging(req) || req.query.key !== undefined));
  router.use(
    // The app's own files only: no inline script, nothing from another origin (the console works offline).
    helmet({
      contentSecurityPolicy: {
        useDefaults: false,
        directives: {
          'default-src': ["'self'"],
          'script-src': ["'self'"],
          'style-src': ["'self'"],
          'img-src': ["'self'", 'data:'],
          'connect-src': ["'self'"],
          'object-src': ["'none'"],
          'base-uri': ["'none'"],
          'form-action': ["'self'"],
          'frame-ancestors': ["'none'"],
        },
      },
    }),
  );
  router.use('/assets', express.static(consoleAssetsDir(), { index: false, fallthrough: false }));

  router.post('/api/session', async (req, res) => {
    const body = SignInBody.safeParse(req.body ?? {});
    const signed = body.success ? await sessionFor(deps, body.data.key) : undefined;
    if (!signed) throw new RequestError('UNAUTHORIZED', 'the key is unknown or revoked');
    res.cookie(SESSION.name, signed, { httpOnly: true, sameSite: 'strict', secure: req.secure, path: SESSION.path, maxAge: SESSION.ttlMs });
    res.status(204).end();
  });
  router.delete('/api/session', (req, res) => {
    res.clearCookie(SESSION.name, { httpOnly: true, sameSite: 'strict', secure: req.secure, path: SESSION.path });
    res.status(204).end();
  });
  router.use('/api', (_req, res, next) => {
    res.set('cache-control', 'no-store');
    next();
  });
  router.use('/api/v1', sessionAuth(deps), rateLimitPerKey(deps, deps.apiRateLimitPerS), ...apiRouters);
  router.use('/api', (req, _res, next) => next(new RequestError('NOT_FOUND', `no route for ${req.method} ${req.baseUrl}${req.path}`)));

  router.get('/{*page}', async (req, res) => {
    const key = req.query.key;
    if (typeof key === 'string') {
      const signed = await sessionFor(deps, key);
      if (signed) return startSession(req, res, SESSION, signed);
      // A wrong key: back to the sign-in form, still without the key in the address.
      return void res.redirect(303, `${CONSOLE_PATH}?signin=failed`);
    }
    res.set('cache-control', 'no-store');
    res.sendFile(CONSOLE_INDEX, { root: consoleAssetsDir() });
  });
  return router;
}

/** A signed session cookie value for `key`, or undefined when the key is not a valid one. */
async function sessionFor(deps: Pick<PlannerDeps, 'adminKey' | 'apiKeys' | 'authOff'>, key: string): Promise<string | undefined> {
  if (deps.authOff) return undefined;
  if (deps.adminKey && sameSecret(key, deps.adminKey)) return signSession(SESSION, deps.adminKey, [ADMIN.keyId]);
  const principal = await deps.apiKeys.verify(key);
  const stored = principal ? await deps.apiKeys.sessionSecret(principal.keyId) : undefined;
  return stored ? signSession(SESSION, stored.secret, [stored.principal.keyId]) : undefined;
}

/** Resolves the session cookie to the key's {@link Principal} (`res.locals.principal`), or 401. */
function sessionAuth(deps: PlannerDeps): RequestHandler {
  const open = authenticate(deps);
  return async (req: Request, res: Response, next) => {
    if (deps.authOff) return open(req, res, next);
    const principal = await principalOfSession(deps, readCookie(req, SESSION.name));
    if (!principal) return next(new RequestError('UNAUTHORIZED', 'sign in to the console: open /console?key=<key>'));
    res.locals.principal = principal;
    return next();
  };
}

async function principalOfSession(deps: PlannerDeps, cookie: string | undefined): Promise<Principal | undefined> {
  const session = sessionFields(cookie, 1);
  if (!session) return undefined;
  const keyId = session.fields[0]!;
  if (keyId === ADMIN.keyId) return deps.adminKey && verifySession(SESSION, deps.adminKey, session) ? ADMIN : undefined;
  const stored = await deps.apiKeys.sessionSecret(keyId);
  return stored && verifySession(SESSION, stored.secret, session) ? stored.principal : undefined;
}
