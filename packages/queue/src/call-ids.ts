import { createHash } from 'node:crypto';

/**
 * The id of the call a tenant makes with an idempotency key: the same tenant, tool and key always
 * give the same id (so duplicates meet on one job), another tenant's same key never does.
 */
export function idempotentCallId(tenant: string, tool: string, key: string): string {
  const digest = createHash('sha256').update(`${tenant}\0${tool}\0${key}`).digest();
  const alphabet = '0123456789abcdefghjkmnpqrstvwxyz';
  let out = 'i';
  for (let i = 0; i < 25; i++) out += alphabet[digest[i]! % 32]!;
  return out;
}

/** Whether a call id was derived from an idempotency key ({@link idempotentCallId}); fresh ids never start with `i`. */
export function isIdempotentCallId(id: string): boolean {
  return id.startsWith('i') && id.length === 26;
}
