/**
 * A call's deadline (schedule-to-close): the job data carries it as `deadlineAt` (ms since epoch,
 * set when the call is enqueued). The worker decides here, without I/O, what becomes of a call that
 * is not going to run now; `processor.ts` acts on the answer. Calls no worker takes before their
 * deadline are ended at it by the fleet's deadline sweep (`DeadlineSweeper` of `@toolplane/queue`).
 */

/**
 * The text of `DEADLINE_EXCEEDED`, one wording for the calls the processor finds late and those the
 * fleet's deadline sweep ends while they wait (`DeadlineSweeper`).
 */
export { deadlineMessage } from '@toolplane/queue';

/** How a call is held back: put back on its own (delayed), or behind its whole tool's paused queue. */
export type HoldKind = 'delay' | 'pause';

/** What becomes of a call held back for `waitMs`. */
export type Deferral =
  /** Put it back for this long (never past its deadline). */
  | { action: 'put_back'; waitMs: number }
  /** End it now, `DEADLINE_EXCEEDED`. */
  | { action: 'expire' };

/** Whether a call with this deadline is late at `nowMs`; a call without one never is. */
export function isPastDeadline(deadlineAt: number | undefined, nowMs: number): boolean {
  return deadlineAt !== undefined && nowMs >= deadlineAt;
}

/**
 * A call held back for `waitMs` (open breaker, trial elsewhere, tenant limit, failed trial: `delay`;
 * Retry-After hold or tool limit, which pause the tool's queue fleet-wide: `pause`).
 *
 * - Past its deadline: it ends now.
 * - Delayed: it comes back at `min(waitMs, time left)`, so one that cannot start in time ends at its
 *   deadline instead of after the wait.
 * - Behind a pause that lasts past its deadline: it ends now, since it cannot start in time (put
 *   back, it would wait in the paused queue until the deadline sweep ends it at its deadline).
 */
export function deferCall(deadlineAt: number | undefined, nowMs: number, waitMs: number, kind: HoldKind): Deferral {
  if (deadlineAt === undefined) return { action: 'put_back', waitMs };
  if (nowMs >= deadlineAt) return { action: 'expire' };
  if (kind === 'pause') return nowMs + waitMs > deadlineAt ? { action: 'expire' } : { action: 'put_back', waitMs };
  return { action: 'put_back', waitMs: Math.min(waitMs, deadlineAt - nowMs) };
}
