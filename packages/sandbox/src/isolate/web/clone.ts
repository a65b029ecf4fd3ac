/** `structuredClone` for the types the HTML standard's structured serialization covers, without transfer. */
import { DOMException } from './events.js';

const ERRORS: Record<string, ErrorConstructor> = { Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError };
const TYPED = [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, Float32Array, Float64Array, BigInt64Array, BigUint64Array];

export function structuredClone<T>(value: T, options: { transfer?: unknown[] } | undefined = undefined): T {
  if (options?.transfer !== undefined && [...options.transfer].length > 0) throw new DOMException('structuredClone: transfer is not supported', 'DataCloneError');
  const memo = new Map<object, unknown>();
  const clone = (v: unknown): unknown => {
    if (typeof v === 'symbol') throw new DOMException(`${String(v)} could not be cloned`, 'DataCloneError');
    if (typeof v === 'function') throw new DOMException(`${v.name || 'function'} could not be cloned`, 'DataCloneError');
    if (typeof v !== 'object' || v === null) return v;
    const seen = memo.get(v);
    if (seen !== undefined) return seen;
    const keep = <U>(copy: U): U => {
      memo.set(v, copy);
      return copy;
    };
    if (v instanceof Date) return keep(new Date(v.getTime()));
    if (v instanceof RegExp) return keep(new RegExp(v.source, v.flags));
    if (v instanceof Boolean) return keep(Object(v.valueOf()) as object);
    if (v instanceof Number) return keep(Object(v.valueOf()) as object);
    if (v instanceof String) return keep(Object(v.valueOf()) as object);
    if (v instanceof ArrayBuffer) return keep(v.slice(0));
    if (v instanceof DataView) {
      const buffer = clone(v.buffer) as ArrayBuffer;
      return keep(new DataView(buffer, v.byteOffset, v.byteLength));
    }
    for (const C of TYPED) {
      if (v instanceof C) {
        const buffer = clone(v.buffer) as ArrayBuffer;
        return keep(new (C as unknown as new (b: ArrayBuffer, o: number, l: number) => object)(buffer, v.byteOffset, v.length));
      }
    }
    if (v instanceof Map) {
      const copy = keep(new Map());
      for (const [k, x] of v) copy.set(clone(k), clone(x));
      return copy;
    }
    if (v instanceof Set) {
      const copy = keep(new Set());
      for (const x of v) copy.add(clone(x));
      return copy;
    }
    if (v instanceof Error) {
      const name = String(v.name);
      const C = ERRORS[name] ?? Error;
      const copy = keep(new C(String(v.message)));
      if (v.stack !== undefined) Object.defineProperty(copy, 'stack', { value: String(v.stack), writable: true, configurable: true });
      if ('cause' in v) Object.defineProperty(copy, 'cause', { value: clone(v.cause), writable: true, configurable: true });
      return copy;
    }
    if (Array.isArray(v)) {
      const copy = keep(new Array<unknown>(v.length));
      for (const k of Object.keys(v)) copy[k as unknown as number] = clone(v[k as unknown as number]);
      return copy;
    }
    const proto = Object.getPrototypeOf(v) as unknown;
    if (proto !== Object.prototype && proto !== null) {
      throw new DOMException(`${(v as { constructor?: { name?: string } }).constructor?.name ?? 'object'} could not be cloned`, 'DataCloneError');
    }
    const copy = keep({} as Record<string, unknown>);
    for (const k of Object.keys(v)) copy[k] = clone((v as Record<string, unknown>)[k]);
    return copy;
  };
  if (arguments.length === 0) throw new TypeError("structuredClone: 1 argument required, but only 0 present");
  return clone(value) as T;
}
