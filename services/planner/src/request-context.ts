import type { Request } from 'express';
import { RequestError } from '@toolplane/core';

/** Who is calling: the tenant their calls are filed under and what they may do. */
export type Principal = { tenant: string; scopes: readonly string[] };

/** Scopes the MCP and upstream routes check. `*` grants every scope. */
export const SCOPES = {
  toolsRead: 'tools:read',
  toolsWrite: 'tools:write',
  callsWrite: 'calls:write',
} as const;

/**
 * The caller of a request. The one place authentication plugs in: until API keys are wired,
 * every request is the `default` tenant with every scope.
 */
export async function authenticate(_req: Request): Promise<Principal> {
  return { tenant: 'default', scopes: ['*'] };
}

/** The tenant of a request's caller. */
export async function tenantOf(req: Request): Promise<string> {
  return (await authenticate(req)).tenant;
}

/** Throws `FORBIDDEN` unless the principal holds `scope`. */
export function requireScope(principal: Principal, scope: string): void {
  if (!principal.scopes.includes('*') && !principal.scopes.includes(scope)) {
    throw new RequestError('FORBIDDEN', `this key lacks the ${scope} scope`);
  }
}
