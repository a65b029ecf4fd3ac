import type { Job } from 'bullmq';
import { toPublicFailure, type CallJobData, type CallOutput, type CallRecord, type CallStatus } from '@toolplane/core';
import { decodeFailure } from './failure.js';

/**
 * What is kept of a call that was removed from its queue before running (cancelled or rejected),
 * under its cancel marker: the worker that picks the call up in between sees it, and the read model
 * and the archiver make the call's record from it.
 */
export type Tombstone = { code: 'CANCELLED' | 'REJECTED'; tool: string; version: number; createdAt: number; at: number; tenant: string; argsHash: string };

/** The API's status of a call in BullMQ state `state` (or `awaiting_approval`, which BullMQ does not know). */
export function statusOf(state: string): CallStatus {
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

/** The call as the API shows it, from its BullMQ job in state `state`. */
export function toCallRecord(job: Job<CallJobData, CallOutput>, state: string): CallRecord {
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

/**
 * The record of a call whose job finished for good, as a read of the job would give it; undefined
 * while it may run again (a failed attempt that will be retried).
 */
export function finishedRecord(job: Job<CallJobData, CallOutput>): CallRecord | undefined {
  if (!job.finishedOn) return undefined;
  // As `CallReads.getHot` tells them apart: BullMQ keeps a return value only on completion.
  return toCallRecord(job, job.returnvalue == null ? 'failed' : 'completed');
}

/** The record of call `id` from its tombstone as stored (the cancel marker's value), or undefined without one. */
export function tombstoneRecord(id: string, raw: string | null): CallRecord | undefined {
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
