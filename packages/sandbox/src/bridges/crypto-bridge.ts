import { createHash, createHmac, randomFillSync } from 'node:crypto';

/** The most random bytes one request may ask for (Web Crypto's `getRandomValues` limit). */
const MAX_RANDOM_BYTES = 65_536;
/** The most bytes hashed in one request; the runtime checks the same cap before copying. */
const MAX_HASH_BYTES = 4 * 1024 * 1024;
const HASHES: Record<string, string> = { 'SHA-1': 'sha1', 'SHA-256': 'sha256', 'SHA-384': 'sha384', 'SHA-512': 'sha512' };

/**
 * The isolate runtime's `crypto` on the host, called synchronously with copied arguments; returns a
 * fresh ArrayBuffer that isolated-vm copies into the isolate. No state: every random byte comes from
 * the OS generator, so no call can learn or steer what another call gets.
 *
 * - `random(n)`: n random bytes.
 * - `digest(hash, data)`, `hmac(hash, key, data)`: SHA-1/256/384/512.
 */
export function hostCrypto(op: unknown, a: unknown, b: unknown, c: unknown): ArrayBuffer {
  switch (op) {
    case 'random': {
      if (typeof a !== 'number' || !Number.isInteger(a) || a < 0 || a > MAX_RANDOM_BYTES) throw new TypeError('bad random length');
      const out = new ArrayBuffer(a);
      randomFillSync(new Uint8Array(out));
      return out;
    }
    case 'digest':
      return copyOut(createHash(hashOf(a)).update(bytes(b)).digest());
    case 'hmac':
      return copyOut(createHmac(hashOf(a), bytes(b)).update(bytes(c)).digest());
    default:
      throw new TypeError('unknown crypto operation');
  }
}

function hashOf(name: unknown): string {
  const hash = typeof name === 'string' ? HASHES[name] : undefined;
  if (hash === undefined) throw new TypeError('unsupported hash');
  return hash;
}

function bytes(v: unknown): Uint8Array {
  if (!(v instanceof ArrayBuffer) || v.byteLength > MAX_HASH_BYTES) throw new TypeError('bad data');
  return new Uint8Array(v);
}

function copyOut(buf: Buffer): ArrayBuffer {
  const out = new ArrayBuffer(buf.length);
  new Uint8Array(out).set(buf);
  return out;
}
