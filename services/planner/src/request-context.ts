import type { Request } from 'express';
import { RequestError, hasScope, type Principal, type Scope } from '@toolplane/core';
import { principalOf } from './auth.js';

export type { Principal } from '@toolplane/core';

/** Scopes the MCP and upstream routes check. Upstreams are an operator's business: admin only. */
export const SCOPES = {
  toolsRead: 'tools:read',
  upstreamsWrite: 'admin',
  callsWrite: 'calls:write',
} as const satisfies Record<string, Scope>;

/** The caller of a request, as resolved from its API key by the `authenticate` middleware in front. */
export async function authenticate(req: Request): Promise<Principal> {
  if (!req.res) throw new RequestError('UNAUTHORIZED', 'not authenticated');
  return principalOf(req.res);
}

/** The tenant of a request's caller. */
export async function tenantOf(req: Request): Promise<string> {
  return (await authenticate(req)).tenant;
}

/** Throws `FORBIDDEN` unless the principal holds `scope`. */
export function requireScope(principal: Principal, scope: Scope): void {
  if (!hasScope(principal, scope)) {
    throw new RequestError('FORBIDDEN', `this key lacks the ${scope} scope`);
  }
}
