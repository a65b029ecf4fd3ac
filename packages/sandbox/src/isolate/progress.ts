/**
 * `ctx.progress(fraction, message)` inside the isolate. Tool code is hostile: it may call this in a
 * tight loop, pass a Proxy, a getter-laden object or a thenable as the message, a megabyte string,
 * or NaN. So only primitives are accepted (`typeof` checks never run tool code), the message is cut
 * to {@link MAX_PROGRESS_MESSAGE}, and reports leave the isolate at most once per
 * {@link PROGRESS_INTERVAL_MS}: in between the latest report waits (latest wins) and is sent when
 * the interval is over, through the host's timer bridge, which releases it when the call ends.
 *
 * Each report that leaves carries the call's log lines written since the previous one, so a
 * long-running tool's logs show up live along with its progress; the rest arrive with the outcome.
 */
import { hostBridges, type CallState } from './web/call.js';

/** At most one report crosses to the host per this many ms and call (10 a second). */
export const PROGRESS_INTERVAL_MS = 100;
/** A longer message is cut here (with `…`). */
export const MAX_PROGRESS_MESSAGE = 500;

/** What crosses to the host, as JSON: the report and the log lines since the previous one. */
export type ProgressWire = { fraction: number; message: string; logs: string[] };

export function makeProgress(call: CallState, logs: string[]): (fraction: unknown, message?: unknown) => void {
  let sentAt = -Infinity;
  let pending: { fraction: number; message: string } | undefined;
  let armed = false;
  let logsSent = 0;
  const send = (): void => {
    armed = false;
    const report = pending;
    // A call that has ended sends nothing: its outcome carries the logs, its status the end.
    if (report === undefined || call.done) return;
    const bridge = hostBridges().progress;
    if (bridge === undefined) return;
    pending = undefined;
    sentAt = Date.now();
    const lines = logs.slice(logsSent);
    logsSent = logs.length;
    const wire: ProgressWire = { fraction: report.fraction, message: report.message, logs: lines };
    bridge.applyIgnored(undefined, [call.token, JSON.stringify(wire)]);
  };
  /** The trailing send: a report sent directly since it was armed moved the interval on, so it may wait again. */
  const arm = (ms: number): void => {
    armed = true;
    const fire = (): void => {
      const wait = sentAt + PROGRESS_INTERVAL_MS - Date.now();
      if (wait > 0 && pending !== undefined && !call.done) arm(wait);
      else send();
    };
    hostBridges()
      .timer.apply(undefined, [call.token, ms], { result: { promise: true, copy: true } })
      .then(fire, () => {});
  };
  return function progress(fraction: unknown, message?: unknown): void {
    if (call.done) throw new TypeError('ctx.progress can only be used while the call runs');
    // `!(x >= 0 && x <= 1)` also refuses NaN; no coercion, so no valueOf of tool code runs.
    if (typeof fraction !== 'number' || !(fraction >= 0 && fraction <= 1)) {
      throw new TypeError('ctx.progress: fraction must be a number from 0 to 1');
    }
    if (message !== undefined && typeof message !== 'string') throw new TypeError('ctx.progress: message must be a string');
    const text = message === undefined ? '' : message.length > MAX_PROGRESS_MESSAGE ? message.slice(0, MAX_PROGRESS_MESSAGE) + '…' : message;
    pending = { fraction, message: text };
    const wait = sentAt + PROGRESS_INTERVAL_MS - Date.now();
    if (wait <= 0) return send();
    if (!armed) arm(wait);
  };
}
