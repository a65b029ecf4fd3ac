import { z } from 'zod';

/** What an API key may do. `admin` implies every other scope and sees every tenant. */
export const Scope = z.enum([
  'tools:read',
  'tools:write',
  'calls:read',
  'calls:write',
  'calls:approve',
  'runs:read',
  'runs:write',
  'secrets:write',
  /** Read the tenant's schedules. */
  'schedules:read',
  /** Create, change and delete the tenant's schedules (each run is a call made by the schedule). */
  'schedules:write',
  /** Read and rotate the tenant's webhook signing secret. */
  'webhooks:write',
  'admin',
]);
export type Scope = z.infer<typeof Scope>;

/** A tenant owns tools, calls, runs and secrets; nobody else sees them. */
export const TenantName = z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'letters, digits, _ and - only, at most 64');

/** The tenant of every request while auth is off, and of calls made before keys existed. */
export const DEFAULT_TENANT = 'default';

/** Who a request acts as. */
export type Principal = { keyId: string; tenant: string; scopes: readonly Scope[] };

export function hasScope(p: Principal, scope: Scope): boolean {
  return p.scopes.includes('admin') || p.scopes.includes(scope);
}

/** Admins see every tenant's resources; everyone else only their own. */
export function canSee(p: Principal, tenant: string | undefined): boolean {
  return p.scopes.includes('admin') || (tenant ?? DEFAULT_TENANT) === p.tenant;
}
