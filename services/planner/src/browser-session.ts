import { createHmac } from 'node:crypto';
import type { Request, Response } from 'express';
import { sameSecret } from './auth.js';

/**
 * Signed session cookies for the pages a browser signs in to with an API key (`/admin/queues`, the
 * console). A browser cannot send `Authorization` from the address bar, so `?key=<key>` is opened
 * once; the answer sets an HttpOnly, SameSite=Strict cookie and redirects to the same address
 * without the key (it stays out of the address bar and the history).
 *
 * The cookie holds `<fields…>.<expiry>.<mac>`: an HMAC, under a secret only the server has for that
 * key, of a purpose string, the fields and the expiry; never the key. No server state, valid on every
 * planner replica, void as soon as the key changes or is revoked.
 */
export type SessionCookie = {
  /** Cookie name. */
  name: string;
  /** Keeps one page's sessions from being replayed on another. */
  purpose: string;
  /** Path the browser sends it to. */
  path: string;
  /** How long a session lasts. */
  ttlMs: number;
};

/** The cookie value for `fields` (no `.` in them), signed with `secret`, expiring `ttlMs` from now. */
export function signSession(cookie: SessionCookie, secret: string, fields: readonly string[]): string {
  const expires = Date.now() + cookie.ttlMs;
  return [...fields, String(expires), mac(cookie, secret, fields, expires)].join('.');
}

/** The fields of a cookie value of the right shape that has not expired; its MAC is checked by {@link verifySession}. */
export function sessionFields(value: string | undefined, count: number): { fields: string[]; expires: number; mac: string } | undefined {
  const parts = (value ?? '').split('.');
  if (parts.length !== count + 2) return undefined;
  const expires = Number(parts[count]);
  const signature = parts[count + 1]!;
  if (!signature || !Number.isSafeInteger(expires) || expires <= Date.now()) return undefined;
  return { fields: parts.slice(0, count), expires, mac: signature };
}

/** True when `session` (from {@link sessionFields}) was signed with `secret`. */
export function verifySession(cookie: SessionCookie, secret: string, session: { fields: string[]; expires: number; mac: string }): boolean {
  return sameSecret(session.mac, mac(cookie, secret, session.fields, session.expires));
}

/** Sets the session cookie and redirects (303) to the address the request came to, without `?key=`. */
export function startSession(req: Request, res: Response, cookie: SessionCookie, value: string): void {
  res.cookie(cookie.name, value, { httpOnly: true, sameSite: 'strict', secure: req.secure, path: cookie.path, maxAge: cookie.ttlMs });
  const url = new URL(req.originalUrl, 'http://placeholder');
  url.searchParams.delete('key');
  res.redirect(303, url.pathname + url.search);
}

/** A cookie of the request by name, or undefined. */
export function readCookie(req: Request, name: string): string | undefined {
  for (const part of (req.get('cookie') ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

function mac(cookie: SessionCookie, secret: string, fields: readonly string[], expires: number): string {
  return createHmac('sha256', secret).update(`${cookie.purpose}:${[...fields, expires].join(':')}`).digest('base64url');
}
