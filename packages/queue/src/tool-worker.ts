import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import { isToolExecError, type CallJobData, type CallOutput } from '@toolplane/core';
import type { RedisConnection } from './connection.js';
import type { Keys } from './keys.js';
import { encodeFailure } from './failure.js';

export type ToolWorkerOptions = {
  /** Calls of this tool run at once in this process. */
  concurrency: number;
  /**
   * How long a worker's lock on a running call lasts before another worker may take the call over.
   * Renewed at half this period while the call runs, so only a dead worker loses its calls.
   * @default 30_000
   */
  lockDurationMs?: number;
  /** @default 5_000 */
  stalledIntervalMs?: number;
};

export type CallProcessor = (
  job: Job<CallJobData, CallOutput>,
  token: string | undefined,
  signal: AbortSignal,
) => Promise<CallOutput>;

/**
 * A BullMQ worker for one tool's queue. The processor throws {@link ToolExecError}s; here they become
 * what BullMQ understands: retryable ones are rethrown for attempts and backoff, the others end the
 * call at once as `UnrecoverableError`. The failed reason keeps the stable code (`TIMEOUT: …`).
 */
export function createToolWorker(
  tool: string,
  keys: Keys,
  connection: RedisConnection,
  processor: CallProcessor,
  opts: ToolWorkerOptions,
): Worker<CallJobData, CallOutput> {
  return new Worker<CallJobData, CallOutput>(
    keys.queueName(tool),
    async (job, token, signal) => {
      try {
        return await processor(job, token, signal ?? new AbortController().signal);
      } catch (err: unknown) {
        if (err instanceof DelayedError || (err instanceof Error && err.name === 'RateLimitError')) throw err;
        if (isToolExecError(err)) {
          const reason = encodeFailure(err.toJSON());
          throw err.opts.retryable ? new Error(reason, { cause: err }) : new UnrecoverableError(reason);
        }
        const message = err instanceof Error ? err.message : String(err);
        throw new Error(encodeFailure({ code: 'SANDBOX_ERROR', message }), { cause: err });
      }
    },
    {
      connection,
      prefix: keys.bullPrefix,
      concurrency: opts.concurrency,
      lockDuration: opts.lockDurationMs ?? 30_000,
      stalledInterval: opts.stalledIntervalMs ?? 5_000,
      maxStalledCount: 3,
      autorun: true,
    },
  );
}
