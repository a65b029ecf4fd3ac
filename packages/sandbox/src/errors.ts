import { ToolExecError, toToolExecError, type CallErrorCode } from '@toolplane/core';

/** The sandbox's one way to make a call error; the code decides retryability (`RETRYABLE_CODES`). */
export function fail(code: CallErrorCode, message: string, cause?: unknown): ToolExecError {
  return new ToolExecError(code, message, { cause });
}

/** A code from the in-isolate runner (a string that crossed the isolate boundary), checked. */
export function failWithReportedCode(code: string, message: string): ToolExecError {
  return toToolExecError({ code, message });
}

const TIMED_OUT = /timed out/i;
const MEMORY = /memory limit|out of memory/i;
const DISPOSED = /disposed/i;

/** isolated-vm's own time limit ended the section (its errors carry no code, only this message). */
export function isTimeout(err: unknown): boolean {
  return TIMED_OUT.test(messageOf(err));
}

/** A limit (time, heap, disposal) ended the section, as opposed to an error of the tool's code. */
export function isLimit(err: unknown): boolean {
  const message = messageOf(err);
  return TIMED_OUT.test(message) || DISPOSED.test(message) || /memory/i.test(message);
}

/** Marks failures of compiling, linking or evaluating tool code, which are the tool's own errors. */
export class EvaluationError extends Error {}

/**
 * The one place that decides a call's code from an isolated-vm failure. `isolateDisposed` tells a
 * heap-limit disposal (isolated-vm says only "disposed") from other breakage.
 */
export function classifyIsolateError(err: unknown, isolateDisposed: boolean): ToolExecError {
  if (err instanceof ToolExecError) return err;
  const message = messageOf(err);
  if (TIMED_OUT.test(message)) return fail('TIMEOUT', 'tool exceeded its time limit', err);
  if (MEMORY.test(message) || (isolateDisposed && DISPOSED.test(message))) {
    return fail('OUT_OF_MEMORY', 'tool exceeded its memory limit', err);
  }
  // Errors raised while compiling, linking or evaluating the module are the tool's fault, not ours.
  if (err instanceof EvaluationError) return fail('TOOL_ERROR', message.slice(0, 4000), err);
  return fail('SANDBOX_ERROR', message.slice(0, 4000), err);
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Runs a compile, link or evaluation step of tool code: its failures are the tool's own errors. */
export function evaluating<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err: unknown) {
    throw asEvaluationError(err);
  }
}

export async function evaluatingAsync<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err: unknown) {
    throw asEvaluationError(err);
  }
}

function asEvaluationError(err: unknown): Error {
  const message = messageOf(err);
  // Limits keep their own classification.
  if (isLimit(err)) return err instanceof Error ? err : new Error(message);
  const name = err instanceof Error && err.name !== 'Error' ? `${err.name}: ` : '';
  return new EvaluationError(`${name}${message}`.slice(0, 4000), { cause: err });
}

/**
 * The runner's `start` never throws; isolated-vm rethrows a promise rejection that tool code left
 * unhandled during the call instead. That is the tool's business (the call's outcome stands), and
 * it must not reach the host's own handlers: drop it. Limits (timeout, disposal) still count.
 */
export function ignoreStrayRejection(fn: () => unknown): void {
  try {
    fn();
  } catch (err: unknown) {
    rethrowLimits(err);
  }
}

export function rethrowLimits(err: unknown): void {
  if (isLimit(err)) throw err;
}
