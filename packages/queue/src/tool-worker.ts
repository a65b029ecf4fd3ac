import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import { isToolExecError, type CallJobData, type CallOutput } from '@toolplane/core';
import type { RedisConnection } from './connection.js';
import type { Keys } from './keys.js';
import { encodeFailure } from './failure.js';
import type { TenantQuotas } from './tenant-quotas.js';

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
  /**
   * The tenants' ceilings: each result is charged to its tenant's stored-result quota before BullMQ
   * stores it (a result that does not fit fails the call with `QUOTA_EXCEEDED` instead), and a call
   * leaves its tenant's calls in flight when it ends.
   */
  quotas?: TenantQuotas;
};

/** What a call's result is kept for when its job says nothing: the planner's default retention. */
const DEFAULT_KEEP_MS = 7 * 86_400_000;

export type CallProcessor = (
  job: Job<CallJobData, CallOutput>,
  token: string | undefined,
  signal: AbortSignal,
) => Promise<CallOutput>;

/**
 * A BullMQ worker for one tool's queue. The processor throws {@link ToolExecError}s; here they become
 * what BullMQ understands: retryable ones are rethrown for attempts and backoff, the others end the
 * call at once as `UnrecoverableError`. The failed reason keeps the stable code (`TIMEOUT: …`).
 * With `quotas`, results pass the tenant's stored-result quota on their way to BullMQ.
 */
export function createToolWorker(
  tool: string,
  keys: Keys,
  connection: RedisConnection,
  processor: CallProcessor,
  opts: ToolWorkerOptions,
): Worker<CallJobData, CallOutput> {
  const quotas = opts.quotas;
  const worker = new Worker<CallJobData, CallOutput>(
    keys.queueName(tool),
    async (job, token, signal) => {
      try {
        const output = await processor(job, token, signal ?? new AbortController().signal);
        // BullMQ keeps the return value for the retention the planner gave the job: that is what is charged.
        if (quotas) await quotas.storeResult(job.data.tenant, job.id!, output, keepMsOf(job));
        return output;
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
      // A call whose run stalled a worker twice (the worker died or hung under it) is poison: it
      // fails (POISONED, see `decodeFailure`) instead of walking through the whole fleet.
      maxStalledCount: 1,
      autorun: true,
    },
  );
  if (quotas) {
    // `finishedOn` is set only when no attempt is left: a call that will be retried stays in flight.
    worker.on('failed', (job) => {
      if (job?.id && job.finishedOn && typeof job.data?.tenant === 'string') {
        // Should this fail, the entry goes stale by itself (TenantQuotas).
        quotas.release(job.data.tenant, [job.id]).catch(() => {});
      }
    });
  }
  return worker;
}

function keepMsOf(job: Job<CallJobData, CallOutput>): number {
  const keep = job.opts.removeOnComplete;
  return typeof keep === 'object' && 'age' in keep && keep.age ? keep.age * 1000 : DEFAULT_KEEP_MS;
}
