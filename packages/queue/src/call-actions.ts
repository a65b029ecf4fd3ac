import { Job } from 'bullmq';
import { RequestError, type CallJobData, type CallOutput, type CallRecord } from '@toolplane/core';
import type { RedisConnection } from './connection.js';
import type { Keys } from './keys.js';
import { statusOf, toCallRecord, type Tombstone } from './call-record.js';
import type { CallReads, EarlierRun } from './call-reads.js';
import type { TenantQuotas } from './tenant-quotas.js';
import type { ToolQueueCache } from './tool-queue-cache.js';
import type { ToolWakeups } from './tool-wakeups.js';

export type CallActionsOptions = {
  /** How long a call's id, tombstone, approval grant and earlier runs are kept (the calls' retention). */
  retentionMs: number;
  /** An archiver moves finished calls to a history store: a call removed before running is listed for it. */
  archived: boolean;
};

/**
 * What a person (or an agent run) does to a call that exists: approve or reject one awaiting
 * approval, cancel one not finished yet, run a failed one again; and the approval grant the worker
 * checks before running a call of a tool that needs approval. Each answers the call's record as it
 * stands after, read through {@link CallReads}.
 */
export class CallActions {
  private readonly retentionMs: number;
  private readonly archived: boolean;

  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: Keys,
    private readonly queues: ToolQueueCache,
    private readonly reads: CallReads,
    private readonly quotas: TenantQuotas,
    private readonly wakeups: ToolWakeups,
    opts: CallActionsOptions,
  ) {
    this.retentionMs = opts.retentionMs;
    this.archived = opts.archived;
  }

  /**
   * Cancels a call: a queued one is removed at once; a running one is aborted by its worker (which
   * listens on the cancel channel) within milliseconds. Returns the record as it stands after.
   */
  async cancel(id: string): Promise<CallRecord | undefined> {
    return this.removeBeforeRun(id, 'CANCELLED');
  }

  /** Approves a call awaiting approval; `argsHash`, when given, must be the hash of its arguments. */
  async approve(id: string, argsHash?: string): Promise<CallRecord | undefined> {
    const tool = await this.reads.toolOf(id);
    if (tool === null) return undefined;
    const pendingKey = this.keys.approvalPending(tool, id);
    const pending = await this.redis.get(pendingKey);
    if (pending === null) throw new RequestError('CONFLICT', 'call is not awaiting approval');
    // Past its deadline the call has left the delayed set to be ended: too late to approve it.
    const waiting = await Job.fromId(this.queues.queue(tool), id);
    if (!waiting || (await waiting.getState()) !== 'delayed') throw new RequestError('CONFLICT', 'call is no longer awaiting approval');
    if (argsHash !== undefined && argsHash !== pending) {
      throw new RequestError('CONFLICT', 'argsHash does not match the arguments of this call');
    }
    await this.redis
      .multi()
      .set(this.keys.approvalGrant(tool, id), pending, 'PX', this.retentionMs)
      .del(pendingKey)
      .exec();
    await waiting.promote();
    await this.wakeups.wake(tool);
    return this.reads.get(id);
  }

  /** Rejects a call awaiting approval: it ends `failed` with `REJECTED` and never runs. */
  async reject(id: string): Promise<CallRecord | undefined> {
    const tool = await this.reads.toolOf(id);
    if (tool === null) return undefined;
    if (!(await this.redis.exists(this.keys.approvalPending(tool, id)))) {
      throw new RequestError('CONFLICT', 'call is not awaiting approval');
    }
    await this.redis.del(this.keys.approvalPending(tool, id));
    return this.removeBeforeRun(id, 'REJECTED');
  }

  /** The approval grant of a call: the hash of the arguments that were approved, or null. */
  approvalGrant(tool: string, id: string): Promise<string | null> {
    return this.redis.get(this.keys.approvalGrant(tool, id));
  }

  /** Runs a failed call again, with a fresh set of attempts. */
  async retry(id: string): Promise<CallRecord | undefined> {
    const tool = await this.reads.toolOf(id);
    if (tool === null) return undefined;
    const job = await Job.fromId(this.queues.queue(tool), id);
    if (!job) throw new RequestError('CONFLICT', 'call can no longer be retried');
    const state = await job.getState();
    if (state !== 'failed') throw new RequestError('CONFLICT', `only failed calls can be retried; this one is ${statusOf(state)}`);
    const record = toCallRecord(job as Job<CallJobData, CallOutput>, state);
    if (record.status === 'cancelled') throw new RequestError('CONFLICT', 'cancelled calls cannot be retried');
    // Running again, it is in flight again: past the tenant's ceilings it is refused like a new call.
    const tenant = (job.data as CallJobData).tenant;
    await this.quotas.admit({ tenant, tool, ids: [id], createdAt: job.timestamp, inFlightMs: this.retentionMs, retentionMs: this.retentionMs, record: false });
    // Read before the retry: BullMQ clears the job's times on it.
    const { processedOn, finishedOn } = job;
    try {
      // A retry runs the call again from now: it gets as long as it had from its creation, instead
      // of ending DEADLINE_EXCEEDED at once on the deadline its first run already passed.
      const data = job.data as CallJobData;
      if (data.deadlineAt !== undefined) {
        const deadlineAt = Date.now() + Math.max(1, data.deadlineAt - data.enqueuedAt);
        await job.updateData({ ...data, deadlineAt });
        await this.redis.zadd(this.keys.callDeadlines(tool), deadlineAt, id);
      }
      await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
      await this.wakeups.wake(tool);
    } catch (err: unknown) {
      await this.quotas.release(tenant, [id]).catch(() => {});
      throw err;
    }
    // BullMQ resets the job's attempts and times on retry: what the failed run was is kept beside it.
    const earlier: EarlierRun = {
      attempts: record.attempts,
      ...(record.starts !== undefined ? { starts: record.starts } : {}),
      ...(record.error ? { error: record.error } : {}),
      ...(processedOn ? { startedAt: processedOn } : {}),
      ...(finishedOn ? { finishedAt: finishedOn } : {}),
      runMs: record.timings.runMs,
      retriedAt: Date.now(),
    };
    const runsKey = this.keys.callEarlierRuns(tool, id);
    await this.redis.multi().rpush(runsKey, JSON.stringify(earlier)).pexpire(runsKey, this.retentionMs).exec();
    return this.reads.get(id);
  }

  private async removeBeforeRun(id: string, code: Tombstone['code']): Promise<CallRecord | undefined> {
    const tool = await this.reads.toolOf(id);
    if (tool === null) return undefined;
    const queue = this.queues.queue(tool);
    const job = await Job.fromId<CallJobData, CallOutput>(queue, id);
    if (!job) return this.reads.get(id);
    const state = await job.getState();
    if (state === 'completed' || state === 'failed') return toCallRecord(job, state);
    const tomb: Tombstone = {
      code,
      tool,
      version: job.data.version,
      createdAt: job.timestamp,
      at: Date.now(),
      tenant: job.data.tenant,
      argsHash: job.data.argsHash,
    };
    // The marker goes first: a worker that picks the call up in between sees it before running.
    await this.redis.set(this.keys.cancelMarker(tool, id), JSON.stringify(tomb), 'PX', this.retentionMs);
    // For the archiver: this call ended without a job in BullMQ's finished sets.
    if (this.archived) await this.redis.zadd(this.keys.tombstones(tool), tomb.at, id);
    try {
      await job.remove();
    } catch {
      // Running (locked by a worker): the worker aborts it when told on the cancel channel, and the
      // call leaves its tenant's calls in flight when it fails there.
      await this.redis.publish(this.keys.callCancel, `${tool}\n${id}`);
      return this.reads.get(id);
    }
    // Removed before it ran: no longer in flight nor due. Should Redis fail here, both entries go
    // stale by themselves (the in-flight one past its time, the deadline one when the sweep meets it).
    await Promise.all([
      this.quotas.release(tomb.tenant, [id]).catch(() => {}),
      this.redis.zrem(this.keys.callDeadlines(tool), id).catch(() => {}),
    ]);
    // Whoever waits on this call (a `wait` request, an agent run) learns at once.
    await this.redis.publish(this.keys.callDone, id);
    return this.reads.get(id);
  }
}
