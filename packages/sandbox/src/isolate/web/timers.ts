/**
 * `setTimeout`, `setInterval`, their `clear*` and `queueMicrotask`. A timer belongs to the call
 * that set it: the host runs the wait (`timer` bridge) and drops every wait of a call when the
 * call ends, and a wait that still arrives finds its call gone and does nothing. So no callback
 * ever runs after its call, nor in another call's time, and a delay that reaches past the
 * deadline simply never fires (the call times out first).
 */
import { activeCall, describe, hostBridges, runtime, type CallState } from './call.js';

/** Timers one call may have pending at once; each holds a host timer. */
export const MAX_PENDING_TIMERS = 1000;

function arm(call: CallState, id: number, ms: number, callback: (...a: unknown[]) => unknown, args: unknown[], repeat: boolean): void {
  hostBridges()
    .timer.apply(undefined, [call.token, ms], { result: { promise: true, copy: true } })
    .then(
      () => {
        if (runtime.current !== call || call.done || !call.timers.has(id)) return;
        if (!repeat) call.timers.delete(id);
        try {
          callback(...args);
        } catch (e) {
          call.log('uncaught error in a timer callback: ' + describe(e));
        }
        if (repeat && call.timers.has(id) && !call.done) arm(call, id, ms, callback, args, repeat);
      },
      () => {},
    );
}

function schedule(api: string, callback: unknown, delay: unknown, args: unknown[], repeat: boolean): number {
  const call = activeCall(api);
  if (typeof callback !== 'function') throw new TypeError(`${api}: the callback must be a function (code strings are not evaluated)`);
  if (call.timers.size >= MAX_PENDING_TIMERS) throw new RangeError(`${api}: more than ${MAX_PENDING_TIMERS} timers pending in one call`);
  const n = Number(delay);
  const ms = Number.isFinite(n) && n > 0 ? Math.min(Math.floor(n), 2 ** 31 - 1) : 0;
  const id = ++call.timerSeq;
  call.timers.add(id);
  arm(call, id, repeat ? Math.max(1, ms) : ms, callback as (...a: unknown[]) => unknown, args, repeat);
  return id;
}

export function setTimeout(callback: unknown, delay: unknown = 0, ...args: unknown[]): number {
  return schedule('setTimeout', callback, delay, args, false);
}

export function setInterval(callback: unknown, delay: unknown = 0, ...args: unknown[]): number {
  return schedule('setInterval', callback, delay, args, true);
}

export function clearTimeout(id: unknown): void {
  runtime.current?.timers.delete(Number(id));
}

/** Its own function, as on the web: `clearInterval !== clearTimeout`, each with its own name. */
export function clearInterval(id: unknown): void {
  clearTimeout(id);
}

export function queueMicrotask(callback: unknown): void {
  if (typeof callback !== 'function') throw new TypeError('queueMicrotask: the callback must be a function');
  const call = runtime.current;
  void Promise.resolve().then(() => {
    try {
      (callback as () => unknown)();
    } catch (e) {
      call?.log('uncaught error in a microtask: ' + describe(e));
    }
  });
}
