import { describe, expect, test } from 'vitest';
import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import { CallErrorCode, RETRYABLE_CODES, ToolExecError, type CallJobData, type CallOutput, type PublicFailure } from '@toolplane/core';
import { decodeFailure, encodeFailure } from './failure.js';
import { toBullProcessor } from './tool-worker.js';

/**
 * The worker's side of failures without Redis or processes: what BullMQ is handed for each failure
 * (retried or not, and the failed reason), and what the planner's read model makes of that reason.
 */

/** A job as far as `toBullProcessor` looks at it without quotas: not at all. */
const JOB = {} as unknown as Job<CallJobData, CallOutput>;

/** What BullMQ gets when the processor throws `thrown`. */
async function handedToBull(thrown: unknown): Promise<unknown> {
  const run = toBullProcessor(() => Promise.reject(thrown as Error), undefined);
  return run(JOB).then(
    () => {
      throw new Error('expected the call to fail');
    },
    (err: unknown) => err,
  );
}

describe('toBullProcessor: one mapping for every failure', () => {
  test.each(CallErrorCode.options)('%s: retried by BullMQ exactly when the table says so, its code in the failed reason', async (code) => {
    const thrown = new ToolExecError(code, `it was ${code}`);
    const err = await handedToBull(thrown);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toBe(`${code}: it was ${code}`);
    // BullMQ spends no further attempt on an UnrecoverableError.
    expect(err instanceof UnrecoverableError).toBe(!RETRYABLE_CODES[code]);
    // The planner reads back what the worker decided.
    expect(decodeFailure((err as Error).message)).toEqual({ code, message: `it was ${code}`, retryable: RETRYABLE_CODES[code] });
  });

  test.each<[string, unknown, string]>([
    ['a plain error', new Error('connection lost'), 'SANDBOX_ERROR: connection lost'],
    ['a thrown string', 'boom', 'SANDBOX_ERROR: boom'],
    ['a thrown object', { nothing: 'useful' }, 'SANDBOX_ERROR: unknown failure'],
    ['a wrapped tool error', new Error('attempt failed', { cause: new ToolExecError('EGRESS_DENIED', 'host not allowed') }), 'EGRESS_DENIED: host not allowed'],
  ])('%s becomes its public failure', async (_name, thrown, reason) => {
    const err = (await handedToBull(thrown)) as Error;
    expect(err.message).toBe(reason);
    expect(err instanceof UnrecoverableError).toBe(!decodeFailure(reason).retryable);
  });

  test('holding a call back is no failure: put-backs and rate limits pass through untouched', async () => {
    const delayed = new DelayedError();
    const limited = Worker.RateLimitError();
    expect(await handedToBull(delayed)).toBe(delayed);
    expect(await handedToBull(limited)).toBe(limited);
  });

  test('a result passes through', async () => {
    const run = toBullProcessor(() => Promise.resolve({ result: 42, logs: [] }), undefined);
    expect(await run(JOB)).toEqual({ result: 42, logs: [] });
  });
});

describe('decodeFailure: the read model of a failed job', () => {
  test('a call that stalled twice is POISONED, not retried', () => {
    expect(decodeFailure('job stalled more than allowable limit')).toMatchObject({ code: 'POISONED', retryable: false });
  });

  test.each<[string, string | undefined, PublicFailure]>([
    ["BullMQ's own reason", 'Missing lock for job 7. moveToFinished', { code: 'SANDBOX_ERROR', message: 'Missing lock for job 7. moveToFinished', retryable: true }],
    ['no reason', undefined, { code: 'SANDBOX_ERROR', message: 'unknown failure', retryable: true }],
    ['an unknown code is not taken for one', 'NOT_A_CODE: forged', { code: 'SANDBOX_ERROR', message: 'NOT_A_CODE: forged', retryable: true }],
    ['a message over several lines', 'TOOL_ERROR: Error: bad\n    at tool.ts:3:9', { code: 'TOOL_ERROR', message: 'Error: bad\n    at tool.ts:3:9', retryable: true }],
    ['an empty message', 'TIMEOUT: ', { code: 'TIMEOUT', message: 'TIMEOUT', retryable: true }],
  ])('%s', (_name, reason, expected) => {
    expect(decodeFailure(reason)).toEqual(expected);
  });

  test('encodes what it decodes', () => {
    for (const code of CallErrorCode.options) {
      const failure = { code, message: 'm: with a colon', retryable: RETRYABLE_CODES[code] };
      expect(decodeFailure(encodeFailure(failure))).toEqual(failure);
    }
  });
});
