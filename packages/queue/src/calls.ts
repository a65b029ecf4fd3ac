import { ToolWakeups } from './tool-wakeups.js';
import { createHash } from 'node:crypto';
import { Job, Queue, type JobsOptions } from 'bullmq';
import {
  DEFAULT_TENANT,
  hashArguments,
  newCallId,
  RequestError,
  toPublicFailure,
  type CallJobData,
  type CallOutput,
  type CallRecord,
  type CallStatus,
  type SerializedError,
  type Tool,
} from '@toolplane/core';
import type { RedisConnection } from './connection.js';
import type { Keys } from './keys.js';
import { decodeFailure } from './failure.js';
import { DEFAULT_TENANT_MAX_CALLS_IN_FLIGHT, TenantQuotas, type CallAdmission } from './tenant-quotas.js';
import { LuaScript } from './lua-script.js';

const DROP_ARCHIVED = LuaScript.fromFile('drop-archived-3');
const TAG_CALLS = LuaScript.fromFile('tag-calls-3');

/**
 * BullMQ priorities up to here are fair-share start tags (`lua/tag-calls-3.lua`); an explicit
 * priority p (1–1000) becomes `FAIR_TAG_LIMIT + p`, so prioritized calls keep their order among
 * themselves and, as before, run after calls that set none. BullMQ's priorities stop at 2^21.
 */
const FAIR_TAG_LIMIT = 2_000_000;
/** Once the tags reach this and no tagged call waits, numbering starts again at 1. */
const FAIR_TAG_RESTART = 1_000_000;

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
};

export type ToolQueuesOptions = {
  /**
   * How long finished calls are kept for `GET /v1/calls/{id}` and the audit trail.
   * @default 7 days
   */
  retentionMs?: number;
  /**
   * Calls of one tenant queued, running or awaiting approval at once: a call past it is refused with
   * `QUOTA_EXCEEDED` ({@link TenantQuotas}). 0 turns the cap off.
   * @default 10_000
   */
  maxCallsInFlight?: number;
  /**
   * Where finished calls live once an archiver has moved them out of Redis. With it, finished jobs
   * are never removed by BullMQ's age limits (only the archiver drops them, after the store has
   * acknowledged them), and {@link ToolQueues.get} and {@link ToolQueues.list} read through to it.
   * Without it, finished calls stay in Redis for `retentionMs` and are then gone.
   */
  history?: CallHistory;
  /**
   * Deadline (ms after the call is due) of calls that set none and whose tool sets none: the
   * platform's default. Not applied to calls of tools that need approval (a person's wait is not a
   * backlog). Unset, such calls have no deadline.
   */
  defaultDeadlineMs?: number;
};

/** A page of a tenant's archived calls: what {@link CallHistory.listCalls} is asked. */
export type HistoryCallQuery = {
  tenant: string;
  tool?: string;
  status?: CallStatus;
  errorCode?: string;
  argsHash?: string;
  /** Created at or after (ms since epoch). */
  since?: number;
  /** Created at or before (ms since epoch). */
  until?: number;
  limit: number;
  /** Only calls strictly after this position in (createdAt desc, id desc) order. */
  after?: { createdAt: number; id: string };
};

/**
 * The read side of the call history store (`@toolplane/history` implements it): calls that have
 * left Redis. Every listing is of one tenant.
 */
export type CallHistory = {
  getCall(id: string): Promise<CallRecord | undefined>;
  /** Newest first by (createdAt, id); `more` when calls past the page exist. */
  listCalls(q: HistoryCallQuery): Promise<{ calls: CallRecord[]; more: boolean }>;
};

/** One run of a call that failed and was retried: its attempts and when the last of them ran. */
export type EarlierRun = {
  /** Attempts BullMQ made in that run (its own retries included). */
  attempts: number;
  starts?: number;
  error?: SerializedError;
  /** Epoch ms the run's last attempt started and ended. */
  startedAt?: number;
  finishedAt?: number;
  /** Run time of that last attempt. */
  runMs: number | null;
  /** Epoch ms of the retry that ended this run. */
  retriedAt: number;
};

/** A finished call read from Redis for the archiver, with where it was found. */
export type FinishedCall = {
  record: CallRecord & { tenant: string };
  /** When it ended (ms since epoch). */
  finishedAt: number;
  /** 1 completed, 2 failed (BullMQ's sets), 3 removed before it ran (tombstone). */
  source: 1 | 2 | 3;
  /** Its score in that set as read: it is dropped only if still the same. */
  score: string;
};

export type CallFilter = {
  /** Whose calls: the listing reads this tenant's own index and nothing of any other tenant. */
  tenant: string;
  /** Only calls of this tool. */
  tool?: string;
  status?: CallStatus;
  /** Only calls created at or after this time (ms since epoch). */
  since?: number;
  /** Only calls created at or before this time (ms since epoch). */
  until?: number;
  /** Only failed calls with this error code. */
  errorCode?: string;
  /** Only calls whose arguments hash to this (sha256 of their canonical JSON). */
  argsHash?: string;
  limit: number;
  /** From a previous page's `nextCursor`. */
  cursor?: string;
};

const DAY_MS = 86_400_000;
/** Index entries one listing request looks at, at most. */
const MAX_LIST_SCAN = 5_000;
/** A call awaiting approval sits in BullMQ's delayed set this long at most; approval promotes it. */
const APPROVAL_HOLD_MS = 365 * DAY_MS;
/** Unfinished calls read to learn which versions of a tool they still need. */
const QUEUED_VERSIONS_SCAN = 1000;
/** BullMQ's states of a call that has not finished yet. */
const UNFINISHED_STATES = ['waiting', 'delayed', 'prioritized', 'active', 'waiting-children'] as const;

/** What is kept of a call that was removed from its queue before running (cancelled or rejected). */
type Tombstone = { code: 'CANCELLED' | 'REJECTED'; tool: string; version: number; createdAt: number; at: number; tenant: string; argsHash: string };

/**
 * The producer side: puts calls on their tool's queue and reads them back.
 * One BullMQ queue per tool, so one tool's backlog or rate limit never holds up another's calls.
 */
export class ToolQueues {
  /** The tenants' ceilings every enqueue passes; its cap of calls in flight comes from the options. */
  readonly quotas: TenantQuotas;
  private readonly queues = new Map<string, Queue>();
  private readonly retentionMs: number;
  private readonly history: CallHistory | undefined;
  private readonly defaultDeadlineMs: number | undefined;
  /** Tells the workers' scheduler a tool has calls to run (see {@link ToolWakeups}). */
  private readonly wakeups: ToolWakeups;

  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: Keys,
    opts: ToolQueuesOptions = {},
  ) {
    this.retentionMs = opts.retentionMs ?? 7 * DAY_MS;
    this.history = opts.history;
    this.defaultDeadlineMs = opts.defaultDeadlineMs;
    this.wakeups = new ToolWakeups(redis, keys);
    this.quotas = new TenantQuotas(redis, keys, { maxCallsInFlight: opts.maxCallsInFlight ?? DEFAULT_TENANT_MAX_CALLS_IN_FLIGHT });
  }

  queue(tool: string): Queue {
    let q = this.queues.get(tool);
    if (!q) {
      q = new Queue(this.keys.queueName(tool), { connection: this.redis, prefix: this.keys.bullPrefix });
      // Errors surface on the calls that hit them; an unhandled 'error' event would crash the process.
      q.on('error', () => {});
      this.queues.set(tool, q);
    }
    return q;
  }

  /** Makes the tool's concurrency cap hold across every worker replica (BullMQ global concurrency). */
  async applyToolSettings(tool: Tool): Promise<void> {
    await this.queue(tool.name).setGlobalConcurrency(tool.concurrency);
  }

  /** The versions of `tool` its unfinished calls were accepted for (read from at most 1,000 of them). */
  async queuedVersions(tool: string): Promise<Set<number>> {
    const jobs = await this.queue(tool).getJobs([...UNFINISHED_STATES], 0, QUEUED_VERSIONS_SCAN - 1);
    const versions = new Set<number>();
    for (const job of jobs) {
      const v = (job?.data as { version?: unknown } | undefined)?.version;
      if (typeof v === 'number') versions.add(v);
    }
    return versions;
  }

  /** Whether nothing of `tool` is left in Redis: no call queued, running or finished, no tombstone. */
  async holdsNothing(tool: string): Promise<boolean> {
    const [counts, tombstones] = await Promise.all([
      this.queue(tool).getJobCounts(...UNFINISHED_STATES, 'completed', 'failed'),
      this.redis.zcard(this.keys.tombstones(tool)),
    ]);
    return tombstones === 0 && Object.values(counts).every((n) => n === 0);
  }

  /**
   * A deleted tool gives back its queue's own bookkeeping (settings, event stream, counters) once no
   * call of it is left to run; its finished calls stay readable until their retention or archiving.
   * Returns whether anything was still queued (then nothing is dropped).
   */
  async releaseDeletedTool(tool: string): Promise<boolean> {
    const queue = this.queue(tool);
    const counts = await queue.getJobCounts(...UNFINISHED_STATES);
    if (Object.values(counts).some((n) => n > 0)) return true;
    const k = queue.keys;
    await this.redis.del(k.meta!, k.events!, k.marker!, k['stalled-check']!, k.pc!, k.id!, this.keys.fairTags(tool));
    return false;
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
    // A repeat of a call whose job left Redis — archived, or cancelled before it ran (its tombstone
    // stays) — must not add it again: that would run it a second time. (A repeat racing the first
    // request's add finds no job either, and the first request adds it.) Without a history store and
    // a tombstone, a missing job is one whose add failed: the repeat adds it.
    if (
      admitted === 'duplicate' &&
      !(await this.redis.exists(`${this.keys.bullPrefix}:${this.keys.queueName(tool.name)}:${id}`)) &&
      (this.history || (await this.redis.exists(this.keys.cancelMarker(tool.name, id))))
    ) {
      return { id, duplicate: true };
    }
    try {
      // Independent writes, sent back to back in one round trip (the id key lives in another
      // cluster slot than the tool's keys, so no MULTI). Each is idempotent, so a duplicate
      // (same idempotency key) changes nothing; BullMQ returns the existing job for a known id.
      const [indexed, job] = await Promise.all([
        this.redis.set(this.keys.callIndex(id), tool.name, 'PX', this.retentionMs, 'NX'),
        this.queue(tool.name).add('call', call.data, call.opts),
      ]);
      // After the add: a worker woken before the call exists would find nothing and not come back.
      await this.wakeups.wake(tool.name, call.opts.delay ? Date.now() + call.opts.delay : 0);
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
      await this.queue(tool.name).addBulk(calls.map((c) => ({ name: 'call', data: c.data, opts: c.opts })));
      await this.wakeups.wake(tool.name);
    } catch (err: unknown) {
      await this.quotas.release(opts.tenant, ids).catch(() => {});
      throw err;
    }
    return ids;
  }

  /**
   * Gives calls of one tenant without an explicit priority their fair-share start tags as BullMQ
   * priorities, so tenants flooding one tool take turns, and indexes their deadlines for the
   * deadline sweeper — one script on the tool's slot, skipped when there is neither to write.
   */
  private async tagCalls(tool: string, opts: Pick<EnqueueOptions, 'tenant' | 'priority'>, calls: ReadonlyArray<{ data: CallJobData; opts: JobsOptions }>): Promise<void> {
    const deadlines = calls.flatMap((c) => (c.data.deadlineAt === undefined ? [] : [c.data.deadlineAt, c.opts.jobId!]));
    if (opts.priority) {
      for (const c of calls) c.opts.priority = FAIR_TAG_LIMIT + opts.priority;
      if (deadlines.length === 0) return;
    }
    const q = this.queue(tool);
    const first = Number(
      await TAG_CALLS.run(
        this.redis,
        [this.keys.fairTags(tool), q.keys.prioritized!, this.keys.callDeadlines(tool)],
        [opts.tenant, opts.priority ? 0 : calls.length, FAIR_TAG_LIMIT, FAIR_TAG_RESTART, ...deadlines],
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
        removeOnComplete: this.history ? false : { age: retentionS },
        removeOnFail: this.history ? false : { age: retentionS },
        ...(delay ? { delay } : {}),
      },
    };
  }

  /** The tool a call belongs to, or `undefined` when the id is unknown or expired. */
  toolOf(id: string): Promise<string | null> {
    return this.redis.get(this.keys.callIndex(id));
  }

  /**
   * The call as the API shows it, from Redis while it is hot and from the history store after,
   * or `undefined` when unknown or expired.
   */
  async get(id: string, tool?: string): Promise<CallRecord | undefined> {
    return (await this.getHot(id, tool)) ?? (await this.history?.getCall(id));
  }

  /**
   * The call as Redis holds it, or `undefined` once archived (or unknown, or expired). `knownTool`:
   * the tool the caller itself enqueued the call for, which saves looking it up.
   */
  async getHot(id: string, knownTool?: string): Promise<CallRecord | undefined> {
    const tool = knownTool ?? (await this.toolOf(id));
    if (tool === null) return undefined;
    const queue = this.queue(tool);
    let job = await Job.fromId<CallJobData, CallOutput>(queue, id);
    if (!job) return this.tombstoneRecord(tool, id);
    let state: string = await job.getState();
    // The call may have finished between the two reads: read the job again to get its outcome.
    if ((state === 'completed' || state === 'failed') && !job.finishedOn) {
      job = (await Job.fromId<CallJobData, CallOutput>(queue, id)) ?? job;
    }
    if (state === 'delayed' && (await this.redis.exists(this.keys.approvalPending(tool, id)))) {
      state = 'awaiting_approval';
    }
    return toCallRecord(job, state);
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
    const tool = await this.toolOf(id);
    if (tool === null) return undefined;
    const pendingKey = this.keys.approvalPending(tool, id);
    const pending = await this.redis.get(pendingKey);
    if (pending === null) throw new RequestError('CONFLICT', 'call is not awaiting approval');
    // Past its deadline the call has left the delayed set to be ended: too late to approve it.
    const waiting = await Job.fromId(this.queue(tool), id);
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
    return this.get(id);
  }

  /** Rejects a call awaiting approval: it ends `failed` with `REJECTED` and never runs. */
  async reject(id: string): Promise<CallRecord | undefined> {
    const tool = await this.toolOf(id);
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
    const tool = await this.toolOf(id);
    if (tool === null) return undefined;
    const job = await Job.fromId(this.queue(tool), id);
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
    return this.get(id);
  }

  /** The runs of a call before its retries, oldest first (empty when never retried, or past the retention). */
  async earlierRuns(tool: string, id: string): Promise<EarlierRun[]> {
    const raws = await this.redis.lrange(this.keys.callEarlierRuns(tool, id), 0, -1);
    return raws.map((raw) => JSON.parse(raw) as EarlierRun);
  }

  /**
   * The audit trail of one tenant, newest first, read from that tenant's own index (or its index of
   * one tool), so the cost of a listing never depends on other tenants' calls. Records are read a
   * page at a time and filtered by status; the opaque cursor is the position after the last entry
   * looked at. A listing reads at most {@link MAX_LIST_SCAN} entries: a sparse status filter may
   * answer fewer calls than `limit` with a `nextCursor` to go on from.
   */
  async list(filter: CallFilter): Promise<{ calls: CallRecord[]; nextCursor?: string }> {
    if (!this.history) return this.listHot(filter);
    return mergePages(filter, await Promise.all([this.listHot(filter), this.listArchived(filter)]));
  }

  /** One page of the tenant's archived calls, in the same order and cursor form as {@link listHot}. */
  private async listArchived(filter: CallFilter): Promise<{ calls: CallRecord[]; nextCursor?: string }> {
    const [maxScore, afterId] = decodeCursor(filter.cursor);
    const page = await this.history!.listCalls({
      tenant: filter.tenant,
      limit: filter.limit,
      ...(filter.tool ? { tool: filter.tool } : {}),
      ...(filter.status ? { status: filter.status } : {}),
      ...(filter.errorCode ? { errorCode: filter.errorCode } : {}),
      ...(filter.argsHash ? { argsHash: filter.argsHash } : {}),
      ...(filter.since !== undefined ? { since: filter.since } : {}),
      ...(filter.until !== undefined ? { until: filter.until } : {}),
      ...(afterId !== undefined ? { after: { createdAt: maxScore, id: afterId } } : {}),
    });
    const last = page.calls.at(-1);
    return { calls: page.calls, ...(page.more && last ? { nextCursor: encodeCursor(Date.parse(last.createdAt), last.id) } : {}) };
  }

  /** The tenant's calls Redis holds (hot), newest first; see {@link list}. */
  private async listHot(filter: CallFilter): Promise<{ calls: CallRecord[]; nextCursor?: string }> {
    const index = filter.tool ? this.keys.tenantToolCalls(filter.tenant, filter.tool) : this.keys.tenantCalls(filter.tenant);
    let [maxScore, afterId] = decodeCursor(filter.cursor);
    if (filter.until !== undefined && filter.until < maxScore) [maxScore, afterId] = [filter.until, undefined];
    const minScore = filter.since ?? 0;
    const batch = Math.min(Math.max(filter.limit * 2, 20), 500);
    const out: CallRecord[] = [];
    let scanned = 0;
    let skip = 0;
    let exhausted = false;
    while (out.length < filter.limit && scanned < MAX_LIST_SCAN) {
      const max = Number.isFinite(maxScore) ? maxScore : '+inf';
      const flat = await this.redis.zrevrangebyscore(index, max, minScore, 'WITHSCORES', 'LIMIT', skip, batch);
      const entries: Array<{ id: string; score: number }> = [];
      for (let i = 0; i < flat.length; i += 2) entries.push({ id: flat[i]!, score: Number(flat[i + 1]) });
      scanned += entries.length;
      // Ties sort by id, descending: those at the cursor's score down to its id were on earlier pages.
      const fresh = entries.filter((e) => afterId === undefined || e.score < maxScore || e.id < afterId);
      if (fresh.length === 0) {
        if (entries.length < batch) {
          exhausted = true;
          break;
        }
        skip += entries.length;
        continue;
      }
      skip = 0;
      const records = await Promise.all(fresh.map((e) => this.getHot(e.id)));
      let used = 0;
      for (const [i, e] of fresh.entries()) {
        used++;
        maxScore = e.score;
        afterId = e.id;
        const record = records[i];
        // Expired, or (never, but checked all the same) not this tenant's.
        if (!record || (record.tenant ?? DEFAULT_TENANT) !== filter.tenant) continue;
        if (filter.status && record.status !== filter.status) continue;
        if (filter.errorCode && record.error?.code !== filter.errorCode) continue;
        if (filter.argsHash && record.argsHash !== filter.argsHash) continue;
        out.push(record);
        if (out.length === filter.limit) break;
      }
      if (entries.length < batch && used === fresh.length) {
        exhausted = true;
        break;
      }
    }
    const more = !exhausted && afterId !== undefined;
    return { calls: out, ...(more ? { nextCursor: encodeCursor(maxScore, afterId!) } : {}) };
  }

  /**
   * Calls of `tool` that ended before `before` (ms since epoch), oldest first, at most `limit` of
   * each kind (completed, failed, removed before running): what the archiver moves to history.
   */
  async finishedBefore(tool: string, before: number, limit: number): Promise<FinishedCall[]> {
    const q = this.queue(tool);
    const sets = [q.keys['completed']!, q.keys['failed']!, this.keys.tombstones(tool)] as const;
    const found = await Promise.all(sets.map((key) => this.redis.zrangebyscore(key, '-inf', before, 'WITHSCORES', 'LIMIT', 0, limit)));
    const out: FinishedCall[] = [];
    await Promise.all(
      found.flatMap((flat, i) => {
        const reads: Array<Promise<void>> = [];
        for (let j = 0; j < flat.length; j += 2) {
          const id = flat[j]!;
          const score = flat[j + 1]!;
          const source = (i + 1) as FinishedCall['source'];
          reads.push(
            (async () => {
              const record = await this.finishedRecord(tool, id, source);
              if (record) out.push({ record: { ...record, tenant: record.tenant ?? DEFAULT_TENANT }, finishedAt: Number(score), source, score });
            })(),
          );
        }
        return reads;
      }),
    );
    return out.sort((a, b) => a.finishedAt - b.finishedAt);
  }

  /**
   * Drops archived calls of `tool` from Redis: the job (or tombstone), and the call's entries in the
   * indexes, its calls-in-flight slot and result charge. A call that changed since it was read (a
   * failed call retried) stays. Ids derived from an idempotency key keep their id key and index
   * entry until the retention, so a repeat of the request is still known for what it is instead of
   * running again. Returns the ids dropped.
   */
  async dropArchived(tool: string, calls: readonly FinishedCall[]): Promise<string[]> {
    if (calls.length === 0) return [];
    const q = this.queue(tool);
    const jobPrefix = `${this.keys.bullPrefix}:${this.keys.queueName(tool)}:`;
    const callPrefix = this.keys.cancelMarker(tool, '').slice(0, -'cancel:'.length);
    const dropped = (await DROP_ARCHIVED.run(
      this.redis,
      [q.keys['completed']!, q.keys['failed']!, this.keys.tombstones(tool)],
      [jobPrefix, callPrefix, ...calls.flatMap((c) => [c.source, c.record.id, c.score])],
    )) as string[];
    const byTenant = new Map<string, string[]>();
    const gone = new Set(dropped);
    for (const c of calls) {
      if (!gone.has(c.record.id)) continue;
      const ids = byTenant.get(c.record.tenant) ?? [];
      ids.push(c.record.id);
      byTenant.set(c.record.tenant, ids);
    }
    const writes: Array<Promise<unknown>> = [];
    for (const [tenant, ids] of byTenant) {
      const plain = ids.filter((id) => !isIdempotentCallId(id));
      if (plain.length > 0) {
        writes.push(this.redis.zrem(this.keys.tenantCalls(tenant), ...plain));
        writes.push(this.redis.zrem(this.keys.tenantToolCalls(tenant, tool), ...plain));
        for (const id of plain) writes.push(this.redis.del(this.keys.callIndex(id)));
      }
      writes.push(this.quotas.release(tenant, ids));
    }
    await Promise.all(writes);
    return dropped;
  }

  /** The oldest finish time (ms) among `tool`'s finished calls still in Redis, or undefined. */
  async oldestFinished(tool: string): Promise<number | undefined> {
    const q = this.queue(tool);
    const heads = await Promise.all(
      [q.keys['completed']!, q.keys['failed']!, this.keys.tombstones(tool)].map((key) => this.redis.zrange(key, 0, 0, 'WITHSCORES')),
    );
    const scores = heads.filter((h) => h.length === 2).map((h) => Number(h[1]));
    return scores.length > 0 ? Math.min(...scores) : undefined;
  }

  private async finishedRecord(tool: string, id: string, source: FinishedCall['source']): Promise<CallRecord | undefined> {
    if (source === 3) return this.tombstoneRecord(tool, id);
    const job = await Job.fromId<CallJobData, CallOutput>(this.queue(tool), id);
    return job ? toCallRecord(job, source === 1 ? 'completed' : 'failed') : undefined;
  }

  private async removeBeforeRun(id: string, code: Tombstone['code']): Promise<CallRecord | undefined> {
    const tool = await this.toolOf(id);
    if (tool === null) return undefined;
    const queue = this.queue(tool);
    const job = await Job.fromId<CallJobData, CallOutput>(queue, id);
    if (!job) return this.get(id);
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
    if (this.history) await this.redis.zadd(this.keys.tombstones(tool), tomb.at, id);
    try {
      await job.remove();
    } catch {
      // Running (locked by a worker): the worker aborts it when told on the cancel channel, and the
      // call leaves its tenant's calls in flight when it fails there.
      await this.redis.publish(this.keys.callCancel, `${tool}\n${id}`);
      return this.get(id);
    }
    // Removed before it ran: no longer in flight. Should Redis fail here, the entry goes stale by itself.
    await this.quotas.release(tomb.tenant, [id]).catch(() => {});
    // Whoever waits on this call (a `wait` request, an agent run) learns at once.
    await this.redis.publish(this.keys.callDone, id);
    return this.get(id);
  }

  private async tombstoneRecord(tool: string, id: string): Promise<CallRecord | undefined> {
    const raw = await this.redis.get(this.keys.cancelMarker(tool, id));
    if (raw === null) return undefined;
    const t = JSON.parse(raw) as Tombstone;
    return {
      id,
      tool: t.tool,
      version: t.version,
      status: t.code === 'CANCELLED' ? 'cancelled' : 'failed',
      tenant: t.tenant,
      argsHash: t.argsHash,
      error: toPublicFailure({ code: t.code, message: t.code === 'CANCELLED' ? 'call was cancelled' : 'call was rejected' }),
      attempts: 0,
      createdAt: new Date(t.createdAt).toISOString(),
      timings: { queuedMs: null, runMs: null },
    };
  }
}

/** Whether a call id was derived from an idempotency key ({@link idempotentCallId}); fresh ids never start with `i`. */
export function isIdempotentCallId(id: string): boolean {
  return id.startsWith('i') && id.length === 26;
}

/**
 * Merges a page of hot calls (Redis) and a page of archived calls (history), both newest first by
 * (createdAt, id), into one page. A call in both (archived, not yet dropped) appears once. When a
 * source has more than its page, nothing past its last position is answered, so the next page,
 * which starts there, neither repeats nor skips a call.
 */
function mergePages(filter: CallFilter, pages: Array<{ calls: CallRecord[]; nextCursor?: string }>): { calls: CallRecord[]; nextCursor?: string } {
  const pos = (r: CallRecord): [number, string] => [Date.parse(r.createdAt), r.id];
  const after = (a: [number, string], b: [number, string]) => a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);
  // The least advanced of the sources' cursors: everything at or above it has been looked at by both.
  let bound: [number, string] | undefined;
  for (const p of pages) {
    if (!p.nextCursor) continue;
    const [score, id] = decodeCursor(p.nextCursor);
    const c: [number, string] = [score, id!];
    if (!bound || after(bound, c)) bound = c;
  }
  const seen = new Set<string>();
  const merged = pages
    .flatMap((p) => p.calls)
    .filter((r) => (seen.has(r.id) ? false : (seen.add(r.id), true)))
    .filter((r) => !bound || !after(pos(r), bound))
    .sort((a, b) => (after(pos(a), pos(b)) ? 1 : after(pos(b), pos(a)) ? -1 : 0));
  const calls = merged.slice(0, filter.limit);
  const last = calls.at(-1);
  if (merged.length > filter.limit && last) return { calls, nextCursor: encodeCursor(...pos(last)) };
  return bound ? { calls, nextCursor: encodeCursor(...bound) } : { calls };
}

export function idempotentCallId(tenant: string, tool: string, key: string): string {
  const digest = createHash('sha256').update(`${tenant}\0${tool}\0${key}`).digest();
  const alphabet = '0123456789abcdefghjkmnpqrstvwxyz';
  let out = 'i';
  for (let i = 0; i < 25; i++) out += alphabet[digest[i]! % 32]!;
  return out;
}

function encodeCursor(score: number, id: string): string {
  return Buffer.from(`${score}:${id}`).toString('base64url');
}

function decodeCursor(cursor: string | undefined): [number, string | undefined] {
  if (!cursor) return [Number.POSITIVE_INFINITY, undefined];
  const m = /^(\d+):([0-9a-z]+)$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!m) throw new RequestError('INVALID_REQUEST', 'cursor is invalid');
  return [Number(m[1]), m[2]];
}

function statusOf(state: string): CallStatus {
  switch (state) {
    case 'active':
      return 'running';
    case 'completed':
      return 'succeeded';
    case 'failed':
      return 'failed';
    case 'awaiting_approval':
      return 'awaiting_approval';
    default:
      return 'queued';
  }
}

function toCallRecord(job: Job<CallJobData, CallOutput>, state: string): CallRecord {
  let status = statusOf(state);
  const queuedMs = job.processedOn ? Math.max(0, job.processedOn - job.timestamp - (job.delay ?? 0)) : null;
  const runMs = job.processedOn && job.finishedOn ? job.finishedOn - job.processedOn : null;
  const record: CallRecord = {
    id: job.id!,
    tool: job.data.tool,
    version: job.data.version,
    status,
    tenant: job.data.tenant,
    argsHash: job.data.argsHash,
    attempts: job.attemptsMade,
    starts: job.attemptsStarted,
    ...(job.data.callbackUrl ? { callbackUrl: job.data.callbackUrl } : {}),
    createdAt: new Date(job.timestamp).toISOString(),
    timings: { queuedMs, runMs },
  };
  if (status === 'succeeded' && job.returnvalue) {
    record.result = job.returnvalue.result;
    record.logs = job.returnvalue.logs;
    if (job.returnvalue.cached) record.cached = true;
    if (job.returnvalue.startedAt) record.timings.startedAt = job.returnvalue.startedAt;
  }
  if (status === 'failed') {
    record.error = decodeFailure(job.failedReason);
    if (record.error.code === 'CANCELLED') status = record.status = 'cancelled';
  }
  return record;
}
