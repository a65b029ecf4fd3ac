/**
 * `crypto.getRandomValues`, `crypto.randomUUID` and `crypto.subtle` (`digest`; HMAC `importKey`,
 * `exportKey`, `sign`, `verify`). Randomness and hashing come from the host (`crypto` bridge,
 * synchronous, bytes copied in and out): the isolate keeps no generator state any call could learn
 * from or steer. Key bytes live in a private field of a frozen `CryptoKey`.
 */
import { hostBridges } from './call.js';
import { DOMException } from './events.js';
import { bytesOf } from './encoding.js';

/** Bytes one `getRandomValues` may fill (the Web Crypto limit). */
const MAX_RANDOM_BYTES = 65_536;
/** Largest input hashed at once: the host hashes synchronously, on its event loop. */
export const MAX_DIGEST_BYTES = 4 * 1024 * 1024;
const HASHES: Record<string, string> = { 'SHA-1': 'sha1', 'SHA-256': 'sha256', 'SHA-384': 'sha384', 'SHA-512': 'sha512' };

function host(op: string, ...args: unknown[]): ArrayBuffer {
  const out = hostBridges().crypto.applySync(undefined, [op, ...args], { arguments: { copy: true }, result: { copy: true } });
  if (!(out instanceof ArrayBuffer)) throw new DOMException(`crypto: ${op} failed`, 'OperationError');
  return out;
}

function copyBytes(data: unknown, what: string): ArrayBuffer {
  const view = bytesOf(data, what);
  if (view.byteLength > MAX_DIGEST_BYTES) throw new DOMException(`${what} is larger than ${MAX_DIGEST_BYTES} bytes`, 'QuotaExceededError');
  return view.slice().buffer;
}

function hashName(alg: unknown, api: string): string {
  const name = String(typeof alg === 'object' && alg !== null ? (alg as { name?: unknown }).name : alg).toUpperCase();
  const hash = HASHES[name];
  if (hash === undefined) throw new DOMException(`${api}: unsupported hash '${name}' (SHA-1, SHA-256, SHA-384, SHA-512)`, 'NotSupportedError');
  return name;
}

const INTERNAL = Symbol('internal');

// Module-private access to a key's fields, set by the class's static block: no static method on a
// global class can hand a tool the bytes of a key it imported as non-extractable.
let useKey: (key: unknown, usage: string, api: string) => { bytes: ArrayBuffer; hash: string };
let exportRaw: (key: unknown) => ArrayBuffer;
let makeKey: (bytes: ArrayBuffer, hash: string, extractable: boolean, usages: string[]) => CryptoKey;

export class CryptoKey {
  readonly #bytes: ArrayBuffer;
  readonly #hash: string;
  readonly #extractable: boolean;
  readonly #usages: string[];
  constructor(key: unknown, bytes?: ArrayBuffer, hash?: string, extractable?: boolean, usages?: string[]) {
    if (key !== INTERNAL || !bytes || !hash) throw new TypeError('Illegal constructor');
    this.#bytes = bytes;
    this.#hash = hash;
    this.#extractable = Boolean(extractable);
    this.#usages = usages ?? [];
  }
  get type(): string {
    return 'secret';
  }
  get extractable(): boolean {
    return this.#extractable;
  }
  get algorithm(): { name: string; hash: { name: string }; length: number } {
    return { name: 'HMAC', hash: { name: this.#hash }, length: this.#bytes.byteLength * 8 };
  }
  get usages(): string[] {
    return [...this.#usages];
  }
  static {
    useKey = (key, usage, api) => {
      if (!(key instanceof CryptoKey)) throw new TypeError(`${api}: the key is not a CryptoKey`);
      if (!key.#usages.includes(usage)) throw new DOMException(`${api}: the key may not be used to ${usage}`, 'InvalidAccessError');
      return { bytes: key.#bytes, hash: key.#hash };
    };
    exportRaw = (key) => {
      if (!(key instanceof CryptoKey)) throw new TypeError('exportKey: the key is not a CryptoKey');
      if (!key.#extractable) throw new DOMException('exportKey: the key is not extractable', 'InvalidAccessError');
      return key.#bytes.slice(0);
    };
    makeKey = (bytes, hash, extractable, usages) => new CryptoKey(INTERNAL, bytes, hash, extractable, usages);
  }
}

function hmacAlgorithm(alg: unknown, api: string): { hash?: unknown } {
  const name = String(typeof alg === 'object' && alg !== null ? (alg as { name?: unknown }).name : alg).toUpperCase();
  if (name !== 'HMAC') throw new DOMException(`${api}: only HMAC is supported`, 'NotSupportedError');
  return typeof alg === 'object' && alg !== null ? (alg as { hash?: unknown }) : {};
}

/** Async like the standard, settled at once: the work is synchronous on the host. */
const settle = <T>(fn: () => T): Promise<T> => {
  try {
    return Promise.resolve(fn());
  } catch (e) {
    return Promise.reject(e as Error);
  }
};

export class SubtleCrypto {
  constructor(key?: unknown) {
    if (key !== INTERNAL) throw new TypeError('Illegal constructor');
  }
  digest(algorithm: unknown, data: unknown): Promise<ArrayBuffer> {
    return settle(() => host('digest', hashName(algorithm, 'digest'), copyBytes(data, 'digest: data')));
  }
  importKey(format: unknown, keyData: unknown, algorithm: unknown, extractable: unknown, usages: unknown): Promise<CryptoKey> {
    return settle(() => {
      if (format !== 'raw') throw new DOMException("importKey: only the 'raw' format is supported", 'NotSupportedError');
      const { hash } = hmacAlgorithm(algorithm, 'importKey');
      const list = [...(usages as Iterable<unknown>)].map(String);
      for (const u of list) if (u !== 'sign' && u !== 'verify') throw new SyntaxError(`importKey: usage '${u}' is not valid for HMAC`);
      const bytes = copyBytes(keyData, 'importKey: keyData');
      if (bytes.byteLength === 0) throw new DOMException('importKey: the key is empty', 'DataError');
      return makeKey(bytes, hashName(hash, 'importKey'), Boolean(extractable), list);
    });
  }
  exportKey(format: unknown, key: unknown): Promise<ArrayBuffer> {
    return settle(() => {
      if (format !== 'raw') throw new DOMException("exportKey: only the 'raw' format is supported", 'NotSupportedError');
      return exportRaw(key);
    });
  }
  sign(algorithm: unknown, key: unknown, data: unknown): Promise<ArrayBuffer> {
    return settle(() => {
      hmacAlgorithm(algorithm, 'sign');
      const { bytes, hash } = useKey(key, 'sign', 'sign');
      return host('hmac', hash, bytes, copyBytes(data, 'sign: data'));
    });
  }
  verify(algorithm: unknown, key: unknown, signature: unknown, data: unknown): Promise<boolean> {
    return settle(() => {
      hmacAlgorithm(algorithm, 'verify');
      const { bytes, hash } = useKey(key, 'verify', 'verify');
      const expected = new Uint8Array(host('hmac', hash, bytes, copyBytes(data, 'verify: data')));
      const given = bytesOf(signature, 'verify: signature');
      // Compared in full whatever differs first: no timing hint about the right signature.
      let diff = expected.length ^ given.length;
      for (let i = 0; i < expected.length; i++) diff |= expected[i]! ^ (given[i] ?? 0);
      return diff === 0;
    });
  }
}

const INTEGER_ARRAYS = [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, BigInt64Array, BigUint64Array];

export class Crypto {
  // Shared by every call of the isolate and reached only through a getter, which the lockdown's
  // walk does not call: frozen here, or a call could leave a property on it for the next one.
  readonly #subtle = Object.freeze(new SubtleCrypto(INTERNAL));
  constructor(key?: unknown) {
    if (key !== INTERNAL) throw new TypeError('Illegal constructor');
  }
  get subtle(): SubtleCrypto {
    return this.#subtle;
  }
  getRandomValues<T extends ArrayBufferView>(array: T): T {
    if (!INTEGER_ARRAYS.some((C) => array instanceof C)) throw new DOMException('getRandomValues: the argument must be an integer typed array', 'TypeMismatchError');
    if (array.byteLength > MAX_RANDOM_BYTES) {
      throw new DOMException(`getRandomValues: ${array.byteLength} bytes asked, at most ${MAX_RANDOM_BYTES}`, 'QuotaExceededError');
    }
    if (array.byteLength > 0) new Uint8Array(array.buffer, array.byteOffset, array.byteLength).set(new Uint8Array(host('random', array.byteLength)));
    return array;
  }
  randomUUID(): string {
    const b = new Uint8Array(host('random', 16));
    b[6] = (b[6]! & 0x0f) | 0x40;
    b[8] = (b[8]! & 0x3f) | 0x80;
    let hex = '';
    for (let i = 0; i < 16; i++) hex += (b[i]! < 16 ? '0' : '') + b[i]!.toString(16);
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }
}

/** The one `crypto` object of an isolate. */
export function createCrypto(): Crypto {
  return new Crypto(INTERNAL);
}
