import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import { toPublicFailure, type CallJobData, type CallOutput } from '@toolplane/core';
import { encodeFailure } from './failure.js';
import type { TenantQuotas } from './tenant-quotas.js';

/** What the call scheduler's lanes give BullMQ: runs one call, throws {@link ToolExecError}s. */
export type CallProcessor = (
  job: Job<CallJobData, CallOutput>,
  token: string | undefined,
  signal: AbortSignal,
) => Promise<CallOutput>;

/** What a call's result is kept for when its job says nothing: the planner's default retention. */
const DEFAULT_KEEP_MS = 7 * 86_400_000;

/**
 * Turns a call processor into what BullMQ understands. Whatever the processor throws becomes its
 * public failure (`toPublicFailure`): retryable ones are rethrown for attempts and backoff, the others
 * end the call at once as `UnrecoverableError`. The failed reason keeps the stable code (`TIMEOUT: …`). With `quotas`,
 * each result is charged to its tenant's stored-result quota before BullMQ stores it (a result that
 * does not fit fails the call with `QUOTA_EXCEEDED` instead).
 */
export function toBullProcessor(processor: CallProcessor, quotas: TenantQuotas | undefined) {
  return async (job: Job<CallJobData, CallOutput>, token?: string, signal?: AbortSignal): Promise<CallOutput> => {
    try {
      const output = await processor(job, token, signal ?? new AbortController().signal);
      // BullMQ keeps the return value for the retention the planner gave the job: that is what is charged.
      if (quotas) await quotas.storeResult(job.data.tenant, job.id!, output, keepMsOf(job));
      return output;
    } catch (err: unknown) {
      if (err instanceof DelayedError || (err instanceof Error && err.name === 'RateLimitError')) throw err;
      const failure = toPublicFailure(err);
      const reason = encodeFailure(failure);
      throw failure.retryable ? new Error(reason, { cause: err }) : new UnrecoverableError(reason);
    }
  };
}

function keepMsOf(job: Job<CallJobData, CallOutput>): number {
  const keep = job.opts.removeOnComplete;
  return typeof keep === 'object' && 'age' in keep && keep.age ? keep.age * 1000 : DEFAULT_KEEP_MS;
}
