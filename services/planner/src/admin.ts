import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { createBullBoard } from '@bull-board/api';
import { ExpressAdapter } from '@bull-board/express';
import { Router, type Request, type Response, type NextFunction } from 'express';
import { RequestError } from '@toolplane/core';
import { sameSecret } from './auth.js';
import { isStateChanging, refuseCrossOrigin } from './browser-guards.js';
import { readCookie, sessionFields, signSession, startSession, verifySession, type SessionCookie } from './browser-session.js';
import type { PlannerDeps } from './deps.js';

/** Where the queue dashboard is mounted. */
export const ADMIN_QUEUES_PATH = '/admin/queues';

const COOKIE = 'toolplane_admin';
const SESSION_MS = 12 * 3_600_000;

/**
 * `/admin/queues`: Bull Board over every tool queue, behind `TOOLPLANE_ADMIN_KEY`.
 *
 * - Unset key (only possible with `TOOLPLANE_AUTH=off`): 403 `FORBIDDEN` for everyone.
 * - `Authorization: Bearer <key>` (scripts, curl).
 * - Browsers, which cannot send that header from the address bar: open `/admin/queues?key=<key>`
 *   once; the answer sets an HttpOnly, SameSite=Strict cookie and redirects to the same page without
 *   the key ({@link startSession}). The cookie holds an expiry and an HMAC of it under the key.
 * - Cross-origin requests that sign in (`?key=`) or change state are refused with 403 `FORBIDDEN`
 *   ({@link refuseCrossOrigin}): another site can neither log a browser in nor act with its cookie.
 *
 * The board is read-only: removing, promoting or retrying jobs behind the API's back would skip
 * Toolplane's own bookkeeping (cancel, retry and the audit trail); use `/v1/calls/{id}/…` for those.
 * The queue list is read from the registry on each request, so newly registered tools appear on the
 * board's next poll.
 */
export function adminRouter(deps: Pick<PlannerDeps, 'adminKey' | 'registry' | 'calls'>): Router {
  const router = Router();
  router.use(refuseCrossOrigin((req) => isStateChanging(req) || req.query.key !== undefined));
  router.use(requireAdminKey(deps.adminKey));

  const serverAdapter = new ExpressAdapter().setBasePath(ADMIN_QUEUES_PATH);
  const board = createBullBoard({
    queues: [],
    serverAdapter,
    options: { uiConfig: { boardTitle: 'Toolplane queues' } },
  });
  let shown = '';
  router.use(async (_req, _res, next) => {
    const names = (await deps.registry.names()).sort();
    if (names.join('\n') !== shown) {
      board.replaceQueues(names.map((tool) => new BullMQAdapter(deps.calls.queues.queue(tool), { displayName: tool, readOnlyMode: true })));
      shown = names.join('\n');
    }
    next();
  });
  router.use(serverAdapter.getRouter() as Router);
  return router;
}

/** The dashboard's session: signed with the admin key, sent to its own path only. */
const SESSION: SessionCookie = { name: COOKIE, purpose: 'toolplane-admin-session', path: ADMIN_QUEUES_PATH, ttlMs: SESSION_MS };

function requireAdminKey(adminKey: string | undefined) {
  return (req: Request, res: Response, next: NextFunction) => {
    if (!adminKey) {
      throw new RequestError('FORBIDDEN', 'the queue dashboard is off: set TOOLPLANE_ADMIN_KEY to turn it on');
    }
    const bearer = /^Bearer (.+)$/i.exec(req.get('authorization') ?? '')?.[1];
    if (bearer !== undefined && sameSecret(bearer, adminKey)) return next();
    const session = sessionFields(readCookie(req, COOKIE), 0);
    if (session && verifySession(SESSION, adminKey, session)) return next();
    const key = req.query.key;
    if (typeof key === 'string' && sameSecret(key, adminKey)) {
      return startSession(req, res, SESSION, signSession(SESSION, adminKey, []));
    }
    res.set('WWW-Authenticate', 'Bearer realm="toolplane-admin"');
    throw new RequestError('UNAUTHORIZED', 'the queue dashboard needs the admin key: Authorization: Bearer <key>, or ?key=<key> once in a browser');
  };
}
