import type { CallInfo, DisposalReason, ToolSource } from '../sandbox.js';

/**
 * The messages between a worker (or planner) and its sandbox host processes: one JSON object per
 * line on a socket pair, written in batches of one event-loop tick. Only data crosses.
 */

/** A tool as sent to a host: once per host and version key, the host keeps it (the source map stays behind). */
export type WireTool = Omit<ToolSource, 'sourceMap'>;

/** Trace context of the parent's `sandbox.run` span, so the host's `ctx.fetch` spans join its trace. */
export type WireTrace = { traceId: string; spanId: string; traceFlags: number };

export type HostRequest =
  /** `tool` only when the host may not have `key` yet; `args` is the arguments' JSON. */
  | { t: 'run'; id: number; key: string; tool?: WireTool; args: string; secrets?: Record<string, string>; trace?: WireTrace; call?: CallInfo }
  | { t: 'cancel'; id: number }
  | { t: 'check'; id: number; code: string };

/** A span the host recorded for a call; the parent re-creates it under the call's `sandbox.run`. */
export type WireSpan = {
  name: string;
  kind: number;
  attributes: Record<string, string | number | boolean>;
  status?: { code: number; message?: string };
  startTime: number;
  endTime: number;
};

export type HostReply =
  | { t: 'ready' }
  /** Every {@link HEARTBEAT_MS}: the host's event loop is turning. */
  | { t: 'beat' }
  /** The call waits for an isolate; its deadline starts at the `start` that follows. */
  | { t: 'wait'; id: number }
  /** The call got its isolate after waiting for one; its deadline starts now. */
  | { t: 'start'; id: number }
  | { t: 'done'; id: number; ok: true; value: unknown; logs: string[]; runMs: number }
  /** `stack`: the tool-code frames of a thrown Error, mapped through the tool's source map by the parent. */
  | { t: 'done'; id: number; ok: false; code: string; message: string; logs: string[]; stack?: string }
  /** The host no longer has the tool: send the call again with it. */
  | { t: 'miss'; id: number }
  | { t: 'checked'; id: number; ok: true }
  | { t: 'checked'; id: number; ok: false; message: string }
  | { t: 'retryAfter'; id: number; ms: number }
  /** A `ctx.progress` report of the call, with the log lines written since its previous one. */
  | { t: 'progress'; id: number; fraction: number; message: string; logs: string[] }
  | { t: 'span'; id: number; span: WireSpan }
  | { t: 'disposed'; reason: DisposalReason };

export const HEARTBEAT_MS = 100;

/**
 * Newline-delimited JSON in, with a cap on one line: a host is our own code, but a runaway line
 * must not grow the parent's memory without bound.
 */
export function lineReader(onMessage: (msg: unknown) => void, maxLineBytes: number): (chunk: Buffer) => void {
  // Only the new chunk is searched for the end of a line, so a long line costs linear time.
  let parts: Buffer[] = [];
  let size = 0;
  return (chunk) => {
    let start = 0;
    let nl = chunk.indexOf(10);
    while (nl >= 0) {
      const piece = chunk.subarray(start, nl);
      const line = (parts.length > 0 ? Buffer.concat([...parts, piece]) : piece).toString('utf8');
      parts = [];
      size = 0;
      if (line.length > 0) onMessage(JSON.parse(line) as unknown);
      start = nl + 1;
      nl = chunk.indexOf(10, start);
    }
    if (start < chunk.length) {
      parts.push(chunk.subarray(start));
      size += chunk.length - start;
      if (size > maxLineBytes) throw new Error(`sandbox host message longer than ${maxLineBytes} bytes`);
    }
  };
}

/**
 * Collects messages and writes them in one `write` per event-loop tick; `now` writes at once, with
 * everything collected before it (in order): for what must leave before the thread may block.
 */
export type BatchedWriter = ((msg: object) => void) & { now: (msg: object) => void };

/** Collects messages and writes them in one `write` per event-loop tick. */
export function batchedWriter(write: (text: string) => void): BatchedWriter {
  let batch: string[] = [];
  const flush = () => {
    if (batch.length === 0) return;
    const text = batch.join('\n') + '\n';
    batch = [];
    write(text);
  };
  const send = ((msg: object) => {
    batch.push(JSON.stringify(msg));
    if (batch.length === 1) setImmediate(flush);
  }) as BatchedWriter;
  send.now = (msg) => {
    batch.push(JSON.stringify(msg));
    flush();
  };
  return send;
}
