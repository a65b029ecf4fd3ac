import type { CallErrorCode } from './errors.js';

/** A failed call as clients see it (`error` of `GET /v1/calls/{id}`): the one shape every path produces. */
export type PublicFailure = { code: CallErrorCode; message: string; retryable: boolean };

/**
 * Whether another attempt of a call that failed with this code may help: the only place that
 * decides it. Throw sites name a code and never a retryability, so a code means the same thing on
 * every path (the queue retries it or not, the breaker counts it or not, the record says so).
 */
export const RETRYABLE_CODES: Readonly<Record<CallErrorCode, boolean>> = Object.freeze({
  // The same call may finish in time on a less busy host or once a slow downstream recovers.
  TIMEOUT: true,
  // The same code with the same arguments allocates the same again.
  OUT_OF_MEMORY: false,
  RESULT_TOO_LARGE: false,
  // The tool's own error (a thrown exception, an MCP upstream's error or refusal): tools call flaky
  // downstreams, which is what the tool's `retries` are for; a tool that fails every time opens
  // its breaker, and the call's deadline bounds the wait.
  TOOL_ERROR: true,
  // Always retryable. SANDBOX_ERROR is the platform's fault, never the call's: a sandbox host
  // shutting down under a SIGTERM drain, a host that went away, Redis failing mid-call, a secret
  // that cannot be read right now. Another attempt (often on another worker) is the remedy; a call
  // that crashes hosts repeatedly ends POISONED instead, and attempts and the deadline bound the rest.
  // (It used to be retryable from the sandbox and not from secret reads, so the same code was
  // retried or not, and counted by the breaker or not, depending on where it was thrown.)
  SANDBOX_ERROR: true,
  EGRESS_DENIED: false,
  CANCELLED: false,
  REJECTED: false,
  DEADLINE_EXCEEDED: false,
  POISONED: false,
  QUOTA_EXCEEDED: false,
});

/**
 * Longest message kept: a failure can quote a tool's output, and it is stored with the call. Above
 * the sandbox's own 4,000 characters plus a source-mapped stack, so only wild values are cut.
 */
export const MAX_FAILURE_MESSAGE_CHARS = 16_000;

const UNKNOWN = 'unknown failure';
/** How many `cause` links are followed to find a coded failure inside wrappers. */
const MAX_CAUSE_DEPTH = 5;

/** Whether `code` is a public call code (an own key of the table, not e.g. `toString`). */
export function isCallErrorCode(code: unknown): code is CallErrorCode {
  return typeof code === 'string' && Object.hasOwn(RETRYABLE_CODES, code);
}

/**
 * Turns anything thrown or reported into the public `{code, message, retryable}`. A failure that
 * carries a public call code (a `ToolExecError`, or the same as data from another process or the
 * isolate) keeps it, also when wrapped as some error's `cause`; anything else is the platform's own
 * failure, `SANDBOX_ERROR`. Retryability always comes from {@link RETRYABLE_CODES}. Never throws,
 * whatever `err` is (getters that throw, proxies, values without a string form).
 */
export function toPublicFailure(err: unknown): PublicFailure {
  try {
    let current: unknown = err;
    for (let depth = 0; depth <= MAX_CAUSE_DEPTH && isObject(current); depth++) {
      const code = read(current, 'code');
      if (isCallErrorCode(code)) return failure(code, messageOf(current) ?? code);
      current = read(current, 'cause');
    }
    return failure('SANDBOX_ERROR', messageOf(err) ?? UNKNOWN);
  } catch {
    // Only reached when even the fallbacks above could not look at `err`.
    return failure('SANDBOX_ERROR', UNKNOWN);
  }
}

function failure(code: CallErrorCode, message: string): PublicFailure {
  return { code, message: message.slice(0, MAX_FAILURE_MESSAGE_CHARS), retryable: RETRYABLE_CODES[code] };
}

function isObject(value: unknown): value is object {
  return (typeof value === 'object' && value !== null) || typeof value === 'function';
}

/** A property, or `undefined` when reading it throws (a hostile getter or proxy trap). */
function read(value: object, key: string): unknown {
  try {
    return (value as Record<string, unknown>)[key];
  } catch {
    return undefined;
  }
}

/** The text of a thrown value: an error's `message`, a thrown string or number; `undefined` if none. */
function messageOf(value: unknown): string | undefined {
  if (typeof value === 'string') return value || undefined;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (!isObject(value)) return undefined;
  const message = read(value, 'message');
  return typeof message === 'string' && message !== '' ? message : undefined;
}
