import type { JobsOptions } from 'bullmq';
import { hashArguments, newCallId, type CallJobData, type Tool } from '@toolplane/core';
import type { RedisConnection } from './connection.js';
import type { Keys } from './keys.js';
import { idempotentCallId } from './call-ids.js';
import { LuaScript } from './lua-script.js';
import type { CallAdmission, TenantQuotas } from './tenant-quotas.js';
import type { ToolQueueCache } from './tool-queue-cache.js';
import type { ToolWakeups } from './tool-wakeups.js';

const TAG_CALLS = LuaScript.fromFile('tag-calls-5');

/**
 * BullMQ priorities up to here are fair-share start tags (`lua/tag-calls-5.lua`); an explicit
 * priority p (1–1000) becomes `FAIR_TAG_LIMIT + p`, so prioritized calls keep their order among
 * themselves and, as before, run after calls that set none. BullMQ's priorities stop at 2^21.
 */
const FAIR_TAG_LIMIT = 2_000_000;
/** Once the tags reach this and no tagged call waits, numbering starts again at 1. */
const FAIR_TAG_RESTART = 1_000_000;

const DAY_MS = 86_400_000;
/** A call awaiting approval sits in BullMQ's delayed set this long at most; approval promotes it. */
const APPROVAL_HOLD_MS = 365 * DAY_MS;

export type EnqueueOptions = {
  tenant: string;
  idempotencyKey?: string;
  priority?: number;
  delayMs?: number;
  /** The call's own deadline (ms after it is due); over the tool's `deadlineMs` and the platform's default. */
  deadlineMs?: number;
  /** W3C trace context to continue in the worker (`injectTraceContext()` of `@toolplane/tracing`). */
  trace?: CallJobData['trace'];
  /** Where the final record is delivered; kept in the job data and shown on the call record. */
  callbackUrl?: string;
  /** The submitter waits for the finish: the worker announces it with the record (`CallJobData.awaited`). */
  awaited?: boolean;
};

export type CallProducerOptions = {
  /** How long a call's id and its finished job are kept (the calls' retention). */
  retentionMs: number;
  /**
   * An archiver moves finished calls to a history store: finished jobs are then never removed by
   * BullMQ's age limits, and a repeat of a call whose job has left Redis is known for a duplicate.
   */
  archived: boolean;
  /** Deadline of calls that set none and whose tool sets none (see `CallsOptions.defaultDeadlineMs`). */
  defaultDeadlineMs?: number;
};

/**
 * The producer: puts new calls on their tool's queue — ids, job data and options, admission under
 * the tenant's ceilings, fair-share tags, approval markers — and wakes the workers' scheduler.
 * One BullMQ queue per tool, so one tool's backlog or rate limit never holds up another's calls.
 */
export class CallProducer {
  private readonly retentionMs: number;
  private readonly archived: boolean;
  private readonly defaultDeadlineMs: number | undefined;

  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: Keys,
    private readonly queues: ToolQueueCache,
    /** The tenants' ceilings every enqueue passes. */
    private readonly quotas: TenantQuotas,
    /** Tells the workers' scheduler a tool has calls to run (see {@link ToolWakeups}). */
    private readonly wakeups: ToolWakeups,
    opts: CallProducerOptions,
  ) {
    this.retentionMs = opts.retentionMs;
    this.archived = opts.archived;
    this.defaultDeadlineMs = opts.defaultDeadlineMs;
  }

  /**
   * Enqueues a call of `tool` with already validated arguments. With an idempotency key the call id
   * is derived from it (and from the tenant, so another tenant's key never meets this call), so
   * concurrent duplicates collapse onto one BullMQ job.
   * @throws RequestError `QUOTA_EXCEEDED` past a ceiling of the tenant ({@link TenantQuotas}); a
   * repeat of a call that exists is never refused.
   */
  async enqueue(tool: Tool, args: unknown, opts: EnqueueOptions & { id?: string }): Promise<{ id: string; duplicate: boolean }> {
    const id = opts.id ?? this.callId(tool.name, opts);
    const call = this.prepare(tool, id, args, opts);
    // First, side by side: on the tenant's slot the ceilings, the tenant's call index and the count
    // in flight; on the tool's slot the call's fair-share tag and its deadline. (A tag taken by a
    // call refused here is only a gap in its tenant's turns.)
    const [admitted] = await Promise.all([this.quotas.admit(this.admission(tool, [id], call)), this.tagCalls(tool.name, opts, [call])]);
    const queue = this.queues.queue(tool.name);
    // A repeat of a call whose job left Redis — archived, or cancelled before it ran (its tombstone
    // stays) — must not add it again: that would run it a second time. (A repeat racing the first
    // request's add finds no job either, and the first request adds it.) Without a history store and
    // a tombstone, a missing job is one whose add failed: the repeat adds it.
    if (
      admitted === 'duplicate' &&
      !(await this.redis.exists(queue.toKey(id))) &&
      (this.archived || (await this.redis.exists(this.keys.cancelMarker(tool.name, id))))
    ) {
      return { id, duplicate: true };
    }
    try {
      // Independent writes, sent back to back in one round trip (the id key lives in another
      // cluster slot than the tool's keys, so no MULTI). Each is idempotent, so a duplicate
      // (same idempotency key) changes nothing; BullMQ returns the existing job for a known id.
      const adding = queue.add('call', call.data, call.opts);
      const [indexed, job] = await Promise.all([
        this.redis.set(this.keys.callIndex(id), tool.name, 'PX', this.retentionMs, 'NX'),
        adding,
        // After the add: a worker woken before the call exists would find nothing and not come back.
        this.wakeups.wakeBehind(adding, tool.name, queue.toKey(id), call.opts.delay ? Date.now() + call.opts.delay : 0),
      ]);
      // Marked for the first request only: a later duplicate must not put an approved call back to
      // waiting. The job sits in the delayed set until approval, so marking after adding is safe.
      if (tool.requiresApproval && indexed !== null) {
        await this.redis.set(this.keys.approvalPending(tool.name, id), call.data.argsHash, 'PX', call.opts.delay!);
      }
      return { id: job.id ?? id, duplicate: indexed === null };
    } catch (err: unknown) {
      // Not queued, or not known to be: the slot goes back now instead of when its entry goes stale.
      if (admitted === 'admitted') await this.quotas.release(opts.tenant, [id]).catch(() => {});
      throw err;
    }
  }

  /**
   * The id a call will get: derived from the idempotency key when there is one, so duplicates meet
   * on one job, fresh otherwise. Known before enqueueing, so a waiter can listen before the call exists.
   */
  callId(tool: string, opts: { tenant: string; idempotencyKey?: string }): string {
    return opts.idempotencyKey ? idempotentCallId(opts.tenant, tool, opts.idempotencyKey) : newCallId();
  }

  /**
   * Enqueues many calls of one tool in a few round trips: the same job data, options and audit
   * records as {@link enqueue} each, without idempotency keys (fresh ids never collide). For batch
   * producers and the benchmark; returns the call ids in the order of `argsList`.
   */
  async enqueueBulk(tool: Tool, argsList: readonly unknown[], opts: Omit<EnqueueOptions, 'idempotencyKey'>): Promise<string[]> {
    if (argsList.length === 0) return [];
    // One clock reading for the batch: each call's createdAt is also its score in the tenant's index.
    const now = Date.now();
    const calls = argsList.map((args) => this.prepare(tool, newCallId(), args, opts, now));
    const ids = calls.map((c) => c.opts.jobId!);
    // All or none: the batch fits under the tenant's ceilings or is refused whole.
    await Promise.all([this.quotas.admit(this.admission(tool, ids, calls[0]!)), this.tagCalls(tool.name, opts, calls)]);
    try {
      // One command per key (call id keys live in different cluster slots); ioredis writes them
      // back to back without waiting, so this is one round trip on a single node.
      await Promise.all(ids.map((id) => this.redis.set(this.keys.callIndex(id), tool.name, 'PX', this.retentionMs)));
      if (tool.requiresApproval) {
        const batch = this.redis.multi();
        for (const c of calls) batch.set(this.keys.approvalPending(tool.name, c.opts.jobId!), c.data.argsHash, 'PX', c.opts.delay!);
        await batch.exec();
      }
      await this.queues.queue(tool.name).addBulk(calls.map((c) => ({ name: 'call', data: c.data, opts: c.opts })));
      await this.wakeups.wake(tool.name);
    } catch (err: unknown) {
      await this.quotas.release(opts.tenant, ids).catch(() => {});
      throw err;
    }
    return ids;
  }

  /**
   * Gives calls of one tenant without an explicit priority their fair-share start tags as BullMQ
   * priorities when other tenants' calls wait too, so tenants flooding one tool take turns (a tenant
   * alone stays on BullMQ's plain list), and indexes their deadlines for the
   * deadline sweeper — one script on the tool's slot, skipped when there is neither to write.
   */
  private async tagCalls(tool: string, opts: Pick<EnqueueOptions, 'tenant' | 'priority'>, calls: ReadonlyArray<{ data: CallJobData; opts: JobsOptions }>): Promise<void> {
    const deadlines = calls.flatMap((c) => (c.data.deadlineAt === undefined ? [] : [c.data.deadlineAt, c.opts.jobId!]));
    if (opts.priority) {
      for (const c of calls) c.opts.priority = FAIR_TAG_LIMIT + opts.priority;
      if (deadlines.length === 0) return;
    }
    const q = this.queues.queue(tool);
    const first = Number(
      await TAG_CALLS.run(
        this.redis,
        [this.keys.fairTags(tool), q.keys.prioritized!, this.keys.callDeadlines(tool), q.keys.wait!, q.keys.pc!],
        [opts.tenant, opts.priority ? 0 : calls.length, FAIR_TAG_LIMIT, FAIR_TAG_RESTART, q.toKey(''), ...deadlines],
      ),
    );
    if (first > 0) calls.forEach((c, i) => (c.opts.priority = Math.min(first + i, FAIR_TAG_LIMIT)));
  }

  /** What {@link TenantQuotas.admit} needs of new calls of one tool, all prepared alike. */
  private admission(tool: Tool, ids: string[], first: { data: CallJobData; opts: JobsOptions }): CallAdmission {
    return {
      tenant: first.data.tenant,
      tool: tool.name,
      ids,
      createdAt: first.data.enqueuedAt,
      // A call may wait out its delay (an approval up to a year), then the retention, before its
      // entry is taken for stale.
      inFlightMs: (first.opts.delay ?? 0) + this.retentionMs,
      retentionMs: this.retentionMs,
    };
  }

  /** Job data and BullMQ options of one call; shared by {@link enqueue} and {@link enqueueBulk}. */
  private prepare(tool: Tool, id: string, args: unknown, opts: Omit<EnqueueOptions, 'idempotencyKey'>, now = Date.now()): { data: CallJobData; opts: JobsOptions } {
    const data: CallJobData = {
      tool: tool.name,
      version: tool.version,
      arguments: args,
      tenant: opts.tenant,
      enqueuedAt: now,
      argsHash: hashArguments(args),
      ...(opts.trace ? { trace: opts.trace } : {}),
      ...(opts.callbackUrl ? { callbackUrl: opts.callbackUrl } : {}),
      ...(opts.awaited ? { awaited: true as const } : {}),
    };
    const retentionS = Math.ceil(this.retentionMs / 1000);
    // Counted from when the call is due: a call scheduled for later is not late while it waits for its time.
    const deadlineMs = opts.deadlineMs ?? tool.deadlineMs ?? (tool.requiresApproval ? undefined : this.defaultDeadlineMs);
    if (deadlineMs) data.deadlineAt = now + (tool.requiresApproval ? 0 : (opts.delayMs ?? 0)) + deadlineMs;
    // A call awaiting approval waits at most until its deadline: then it comes off the delayed set by
    // itself and the worker that takes it ends it DEADLINE_EXCEEDED (its approval marker lapses with it).
    const delay = tool.requiresApproval ? Math.min(APPROVAL_HOLD_MS, deadlineMs ?? APPROVAL_HOLD_MS) : opts.delayMs;
    return {
      data,
      opts: {
        jobId: id,
        // The call's `createdAt` is its score in the tenant's call index (`since`, cursors): one clock reading for both.
        timestamp: data.enqueuedAt,
        attempts: tool.retries.attempts,
        backoff: { type: 'exponential', delay: tool.retries.backoffMs, jitter: 0.5 },
        // With a history store only the archiver drops finished jobs, once the store has them.
        removeOnComplete: this.archived ? false : { age: retentionS },
        removeOnFail: this.archived ? false : { age: retentionS },
        ...(delay ? { delay } : {}),
      },
    };
  }
}
