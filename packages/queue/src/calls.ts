import { createHash } from 'node:crypto';
import { Job, Queue, type JobsOptions } from 'bullmq';
import {
  newCallId,
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

export type EnqueueOptions = {
  tenant: string;
  idempotencyKey?: string;
  priority?: number;
  delayMs?: number;
};

export type ToolQueuesOptions = {
  /**
   * How long finished calls are kept for `GET /v1/calls/{id}`.
   * @default 7 days
   */
  retentionMs?: number;
};

const DAY_MS = 86_400_000;

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
      q = new Queue(this.keys.queueName(tool), {
        connection: this.redis,
        prefix: this.keys.bullPrefix,
      });
      // Errors surface on the calls that hit them; an unhandled 'error' event would crash the process.
      q.on('error', () => {});
      this.queues.set(tool, q);
    }
    return q;
  }

  /**
   * Enqueues a call of `tool` with already validated arguments. With an idempotency key the call id
   * is derived from it, so concurrent duplicates collapse onto one BullMQ job.
   */
  async enqueue(tool: Tool, args: unknown, opts: EnqueueOptions): Promise<{ id: string; duplicate: boolean }> {
    const id = opts.idempotencyKey
      ? idempotentCallId(opts.tenant, tool.name, opts.idempotencyKey)
      : newCallId();
    const data: CallJobData = {
      tool: tool.name,
      version: tool.version,
      arguments: args,
      tenant: opts.tenant,
      enqueuedAt: Date.now(),
    };
    const retentionS = Math.ceil(this.retentionMs / 1000);
    const jobOpts: JobsOptions = {
      jobId: id,
      attempts: tool.retries.attempts,
      backoff: { type: 'exponential', delay: tool.retries.backoffMs, jitter: 0.5 },
      removeOnComplete: { age: retentionS },
      removeOnFail: { age: retentionS },
      ...(opts.priority ? { priority: opts.priority } : {}),
      ...(opts.delayMs ? { delay: opts.delayMs } : {}),
    };
    const indexed = await this.redis.set(this.keys.callIndex(id), tool.name, 'PX', this.retentionMs, 'NX');
    const job = await this.queue(tool.name).add('call', data, jobOpts);
    return { id: job.id ?? id, duplicate: indexed === null };
  }

  /** The call as the API shows it, or `undefined` when unknown or expired. */
  async get(id: string): Promise<CallRecord | undefined> {
    const tool = await this.redis.get(this.keys.callIndex(id));
    if (tool === null) return undefined;
    const queue = this.queue(tool);
    let job = await Job.fromId<CallJobData, CallOutput>(queue, id);
    if (!job) return undefined;
    const state = await job.getState();
    // The call may have finished between the two reads: read the job again to get its outcome.
    if ((state === 'completed' || state === 'failed') && !job.finishedOn) {
      job = (await Job.fromId<CallJobData, CallOutput>(queue, id)) ?? job;
    }
    return toCallRecord(job, state);
  }
}

export function idempotentCallId(tenant: string, tool: string, key: string): string {
  const digest = createHash('sha256').update(`${tenant}\0${tool}\0${key}`).digest();
  const alphabet = '0123456789abcdefghjkmnpqrstvwxyz';
  let out = 'i';
  for (let i = 0; i < 25; i++) out += alphabet[digest[i]! % 32]!;
  return out;
}

function statusOf(state: string): CallStatus {
  switch (state) {
    case 'active':
      return 'running';
    case 'completed':
      return 'succeeded';
    case 'failed':
      return 'failed';
    default:
      return 'queued';
  }
}

function toCallRecord(job: Job<CallJobData, CallOutput>, state: string): CallRecord {
  const status = statusOf(state);
  const queuedMs = job.processedOn ? Math.max(0, job.processedOn - job.timestamp - (job.delay ?? 0)) : null;
  const runMs = job.processedOn && job.finishedOn ? job.finishedOn - job.processedOn : null;
  const record: CallRecord = {
    id: job.id!,
    tool: job.data.tool,
    version: job.data.version,
    status,
    attempts: job.attemptsMade,
    createdAt: new Date(job.timestamp).toISOString(),
    timings: { queuedMs, runMs },
  };
  if (status === 'succeeded' && job.returnvalue) {
    record.result = job.returnvalue.result;
    record.logs = job.returnvalue.logs;
  }
  if (status === 'failed') {
    const error: SerializedError = decodeFailure(job.failedReason);
    record.error = error;
  }
  return record;
}
