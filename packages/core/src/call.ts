import { z } from 'zod';
import { DeadlineMs, TOOL_NAME_PATTERN, ToolName } from './tool.js';
import type { SerializedError } from './errors.js';

export const CallStatus = {
  QUEUED: 'queued',
  AWAITING_APPROVAL: 'awaiting_approval',
  RUNNING: 'running',
  SUCCEEDED: 'succeeded',
  FAILED: 'failed',
  CANCELLED: 'cancelled',
} as const;
export type CallStatus = (typeof CallStatus)[keyof typeof CallStatus];

/** The longest a `POST /v1/calls` may hold the connection open for `wait`. */
export const MAX_WAIT_MS = 300_000;
export const DEFAULT_WAIT_MS = 30_000;

/** Longest `callbackUrl` accepted. */
export const MAX_CALLBACK_URL_LENGTH = 2048;

/**
 * Where the call's final record is POSTed when it finishes (a signed webhook): an absolute http(s)
 * URL. Only its form is checked here; egress rules apply when it is delivered.
 */
export const CallbackUrl = z
  .url({ protocol: /^https?$/, hostname: z.regexes.hostname, error: 'an absolute http(s) URL' })
  .max(MAX_CALLBACK_URL_LENGTH);

/** The body of `POST /v1/calls`. */
export const CallRequest = z
  .object({
    tool: ToolName,
    arguments: z.unknown().default({}),
    idempotencyKey: z.string().min(1).max(256).optional(),
    priority: z.number().int().min(1).max(1000).optional(),
    delayMs: z.number().int().min(0).max(86_400_000).optional(),
    wait: z.union([z.boolean(), z.number().int().min(0).max(MAX_WAIT_MS)]).optional(),
    /** Ends the call `DEADLINE_EXCEEDED` if it has not started this long after it is due; overrides the tool's. */
    deadlineMs: DeadlineMs.optional(),
    /** Runs this version of the tool (its code and schema) instead of the current one. */
    version: z.number().int().min(1).optional(),
    /** Receives the call's final record when it finishes (see {@link CallbackUrl}). */
    callbackUrl: CallbackUrl.optional(),
  })
  .strict();
export type CallRequest = z.infer<typeof CallRequest>;

/** What travels on the queue. Validated again by the worker when it dequeues. */
export const CallJobData = z.object({
  tool: ToolName,
  version: z.number().int().min(1),
  arguments: z.unknown(),
  tenant: z.string().min(1),
  enqueuedAt: z.number().int(),
  /** sha256 of the canonical JSON of the arguments: the audit trail and approvals refer to it. */
  argsHash: z.string().length(64),
  /**
   * When the call's deadline passes (ms since epoch): a worker that finds it still waiting then ends
   * it `DEADLINE_EXCEEDED` instead of running or putting it back. Absent on calls without a deadline
   * (and on jobs enqueued before deadlines existed).
   */
  deadlineAt: z.number().int().optional(),
  /** Where the final record is delivered (`callbackUrl` of the request); shown on the call record. */
  callbackUrl: z.string().max(MAX_CALLBACK_URL_LENGTH).optional(),
  /**
   * Its submitter waits for the finish (`wait: true`, MCP `tools/call`): the worker announces the
   * finished call with its record, so the waiter answers without reading it back. A call nobody
   * waits on is announced by id only, and no planner parses a record nobody asked for.
   */
  awaited: z.literal(true).optional(),
  /**
   * W3C trace context of the request that enqueued the call (`traceparent`, `tracestate`), set when
   * tracing is on: the worker's span continues that trace. A malformed value is dropped, never
   * a reason to refuse the call.
   */
  trace: z
    .object({ traceparent: z.string().max(256), tracestate: z.string().max(1024).optional() })
    .optional()
    .catch(undefined),
});
export type CallJobData = z.infer<typeof CallJobData>;

/**
 * The job data of a call as a worker reads it: checked against {@link CallJobData}, with a fast path
 * for data in the exact shape the producer writes (the schema's parse cost a worker ~5 µs per call);
 * anything else goes through the schema, so a malformed job gets the schema's message (and a
 * malformed trace context is dropped, as the schema does).
 */
export function readCallJobData(raw: unknown): { ok: true; data: CallJobData } | { ok: false; message: string } {
  if (isProducerShaped(raw)) return { ok: true, data: raw };
  const parsed = CallJobData.safeParse(raw);
  return parsed.success ? { ok: true, data: parsed.data } : { ok: false, message: parsed.error.message };
}

const JOB_FIELDS = new Set(['tool', 'version', 'arguments', 'tenant', 'enqueuedAt', 'argsHash', 'deadlineAt', 'callbackUrl', 'awaited', 'trace']);

/** Every field as the schema wants it, nothing it would change or drop (a bad `trace` goes the slow way). */
function isProducerShaped(raw: unknown): raw is CallJobData {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return false;
  const d = raw as Record<string, unknown>;
  for (const key in d) if (!JOB_FIELDS.has(key)) return false;
  return (
    typeof d.tool === 'string' &&
    TOOL_NAME_PATTERN.test(d.tool) &&
    Number.isInteger(d.version) &&
    (d.version as number) >= 1 &&
    'arguments' in d &&
    typeof d.tenant === 'string' &&
    d.tenant.length > 0 &&
    Number.isInteger(d.enqueuedAt) &&
    typeof d.argsHash === 'string' &&
    d.argsHash.length === 64 &&
    (d.deadlineAt === undefined || Number.isInteger(d.deadlineAt)) &&
    (d.callbackUrl === undefined || (typeof d.callbackUrl === 'string' && d.callbackUrl.length <= MAX_CALLBACK_URL_LENGTH)) &&
    (d.awaited === undefined || d.awaited === true) &&
    (d.trace === undefined || isTraceContext(d.trace))
  );
}

function isTraceContext(raw: unknown): boolean {
  if (typeof raw !== 'object' || raw === null) return false;
  const t = raw as Record<string, unknown>;
  for (const key in t) if (key !== 'traceparent' && key !== 'tracestate') return false;
  return (
    typeof t.traceparent === 'string' &&
    t.traceparent.length <= 256 &&
    (t.tracestate === undefined || (typeof t.tracestate === 'string' && t.tracestate.length <= 1024))
  );
}

/** The outcome of a finished call that failed: a stable code and a message. */
const CallError = z.object({
  code: z.string(),
  message: z.string(),
  retryable: z.boolean().optional(),
  details: z.unknown().optional(),
});

/**
 * A call as the API shows it (`GET /v1/calls/{id}`), as a schema for the API document and clients.
 * Loose: fields may be added, never renamed. Checked against {@link CallRecord}'s type below.
 */
export const CallRecord = z.looseObject({
  id: z.string(),
  tool: z.string(),
  version: z.number().int(),
  status: z.enum(['queued', 'awaiting_approval', 'running', 'succeeded', 'failed', 'cancelled']),
  tenant: z.string().optional(),
  argsHash: z.string().optional(),
  result: z.unknown().optional(),
  cached: z.boolean().optional(),
  error: CallError.optional(),
  logs: z.array(z.string()).optional(),
  attempts: z.number().int(),
  starts: z.number().int().optional(),
  callbackUrl: z.string().optional(),
  createdAt: z.string(),
  timings: z.object({ queuedMs: z.number().nullable(), runMs: z.number().nullable(), startedAt: z.number().optional() }),
});

/** What a worker stores as the job's return value. */
export type CallOutput = { result: unknown; logs: string[]; cached?: boolean; startedAt?: number };

/** A call as the API shows it. */
export type CallRecord = {
  id: string;
  tool: string;
  version: number;
  status: CallStatus;
  tenant?: string;
  argsHash?: string;
  result?: unknown;
  cached?: boolean;
  error?: SerializedError;
  logs?: string[];
  attempts: number;
  /** Times a worker took the call up: more than `attempts` when a worker died mid-run or a limit put it back. */
  starts?: number;
  /** The request's `callbackUrl`: the final record is POSTed there. */
  callbackUrl?: string;
  createdAt: string;
  timings: { queuedMs: number | null; runMs: number | null; startedAt?: number };
};

// The schema and the type describe the same record: a field added to one and not the other fails the build.
const _recordSchemaMatchesType: z.ZodType<CallRecord> = CallRecord;
void _recordSchemaMatchesType;

export function isFinished(status: CallStatus): boolean {
  return status === 'succeeded' || status === 'failed' || status === 'cancelled';
}
