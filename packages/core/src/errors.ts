import { z } from 'zod';
import { RETRYABLE_CODES, toPublicFailure, type PublicFailure } from './failure.js';

/** Codes a request to the API can fail with. Stable: clients switch on them. */
export const RequestErrorCode = z.enum([
  'INVALID_JSON',
  'INVALID_REQUEST',
  'PAYLOAD_TOO_LARGE',
  /** A request body that is not `application/json` (or `application/*+json`): 415. */
  'UNSUPPORTED_MEDIA_TYPE',
  'NOT_FOUND',
  'TOOL_NOT_FOUND',
  'INVALID_TOOL',
  'INVALID_ARGUMENTS',
  'UNAUTHORIZED',
  'FORBIDDEN',
  'CONFLICT',
  'RATE_LIMITED',
  'UNAVAILABLE',
  /** An MCP upstream could not be reached or answered badly while registering or refreshing it. */
  'UPSTREAM_ERROR',
  /** A tenant ceiling (calls in flight, stored result bytes) is reached: 429. */
  'QUOTA_EXCEEDED',
  'INTERNAL',
]);
export type RequestErrorCode = z.infer<typeof RequestErrorCode>;

/** Codes a tool call can end with. Stable: they are stored with the call. */
export const CallErrorCode = z.enum([
  'TIMEOUT',
  'OUT_OF_MEMORY',
  'RESULT_TOO_LARGE',
  'TOOL_ERROR',
  'SANDBOX_ERROR',
  'EGRESS_DENIED',
  'CANCELLED',
  'REJECTED',
  /** Still waiting past the call's deadline (behind a breaker, hold, limit or backlog). */
  'DEADLINE_EXCEEDED',
  /** Its runs stalled or crashed a worker or sandbox host twice; it is not handed to a third. */
  'POISONED',
  /** Storing the result would take the tenant past its stored-result quota. */
  'QUOTA_EXCEEDED',
]);
export type CallErrorCode = z.infer<typeof CallErrorCode>;

export type ErrorCode = RequestErrorCode | CallErrorCode;

/** How errors cross process and isolate boundaries: plain data, never an instance. */
export const SerializedError = z.object({
  code: z.string(),
  message: z.string(),
  retryable: z.boolean().optional(),
  details: z.unknown().optional(),
});
export type SerializedError = z.infer<typeof SerializedError>;

/** An error the API answers with a status and a stable code. */
export class RequestError extends Error {
  override readonly name: string = 'RequestError';
  constructor(
    readonly code: RequestErrorCode,
    message: string,
    readonly details?: unknown,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * A tool call that ended badly, with its public code. Whether another attempt may help follows from
 * the code ({@link RETRYABLE_CODES}), never from the throw site.
 */
export class ToolExecError extends Error {
  override readonly name: string = 'ToolExecError';
  constructor(
    readonly code: CallErrorCode,
    message: string,
    opts: { cause?: unknown } = {},
  ) {
    super(message, { cause: opts.cause });
  }

  get retryable(): boolean {
    return RETRYABLE_CODES[this.code];
  }

  toJSON(): PublicFailure {
    return toPublicFailure(this);
  }
}

/** `err` itself when it is a {@link ToolExecError}; otherwise one made by {@link toPublicFailure}, with `err` as its cause. */
export function toToolExecError(err: unknown): ToolExecError {
  if (isToolExecError(err)) return err;
  const { code, message } = toPublicFailure(err);
  return new ToolExecError(code, message, { cause: err });
}

export function isToolExecError(err: unknown): err is ToolExecError {
  try {
    return err instanceof ToolExecError;
  } catch {
    // A proxy whose prototype trap throws is no ToolExecError.
    return false;
  }
}

export function isRequestError(err: unknown): err is RequestError {
  return err instanceof RequestError;
}

/** Exhaustiveness guard for `switch` statements over unions. */
export function assertNever(value: never): never {
  throw new Error(`unexpected value: ${JSON.stringify(value)}`);
}
