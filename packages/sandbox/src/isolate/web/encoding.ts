/** `TextEncoder`, `TextDecoder` (UTF-8), `atob` and `btoa`, as the Encoding and HTML standards define them. */
import { DOMException } from './events.js';

const UTF8_LABELS = new Set(['utf-8', 'utf8', 'unicode-1-1-utf-8', 'unicode11utf8', 'unicode20utf8', 'x-unicode20utf8']);

/** UTF-8 bytes of `s`, lone surrogates as U+FFFD. */
export function utf8Encode(s: string): Uint8Array {
  const out = new Uint8Array(s.length * 3);
  const written = encodeInto(s, out).written;
  return out.slice(0, written);
}

function encodeInto(s: string, out: Uint8Array): { read: number; written: number } {
  let w = 0;
  let i = 0;
  for (; i < s.length; i++) {
    let c = s.charCodeAt(i);
    let units = 1;
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        units = 2;
      }
    }
    if (c >= 0xd800 && c <= 0xdfff) c = 0xfffd;
    const need = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    if (w + need > out.length) break;
    if (need === 1) out[w++] = c;
    else if (need === 2) {
      out[w++] = 0xc0 | (c >> 6);
      out[w++] = 0x80 | (c & 0x3f);
    } else if (need === 3) {
      out[w++] = 0xe0 | (c >> 12);
      out[w++] = 0x80 | ((c >> 6) & 0x3f);
      out[w++] = 0x80 | (c & 0x3f);
    } else {
      out[w++] = 0xf0 | (c >> 18);
      out[w++] = 0x80 | ((c >> 12) & 0x3f);
      out[w++] = 0x80 | ((c >> 6) & 0x3f);
      out[w++] = 0x80 | (c & 0x3f);
    }
    if (units === 2) i++;
  }
  return { read: i, written: w };
}

export class TextEncoder {
  get encoding(): string {
    return 'utf-8';
  }
  encode(input: unknown = ''): Uint8Array {
    return utf8Encode(String(input));
  }
  encodeInto(source: unknown, destination: Uint8Array): { read: number; written: number } {
    if (!(destination instanceof Uint8Array)) throw new TypeError('encodeInto: destination must be a Uint8Array');
    return encodeInto(String(source), destination);
  }
}

/** The bytes of a BufferSource, without copying. */
export function bytesOf(input: unknown, what: string): Uint8Array {
  if (input instanceof ArrayBuffer) return new Uint8Array(input);
  if (ArrayBuffer.isView(input)) return new Uint8Array(input.buffer, input.byteOffset, input.byteLength);
  throw new TypeError(`${what} must be an ArrayBuffer or an ArrayBuffer view`);
}

export class TextDecoder {
  readonly #fatal: boolean;
  readonly #ignoreBOM: boolean;
  #pending: number[] = [];
  #bomSeen = false;

  constructor(label: unknown = 'utf-8', options: { fatal?: unknown; ignoreBOM?: unknown } | undefined = undefined) {
    const name = String(label).trim().toLowerCase();
    if (!UTF8_LABELS.has(name)) throw new RangeError(`TextDecoder: the encoding '${name}' is not supported (only utf-8)`);
    this.#fatal = Boolean(options?.fatal);
    this.#ignoreBOM = Boolean(options?.ignoreBOM);
  }
  get encoding(): string {
    return 'utf-8';
  }
  get fatal(): boolean {
    return this.#fatal;
  }
  get ignoreBOM(): boolean {
    return this.#ignoreBOM;
  }
  decode(input: unknown = undefined, options: { stream?: unknown } | undefined = undefined): string {
    const fresh = input === undefined ? new Uint8Array(0) : bytesOf(input, 'TextDecoder.decode: input');
    let bytes = fresh;
    if (this.#pending.length > 0) {
      bytes = new Uint8Array(this.#pending.length + fresh.length);
      bytes.set(this.#pending, 0);
      bytes.set(fresh, this.#pending.length);
      this.#pending = [];
    }
    const stream = Boolean(options?.stream);
    let out = '';
    const parts: string[] = [];
    let units: number[] = [];
    const flush = () => {
      parts.push(String.fromCharCode(...units));
      units = [];
    };
    const bad = () => {
      if (this.#fatal) {
        this.#pending = [];
        this.#bomSeen = false;
        throw new TypeError('TextDecoder: the data is not valid UTF-8');
      }
      units.push(0xfffd);
    };
    let i = 0;
    while (i < bytes.length) {
      const b = bytes[i]!;
      let need = 0;
      let cp = 0;
      let lower = 0x80;
      let upper = 0xbf;
      if (b < 0x80) {
        units.push(b);
        i++;
        if (units.length > 8192) flush();
        continue;
      } else if (b >= 0xc2 && b <= 0xdf) {
        need = 1;
        cp = b & 0x1f;
      } else if (b >= 0xe0 && b <= 0xef) {
        need = 2;
        cp = b & 0x0f;
        if (b === 0xe0) lower = 0xa0;
        if (b === 0xed) upper = 0x9f;
      } else if (b >= 0xf0 && b <= 0xf4) {
        need = 3;
        cp = b & 0x07;
        if (b === 0xf0) lower = 0x90;
        if (b === 0xf4) upper = 0x8f;
      } else {
        bad();
        i++;
        continue;
      }
      let j = 1;
      for (; j <= need; j++) {
        if (i + j >= bytes.length) break;
        const c = bytes[i + j]!;
        if (c < (j === 1 ? lower : 0x80) || c > (j === 1 ? upper : 0xbf)) break;
        cp = (cp << 6) | (c & 0x3f);
      }
      if (j <= need) {
        if (i + j >= bytes.length && stream) {
          for (let k = i; k < bytes.length; k++) this.#pending.push(bytes[k]!);
          i = bytes.length;
          break;
        }
        bad();
        i += j;
        continue;
      }
      if (cp >= 0x10000) {
        cp -= 0x10000;
        units.push(0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
      } else units.push(cp);
      i += need + 1;
      if (units.length > 8192) flush();
    }
    flush();
    out = parts.join('');
    if (!this.#bomSeen && out.length > 0) {
      this.#bomSeen = true;
      if (!this.#ignoreBOM && out.charCodeAt(0) === 0xfeff) out = out.slice(1);
    }
    if (!stream) this.#bomSeen = false;
    return out;
  }
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_INDEX = new Map<string, number>([...B64].map((c, i) => [c, i]));

export function btoa(data: unknown): string {
  if (arguments.length === 0) throw new TypeError("btoa: 1 argument required, but only 0 present");
  const s = String(data);
  let out = '';
  for (let i = 0; i < s.length; i += 3) {
    const a = s.charCodeAt(i);
    const b = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
    const c = i + 2 < s.length ? s.charCodeAt(i + 2) : 0;
    if (a > 255 || b > 255 || c > 255) throw new DOMException('btoa: the string contains characters outside of Latin1', 'InvalidCharacterError');
    const n = (a << 16) | (b << 8) | c;
    out += B64[n >> 18]! + B64[(n >> 12) & 63]! + (i + 1 < s.length ? B64[(n >> 6) & 63]! : '=') + (i + 2 < s.length ? B64[n & 63]! : '=');
  }
  return out;
}

export function atob(data: unknown): string {
  if (arguments.length === 0) throw new TypeError("atob: 1 argument required, but only 0 present");
  let s = String(data).replace(/[\t\n\f\r ]/g, '');
  if (s.length % 4 === 0) s = s.replace(/==?$/, '');
  if (s.length % 4 === 1 || /[^A-Za-z0-9+/]/.test(s)) throw new DOMException('atob: the string is not correctly encoded', 'InvalidCharacterError');
  let out = '';
  let bits = 0;
  let acc = 0;
  for (const ch of s) {
    acc = (acc << 6) | B64_INDEX.get(ch)!;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += String.fromCharCode((acc >> bits) & 0xff);
    }
  }
  return out;
}
