import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** What a Standard Webhooks secret looks like: `whsec_` and the base64 of the key bytes. */
export const SECRET_PREFIX = 'whsec_';
/** Bytes of a new secret's key; Standard Webhooks asks for 24 to 64. */
const SECRET_BYTES = 32;
/**
 * How far a delivery's `webhook-timestamp` may be from the receiver's clock before
 * {@link verifyWebhook} refuses it: a captured delivery cannot be replayed later than this.
 */
export const DEFAULT_TOLERANCE_S = 300;

/** A fresh `whsec_<base64>` secret. */
export function newWebhookSecret(): string {
  return SECRET_PREFIX + randomBytes(SECRET_BYTES).toString('base64');
}

function keyOf(secret: string): Buffer {
  if (!secret.startsWith(SECRET_PREFIX)) throw new Error(`a webhook secret starts with ${SECRET_PREFIX}`);
  return Buffer.from(secret.slice(SECRET_PREFIX.length), 'base64');
}

/** One `v1,<base64 HMAC-SHA256>` signature over `${id}.${timestamp}.${body}`, the Standard Webhooks scheme. */
export function signWebhook(secret: string, id: string, timestampS: number, body: string): string {
  const mac = createHmac('sha256', keyOf(secret)).update(`${id}.${timestampS}.${body}`).digest('base64');
  return `v1,${mac}`;
}

/** The three Standard Webhooks headers of one delivery attempt. */
export type WebhookHeaders = {
  'webhook-id': string;
  'webhook-timestamp': string;
  /** One signature per secret, space-separated: during a rotation's grace period, the new and the old. */
  'webhook-signature': string;
};

/**
 * Headers of one delivery attempt, signed with every secret given (the current one first). The id
 * stays the same across the attempts of one delivery (receivers deduplicate on it); the timestamp is
 * the attempt's own, so a retry an hour later still passes the receiver's replay window.
 */
export function webhookHeaders(secrets: readonly string[], id: string, body: string, nowMs = Date.now()): WebhookHeaders {
  const timestamp = Math.floor(nowMs / 1000);
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': secrets.map((s) => signWebhook(s, id, timestamp, body)).join(' '),
  };
}

/**
 * Whether a delivery is genuine: one of the `v1` signatures in `webhook-signature` matches `secret`,
 * and the timestamp is within `toleranceS` of `nowMs`. Compared in constant time. The receiver side
 * of {@link webhookHeaders}; the README shows the same check in a few lines of `node:crypto`.
 */
export function verifyWebhook(
  secret: string,
  headers: Record<string, string | string[] | undefined>,
  body: string,
  opts: { toleranceS?: number; nowMs?: number } = {},
): boolean {
  const one = (name: string) => {
    const v = headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const id = one('webhook-id');
  const timestamp = Number(one('webhook-timestamp'));
  const signatures = one('webhook-signature');
  if (!id || !Number.isInteger(timestamp) || !signatures) return false;
  const nowS = (opts.nowMs ?? Date.now()) / 1000;
  if (Math.abs(nowS - timestamp) > (opts.toleranceS ?? DEFAULT_TOLERANCE_S)) return false;
  const expected = Buffer.from(signWebhook(secret, id, timestamp, body));
  return signatures.split(' ').some((s) => {
    const given = Buffer.from(s);
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}
