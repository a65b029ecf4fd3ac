import type { RedisConnection } from './connection.js';
import type { Keys } from './keys.js';

/**
 * A call's live events, for `GET /v1/calls/{id}/events` and MCP progress notifications.
 *
 * Two Redis streams, both under the tool's `{tool}` hash tag (one cluster slot, read together):
 * - the call's own progress stream, written by the worker only when the tool calls `ctx.progress`
 *   (one XADD per report, at most 10 a second per call; the first of an attempt also sets the expiry),
 *   carrying the report and the log lines written since the previous one;
 * - BullMQ's events stream of the tool's queue, which BullMQ writes anyway as a job becomes active,
 *   waits again, is delayed, completes or fails: status changes are read from there, so a call that
 *   reports no progress costs the worker no Redis command at all for its events.
 */

/** One `ctx.progress` report as stored, with the log lines written since the previous one. */
export type ProgressEvent = {
  /** Stream id (`<ms>-<seq>`), the resume position. */
  id: string;
  attempt: number;
  fraction: number;
  message: string;
  logs: string[];
  /** Log lines of this attempt streamed so far, these included (the rest come with the final record). */
  logCount: number;
};

/** A change of a job in BullMQ's events stream of the call's tool. */
export type JobEvent = { id: string; event: string };

export type CallEventLogOptions = {
  /**
   * Entries kept per call (older ones are trimmed).
   * @default 1000
   */
  maxLen?: number;
  /**
   * How long a call's progress stream outlives the attempt that wrote it (counted from its first
   * report, on top of the tool's timeout).
   * @default 600_000 (10 min)
   */
  retentionMs?: number;
};

/** Stream ids are `<ms>-<seq>`; anything else from a client is refused before it reaches XRANGE. */
export const STREAM_ID_PATTERN = /^\d{1,15}-\d{1,10}$/;
/** Entries read per XRANGE. */
const READ_COUNT = 500;

export class CallEventLog {
  private readonly maxLen: number;
  private readonly retentionMs: number;

  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: Keys,
    opts: CallEventLogOptions = {},
  ) {
    this.maxLen = opts.maxLen ?? 1000;
    this.retentionMs = opts.retentionMs ?? 600_000;
  }

  /**
   * A writer for one attempt of a call, for the sandbox's `onProgress`: each report is one XADD,
   * written in order on the connection, never awaited by the call; the first also sets the stream's
   * expiry to the attempt's longest run plus {@link CallEventLogOptions.retentionMs}.
   */
  writer(tool: string, id: string, attempt: number, timeoutMs: number): (report: { fraction: number; message: string; logs: string[] }) => void {
    // Most calls report no progress: the key is made on the first report.
    let key: string | undefined;
    let logCount = 0;
    let first = true;
    return (report) => {
      key ??= this.keys.callProgress(tool, id);
      logCount += report.logs.length;
      const fields = ['a', String(attempt), 'f', String(report.fraction), 'm', report.message, 'l', JSON.stringify(report.logs), 'n', String(logCount)];
      const batch = this.redis.multi().xadd(key, 'MAXLEN', '~', String(this.maxLen), '*', ...fields);
      if (first) batch.pexpire(key, timeoutMs + this.retentionMs);
      first = false;
      // Progress is best effort: a lost report must never fail or slow the call.
      batch.exec().catch(() => {});
    };
  }

  /** Progress reports of a call after stream id `after` (`0`: from the start). */
  async progressAfter(tool: string, id: string, after: string): Promise<ProgressEvent[]> {
    const rows = await this.redis.xrange(this.keys.callProgress(tool, id), `(${after}`, '+', 'COUNT', READ_COUNT);
    return rows.map(([entryId, fields]) => toProgressEvent(entryId, fields));
  }

  /** The last progress report of a call, or undefined. */
  async lastProgress(tool: string, id: string): Promise<ProgressEvent | undefined> {
    const row = (await this.redis.xrevrange(this.keys.callProgress(tool, id), '+', '-', 'COUNT', 1))[0];
    return row ? toProgressEvent(row[0], row[1]) : undefined;
  }

  /** BullMQ's events of job `id` in its tool's events stream after `after`, and where the read ended. */
  async jobEventsAfter(tool: string, id: string, after: string): Promise<{ events: JobEvent[]; cursor: string }> {
    const key = `${this.keys.bullPrefix}:${this.keys.queueName(tool)}:events`;
    let cursor = after;
    const events: JobEvent[] = [];
    // Other calls of the tool share the stream: read on until its end, a page at a time.
    for (;;) {
      const rows = await this.redis.xrange(key, `(${cursor}`, '+', 'COUNT', READ_COUNT);
      for (const [entryId, fields] of rows) {
        cursor = entryId;
        const f = fieldMap(fields);
        if (f.jobId === id && f.event) events.push({ id: entryId, event: f.event });
      }
      if (rows.length < READ_COUNT) return { events, cursor };
    }
  }

  /** The newest id of the tool's BullMQ events stream (`0` when empty): where a new reader starts. */
  async jobEventsEnd(tool: string): Promise<string> {
    const rows = await this.redis.xrevrange(`${this.keys.bullPrefix}:${this.keys.queueName(tool)}:events`, '+', '-', 'COUNT', 1);
    return rows[0]?.[0] ?? '0';
  }
}

function fieldMap(fields: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) out[fields[i]!] = fields[i + 1]!;
  return out;
}

function toProgressEvent(id: string, fields: string[]): ProgressEvent {
  const f = fieldMap(fields);
  let logs: string[] = [];
  try {
    const parsed = JSON.parse(f.l ?? '[]') as unknown;
    if (Array.isArray(parsed)) logs = parsed.filter((l): l is string => typeof l === 'string');
  } catch {
    // written by our worker; an unreadable entry only loses its lines
  }
  return { id, attempt: Number(f.a ?? 1), fraction: Number(f.f ?? 0), message: f.m ?? '', logs, logCount: Number(f.n ?? 0) };
}
