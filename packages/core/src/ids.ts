import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

/**
 * A call id: 10 chars of time then 16 of randomness, so ids sort by creation and never collide.
 * Crockford base32, lowercase; safe in URLs and Redis keys.
 */
export function newCallId(now = Date.now()): string {
  let time = '';
  let t = now;
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32]! + time;
    t = Math.floor(t / 32);
  }
  let rand = '';
  for (const b of randomBytes(16)) rand += ALPHABET[b % 32]!;
  return time + rand;
}

export const CALL_ID_PATTERN = /^[0-9a-z]{26}$/;
