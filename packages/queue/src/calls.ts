import { createHash } from 'node:crypto';
import { Job, Queue, type JobsOptions } from 'bullmq';
import {
  hashArguments,
  newCallId,
  RequestError,
  type CallJobData,
  type CallOutput,
  type CallRecord,
  type CallStatus,
  type Tool,
} from '@toolplane/core';
import type { RedisConnection } from './connection.js';
import type { Keys } from './keys.js';
import { decodeFailure } from './failure.js';

export type EnqueueOptions = {
  tenant: string;
  idempotencyKey?: string;
  priority?: number;
  delayMs?: number;
  /** W3C trace context to continue in the worker (`injectTraceContext()` of `@toolplane/tracing`). */
  trace?: CallJobData['trace'];
};

export type ToolQueuesOptions = {
  /**
   * How long finished calls are kept for `GET /v1/calls/{id}` and the audit trail.
   * @default 7 days
   */
  retentionMs?: number;
};

export type CallFilter = {
  /** Only calls of these tools. */
  tools: string[];
  status?: CallStatus;
  /** Only calls created at or after this time (ms since epoch). */
  since?: number;
  limit: number;
  /** From a previous page's `nextCursor`. */
  cursor?: string;
  /** Only calls of this tenant. */
  tenant?: string;
};

const DAY_MS = 86_400_000;
/** A call awaiting approval sits in BullMQ's delayed set this long at most; approval promotes it. */
const APPROVAL_HOLD_MS = 365 * DAY_MS;

/** What is kept of a call that was removed from its queue before running (cancelled or rejected). */
type Tombstone = { code: 'CANCELLED' | 'REJECTED'; tool: string; version: number; createdAt: number; at: number; tenant: string; argsHash: string };

/**
 * The producer side: puts calls on their tool's queue and reads them back.
 * One BullMQ queue per tool, so one tool's backlog or rate limit never holds up another's calls.
 */
export class ToolQueues {
  private readonly queues = new Map<string, Queue>();
  private readonly retentionMs: number;

  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: Keys,
    opts: ToolQueuesOptions = {},
  ) {
    this.retentionMs = opts.retentionMs ?? 7 * DAY_MS;
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

  /**
   * Enqueues a call of `tool` with already validated arguments. With an idempotency key the call id
   * is derived from it, so concurrent duplicates collapse onto one BullMQ job.
   */
  async enqueue(tool: Tool, args: unknown, opts: EnqueueOptions & { id?: string }): Promise<{ id: string; duplicate: boolean }> {
    const id = opts.id ?? this.callId(tool.name, opts);
    const call = this.prepare(tool, id, args, opts);
    const log = this.keys.callLog(tool.name);
    // Independent writes, sent back to back in one round trip (the index key lives in another
    // cluster slot than the tool's keys, so no MULTI). Each is idempotent, so a duplicate
    // (same idempotency key) changes nothing; BullMQ returns the existing job for a known id.
    const [indexed, , job] = await Promise.all([
      this.redis.set(this.keys.callIndex(id), tool.name, 'PX', this.retentionMs, 'NX'),
      this.redis.zadd(log, 'NX', call.data.enqueuedAt, id),
      this.queue(tool.name).add('call', call.data, call.opts),
      // Trimming the audit index now and then keeps it bounded by the retention without a sweeper.
      Math.random() < 0.01 ? this.redis.zremrangebyscore(log, '-inf', call.data.enqueuedAt - this.retentionMs) : undefined,
    ]);
    // Marked for the first request only: a later duplicate must not put an approved call back to
    // waiting. The job sits in the delayed set until approval, so marking after adding is safe.
    if (tool.requiresApproval && indexed !== null) {
      await this.redis.set(this.keys.approvalPending(tool.name, id), call.data.argsHash, 'PX', APPROVAL_HOLD_MS);
    }
    return { id: job.id ?? id, duplicate: indexed === null };
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
    const calls = argsList.map((args) => this.prepare(tool, newCallId(), args, opts));
    const ids = calls.map((c) => c.opts.jobId!);
    // One command per key (call index keys live in different cluster slots); ioredis writes them
    // back to back without waiting, so this is one round trip on a single node.
    await Promise.all(ids.map((id) => this.redis.set(this.keys.callIndex(id), tool.name, 'PX', this.retentionMs)));
    const log = this.keys.callLog(tool.name);
    const now = Date.now();
    const batch = this.redis.multi().zadd(log, 'NX', ...calls.flatMap((c) => [c.data.enqueuedAt, c.opts.jobId!]));
    if (tool.requiresApproval) {
      for (const c of calls) batch.set(this.keys.approvalPending(tool.name, c.opts.jobId!), c.data.argsHash, 'PX', APPROVAL_HOLD_MS);
    }
    if (Math.random() < 0.01 * calls.length) batch.zremrangebyscore(log, '-inf', now - this.retentionMs);
    await batch.exec();
    await this.queue(tool.name).addBulk(calls.map((c) => ({ name: 'call', data: c.data, opts: c.opts })));
    return ids;
  }

  /** Job data and BullMQ options of one call; shared by {@link enqueue} and {@link enqueueBulk}. */
  private prepare(tool: Tool, id: string, args: unknown, opts: Omit<EnqueueOptions, 'idempotencyKey'>): { data: CallJobData; opts: JobsOptions } {
    const data: CallJobData = {
      tool: tool.name,
      version: tool.version,
      arguments: args,
      tenant: opts.tenant,
      enqueuedAt: Date.now(),
      argsHash: hashArguments(args),
      ...(opts.trace ? { trace: opts.trace } : {}),
    };
    const retentionS = Math.ceil(this.retentionMs / 1000);
    const delay = tool.requiresApproval ? APPROVAL_HOLD_MS : opts.delayMs;
    return {
      data,
      opts: {
        jobId: id,
        attempts: tool.retries.attempts,
        backoff: { type: 'exponential', delay: tool.retries.backoffMs, jitter: 0.5 },
        removeOnComplete: { age: retentionS },
        removeOnFail: { age: retentionS },
        ...(opts.priority ? { priority: opts.priority } : {}),
        ...(delay ? { delay } : {}),
      },
    };
  }

  /** The tool a call belongs to, or `undefined` when the id is unknown or expired. */
  toolOf(id: string): Promise<string | null> {
    return this.redis.get(this.keys.callIndex(id));
  }

  /** The call as the API shows it, or `undefined` when unknown or expired. */
  async get(id: string): Promise<CallRecord | undefined> {
    const tool = await this.toolOf(id);
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
    if (argsHash !== undefined && argsHash !== pending) {
      throw new RequestError('CONFLICT', 'argsHash does not match the arguments of this call');
    }
    await this.redis
      .multi()
      .set(this.keys.approvalGrant(tool, id), pending, 'PX', this.retentionMs)
      .del(pendingKey)
      .exec();
    const job = await Job.fromId(this.queue(tool), id);
    await job?.promote();
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
    await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
    return this.get(id);
  }

  /**
   * The audit trail, newest first. Each tool keeps an index of its calls by creation time; pages are
   * merged across tools and filtered by status, with an opaque cursor for the next page.
   */
  async list(filter: CallFilter): Promise<{ calls: CallRecord[]; nextCursor?: string }> {
    let [maxScore, afterId] = decodeCursor(filter.cursor);
    const minScore = filter.since ?? 0;
    const out: CallRecord[] = [];
    const batch = Math.max(filter.limit * 2, 20);
    for (let round = 0; round < 20 && out.length < filter.limit; round++) {
      const candidates: Array<{ id: string; score: number }> = [];
      for (const tool of filter.tools) {
        const flat = await this.redis.zrevrangebyscore(this.keys.callLog(tool), Number.isFinite(maxScore) ? maxScore : '+inf', minScore, 'WITHSCORES', 'LIMIT', 0, batch);
        for (let i = 0; i < flat.length; i += 2) candidates.push({ id: flat[i]!, score: Number(flat[i + 1]) });
      }
      candidates.sort((a, b) => b.score - a.score || (a.id < b.id ? 1 : -1));
      const fresh = candidates.filter((c) => c.score < maxScore || afterId === undefined || c.id < afterId);
      if (fresh.length === 0) break;
      const page = fresh.slice(0, batch);
      for (const c of page) {
        maxScore = c.score;
        afterId = c.id;
        const record = await this.get(c.id);
        if (!record) continue;
        if (filter.status && record.status !== filter.status) continue;
        if (filter.tenant && record.tenant !== filter.tenant) continue;
        out.push(record);
        if (out.length === filter.limit) break;
      }
      if (page.length < batch && fresh.length === candidates.length && candidates.length < batch) break;
    }
    const last = out.at(-1);
    const more = out.length === filter.limit && last;
    return { calls: out, ...(more ? { nextCursor: encodeCursor(maxScore, afterId!) } : {}) };
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
    try {
      await job.remove();
      // Whoever waits on this call (a `wait` request, an agent run) learns at once.
      await this.redis.publish(this.keys.callDone, id);
    } catch {
      // Running (locked by a worker): the worker aborts it when told on the cancel channel.
      await this.redis.publish(this.keys.callCancel, `${tool}\n${id}`);
    }
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
      error: { code: t.code, message: t.code === 'CANCELLED' ? 'call was cancelled' : 'call was rejected' },
      attempts: 0,
      createdAt: new Date(t.createdAt).toISOString(),
      timings: { queuedMs: null, runMs: null },
    };
  }
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
