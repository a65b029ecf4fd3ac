/** `DOMException`, `Event`, `EventTarget`, `AbortController` and `AbortSignal` (DOM standard subset). */
import { activeCall, describe, runtime } from './call.js';
import { setTimeout } from './timers.js';

const LEGACY_CODES: Record<string, number> = {
  IndexSizeError: 1, HierarchyRequestError: 3, WrongDocumentError: 4, InvalidCharacterError: 5, NoModificationAllowedError: 7,
  NotFoundError: 8, NotSupportedError: 9, InvalidStateError: 11, SyntaxError: 12, InvalidModificationError: 13, NamespaceError: 14,
  InvalidAccessError: 15, TypeMismatchError: 17, SecurityError: 18, NetworkError: 19, AbortError: 20, URLMismatchError: 21,
  QuotaExceededError: 22, TimeoutError: 23, InvalidNodeTypeError: 24, DataCloneError: 25,
};

export class DOMException extends Error {
  readonly #name: string;
  constructor(message: unknown = '', name: unknown = 'Error') {
    super(String(message));
    this.#name = String(name);
  }
  override get name(): string {
    return this.#name;
  }
  get code(): number {
    return LEGACY_CODES[this.#name] ?? 0;
  }
}

// Module-private helpers set by static blocks, so no global class carries them.
let dispatching: (event: Event, target: EventTarget) => { stopped: () => boolean };
/** Aborts `signal` with `reason` (an AbortError by default); does nothing if it already is. */
export let signalAbort: (signal: AbortSignal, reason: unknown) => void;
/** A fresh, unaborted signal. */
export let createSignal: () => AbortSignal;

export class Event {
  readonly #type: string;
  readonly #cancelable: boolean;
  #defaultPrevented = false;
  #stopped = false;
  #target: EventTarget | null = null;
  readonly #timeStamp = Date.now();
  constructor(type: unknown, init: { cancelable?: unknown; bubbles?: unknown } | undefined = undefined) {
    if (arguments.length === 0) throw new TypeError("Event: 1 argument required, but only 0 present");
    this.#type = String(type);
    this.#cancelable = Boolean(init?.cancelable);
  }
  get type(): string {
    return this.#type;
  }
  get target(): EventTarget | null {
    return this.#target;
  }
  get currentTarget(): EventTarget | null {
    return this.#target;
  }
  get cancelable(): boolean {
    return this.#cancelable;
  }
  get defaultPrevented(): boolean {
    return this.#defaultPrevented;
  }
  get timeStamp(): number {
    return this.#timeStamp;
  }
  get bubbles(): boolean {
    return false;
  }
  preventDefault(): void {
    if (this.#cancelable) this.#defaultPrevented = true;
  }
  stopImmediatePropagation(): void {
    this.#stopped = true;
  }
  stopPropagation(): void {}
  static {
    dispatching = (event, target) => {
      event.#target = target;
      return { stopped: () => event.#stopped };
    };
  }
}


type Listener = { callback: unknown; once: boolean };

export class EventTarget {
  readonly #listeners = new Map<string, Listener[]>();
  addEventListener(type: unknown, callback: unknown, options: boolean | { once?: unknown; signal?: unknown } | undefined = undefined): void {
    if (callback === null || callback === undefined) return;
    const name = String(type);
    const opts = typeof options === 'object' && options !== null ? options : {};
    const signal = opts.signal;
    if (signal instanceof AbortSignal && signal.aborted) return;
    const list = this.#listeners.get(name) ?? [];
    if (list.some((l) => l.callback === callback)) return;
    list.push({ callback, once: Boolean(opts.once) });
    this.#listeners.set(name, list);
    if (signal instanceof AbortSignal) signal.addEventListener('abort', () => this.removeEventListener(name, callback));
  }
  removeEventListener(type: unknown, callback: unknown): void {
    const list = this.#listeners.get(String(type));
    if (!list) return;
    const i = list.findIndex((l) => l.callback === callback);
    if (i >= 0) list.splice(i, 1);
  }
  dispatchEvent(event: Event): boolean {
    if (!(event instanceof Event)) throw new TypeError('dispatchEvent: the argument is not an Event');
    const { stopped } = dispatching(event, this);
    const handler = (this as unknown as Record<string, unknown>)['on' + event.type];
    const list = [...(this.#listeners.get(event.type) ?? [])];
    if (typeof handler === 'function') list.unshift({ callback: handler, once: false });
    for (const l of list) {
      if (l.once) this.removeEventListener(event.type, l.callback);
      try {
        if (typeof l.callback === 'function') (l.callback as (e: Event) => unknown).call(this, event);
        else if (l.callback !== null && typeof l.callback === 'object') {
          const h = (l.callback as { handleEvent?: unknown }).handleEvent;
          if (typeof h === 'function') (h as (e: Event) => unknown).call(l.callback, event);
        }
      } catch (e) {
        // As in browsers: a listener's exception is reported, the dispatch goes on.
        runtime.current?.log('uncaught error in an event listener: ' + describe(e));
      }
      if (stopped()) break;
    }
    return !event.defaultPrevented;
  }
}

const INTERNAL = Symbol('internal');

export class AbortSignal extends EventTarget {
  #aborted = false;
  #reason: unknown = undefined;
  onabort: ((e: Event) => unknown) | null = null;
  constructor(key?: unknown) {
    super();
    if (key !== INTERNAL) throw new TypeError('Illegal constructor');
  }
  get aborted(): boolean {
    return this.#aborted;
  }
  get reason(): unknown {
    return this.#reason;
  }
  throwIfAborted(): void {
    if (this.#aborted) throw this.#reason;
  }
  static abort(reason: unknown = undefined): AbortSignal {
    const s = new AbortSignal(INTERNAL);
    signalAbort(s, reason);
    return s;
  }
  /** A signal that aborts with a `TimeoutError` after `ms`; like every timer, never after the call. */
  static timeout(ms: unknown): AbortSignal {
    activeCall('AbortSignal.timeout');
    const s = new AbortSignal(INTERNAL);
    setTimeout(() => signalAbort(s, new DOMException('The operation timed out.', 'TimeoutError')), Number(ms));
    return s;
  }
  static any(signals: Iterable<unknown>): AbortSignal {
    const s = new AbortSignal(INTERNAL);
    const list = [...signals];
    for (const x of list) if (!(x instanceof AbortSignal)) throw new TypeError('AbortSignal.any: every item must be an AbortSignal');
    const aborted = (list as AbortSignal[]).find((x) => x.aborted);
    if (aborted) signalAbort(s, aborted.reason);
    else for (const x of list as AbortSignal[]) x.addEventListener('abort', () => signalAbort(s, x.reason), { once: true });
    return s;
  }
  static {
    signalAbort = (s, reason) => {
      if (s.#aborted) return;
      s.#aborted = true;
      s.#reason = reason === undefined ? new DOMException('This operation was aborted', 'AbortError') : reason;
      s.dispatchEvent(new Event('abort'));
    };
    createSignal = () => new AbortSignal(INTERNAL);
  }
}

export class AbortController {
  readonly #signal = createSignal();
  get signal(): AbortSignal {
    return this.#signal;
  }
  abort(reason: unknown = undefined): void {
    signalAbort(this.#signal, reason);
  }
}
