/**
 * The state the in-isolate runtime shares between the runner and the web globals: which call is
 * running now, and the host functions. It lives in the runtime bundle's closure, so tool code can
 * never reach it; web globals (`fetch`, `setTimeout`, `console`) look up the current call here
 * each time they are used, because globals are shared and frozen while calls come and go.
 */

/** What the runtime sees of an isolated-vm Reference to a host function. */
export type HostReference = {
  apply(receiver: undefined, args: unknown[], options: { result: { promise: true; copy: true } }): Promise<unknown>;
  applySync(receiver: undefined, args: unknown[], options: { arguments: { copy: true }; result: { copy: true } }): unknown;
  applyIgnored(receiver: undefined, args: unknown[]): void;
};

/** The host functions the runtime is given once per isolate; kept here, never on a global. */
export type HostBridges = {
  /** `(token, requestJson) → Promise<replyJson>`: one HTTP request through the egress rules. */
  fetch: HostReference;
  /** `(token, outcomeJson)`: a call that settled after the host stopped waiting synchronously. */
  report: HostReference;
  /** `(token, ms) → Promise<void>`: resolves after `ms` if the call is still running, else never. */
  timer: HostReference;
  /** `(op, …) → ArrayBuffer`: `random`, `digest` and `hmac`, synchronous, bytes copied both ways. */
  crypto: HostReference;
  limits: { maxUrlLength: number; maxRequestBodyBytes: number };
  /** `(token, progressJson)`: a `ctx.progress` report (`../progress.ts`); absent where no call runs. */
  progress?: HostReference;
};

/** One call's state inside the isolate. */
export type CallState = {
  token: number;
  /** Appends one line to the call's logs (bounded by the runner). */
  log: (...parts: unknown[]) => void;
  /** Pending timers by id; a timer not in here when it fires does nothing. */
  timers: Set<number>;
  timerSeq: number;
  /** Set when the call has settled: nothing of it runs again. */
  done: boolean;
  /** Aborted when the call settles (`ctx.signal`); made on first use. */
  onDone: Array<() => void>;
};

/** Runtime-wide state; `current` is the call running now (calls in one isolate never overlap). */
export const runtime: { current: CallState | undefined; host: HostBridges | undefined } = { current: undefined, host: undefined };

/** The running call, or a TypeError naming the API used outside a call (e.g. at module load). */
export function activeCall(api: string): CallState {
  const call = runtime.current;
  if (call === undefined || call.done) throw new TypeError(`${api} can only be used while a call runs`);
  return call;
}

export function hostBridges(): HostBridges {
  const host = runtime.host;
  if (host === undefined) throw new TypeError('the runtime is not installed');
  return host;
}

/** Describes a thrown value without trusting it (getters, Proxies, toString may throw). */
export function describe(e: unknown): string {
  try {
    if (e !== null && typeof e === 'object' && typeof (e as { message?: unknown }).message === 'string') {
      const { name, message } = e as { name?: unknown; message: string };
      return ((typeof name === 'string' ? name : 'Error') + ': ' + message).slice(0, 4000);
    }
    return ('thrown: ' + String(e)).slice(0, 4000);
  } catch {
    return 'tool threw a value that cannot be described';
  }
}
