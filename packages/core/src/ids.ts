import { randomFillSync } from 'node:crypto';

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

/** Random bytes drawn 4 KiB at a time: one `randomBytes(16)` per id cost ~20 µs of a planner's request. */
const pool = Buffer.alloc(4096);
let used = pool.length;

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
  if (used + 16 > pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  let rand = '';
  // 256 is a multiple of 32: each character is uniform.
  for (let i = used; i < used + 16; i++) rand += ALPHABET[pool[i]! % 32]!;
  used += 16;
  return time + rand;
}

export const CALL_ID_PATTERN = /^[0-9a-z]{26}$/;
