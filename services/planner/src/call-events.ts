import { isFinished, type CallRecord } from '@toolplane/core';
import { STREAM_ID_PATTERN, type CallEventLog, type CallReads, type CallWaiter } from '@toolplane/queue';

/**
 * Follows one call for `GET /v1/calls/{id}/events` and MCP progress notifications: its status
 * changes (read from BullMQ's events stream of the tool, then from the call's record), its
 * `ctx.progress` reports with the log lines that came with them, and at the end the remaining log
 * lines and the final record. Reading is the planner's work: the worker writes only progress.
 */

/** What a follower yields; `id` is the resume position (`Last-Event-ID`) when set. */
export type CallEvent =
  | { type: 'status'; id?: string; data: { status: CallRecord['status']; attempts: number } | CallRecord }
  | { type: 'progress'; id: string; data: { fraction: number; message: string; attempt: number } }
  | { type: 'log'; data: { line: string; attempt: number } };

/** A position in both streams: after progress entry `progress` and BullMQ event `jobs`; `end` once the final event was sent. */
export type CallEventCursor = { progress: string; jobs: string; end: boolean };

export type CallFollowDeps = { reads: Pick<CallReads, 'get'>; waiter: CallWaiter; log: CallEventLog };

/** How often a running call's streams are read when nothing wakes the reader (progress comes at most every 100 ms). */
const POLL_MS = 200;
/** The record is read again this often even without a status event (BullMQ's stream is trimmed on busy tools). */
const RECHECK_MS = 5_000;

export function formatCursor(c: CallEventCursor): string {
  return `${c.progress}_${c.jobs}${c.end ? '_end' : ''}`;
}

/** A client's `Last-Event-ID`, or undefined when it is not one of ours (then the stream starts over). */
export function parseCursor(raw: string | undefined): CallEventCursor | undefined {
  if (!raw || raw.length > 64) return undefined;
  const [progress, jobs, end, ...rest] = raw.split('_');
  if (rest.length > 0 || (end !== undefined && end !== 'end')) return undefined;
  const valid = (x: string | undefined): x is string => x === '0' || (x !== undefined && STREAM_ID_PATTERN.test(x));
  if (!valid(progress) || !valid(jobs)) return undefined;
  return { progress, jobs, end: end === 'end' };
}

/**
 * The call's events from `cursor` (a new reader: its current status first, then changes), until
 * the final status (which carries the whole record) or `signal`. Yields `undefined` after
 * `idleMs` without events, for keep-alives.
 */
export async function* followCall(
  deps: CallFollowDeps,
  record: CallRecord,
  resume: CallEventCursor | undefined,
  signal: AbortSignal,
  idleMs = 15_000,
): AsyncGenerator<CallEvent | undefined> {
  const { id, tool } = record;
  // The end of BullMQ's stream is read before the record, so no change after the snapshot is missed.
  const cursor: CallEventCursor = resume ?? { progress: '0', jobs: await deps.log.jobEventsEnd(tool), end: false };
  let current = resume ? await deps.reads.get(id) ?? record : record;
  if (cursor.end && isFinished(current.status)) {
    yield { type: 'status', id: formatCursor(cursor), data: current };
    return;
  }
  let status = current.status;
  yield { type: 'status', id: formatCursor(cursor), data: { status, attempts: current.attempts } };
  let checkedAt = Date.now();
  let quietSince = Date.now();
  for (;;) {
    if (signal.aborted) return;
    // Registered before reading, so a call finishing between the read and the wait still wakes us.
    const woken = deps.waiter.wait(id, POLL_MS, signal);
    let yielded = false;
    try {
      for (const e of await deps.log.progressAfter(tool, id, cursor.progress)) {
        cursor.progress = e.id;
        for (const line of e.logs) yield { type: 'log', data: { line, attempt: e.attempt } };
        yield { type: 'progress', id: formatCursor(cursor), data: { fraction: e.fraction, message: e.message, attempt: e.attempt } };
        yielded = true;
      }
      const jobs = await deps.log.jobEventsAfter(tool, id, cursor.jobs);
      cursor.jobs = jobs.cursor;
      if (jobs.events.length > 0 || Date.now() - checkedAt > RECHECK_MS || isFinished(status)) {
        checkedAt = Date.now();
        current = (await deps.reads.get(id)) ?? current;
      }
      if (isFinished(current.status)) {
        yield* finish(deps, current, cursor);
        return;
      }
      if (current.status !== status) {
        status = current.status;
        yield { type: 'status', id: formatCursor(cursor), data: { status, attempts: current.attempts } };
        yielded = true;
      }
    } catch (err: unknown) {
      woken.cancel();
      throw err;
    }
    if (yielded) quietSince = Date.now();
    else if (Date.now() - quietSince >= idleMs) {
      quietSince = Date.now();
      yield undefined;
    }
    if (yielded) woken.cancel();
    else await woken.done;
  }
}

/** The progress written before the end, the log lines no report carried, and the final record. */
async function* finish(deps: CallFollowDeps, record: CallRecord, cursor: CallEventCursor): AsyncGenerator<CallEvent> {
  const { id, tool } = record;
  for (const e of await deps.log.progressAfter(tool, id, cursor.progress)) {
    cursor.progress = e.id;
    for (const line of e.logs) yield { type: 'log', data: { line, attempt: e.attempt } };
    yield { type: 'progress', id: formatCursor(cursor), data: { fraction: e.fraction, message: e.message, attempt: e.attempt } };
  }
  const last = await deps.log.lastProgress(tool, id);
  const attempt = Math.max(1, record.attempts);
  const streamed = last && last.attempt === attempt ? last.logCount : 0;
  for (const line of (record.logs ?? []).slice(streamed)) yield { type: 'log', data: { line, attempt } };
  cursor.end = true;
  yield { type: 'status', id: formatCursor(cursor), data: record };
}
