import type { RedisConnection } from './connection.js';
import type { Keys } from './keys.js';
import { CallActions } from './call-actions.js';
import { CallArchive } from './call-archive.js';
import { CallProducer } from './call-producer.js';
import { CallReads, type CallHistory } from './call-reads.js';
import { DEFAULT_TENANT_MAX_CALLS_IN_FLIGHT, TenantQuotas } from './tenant-quotas.js';
import { ToolLifecycle } from './tool-lifecycle.js';
import { ToolQueueCache } from './tool-queue-cache.js';
import { ToolWakeups } from './tool-wakeups.js';

const DAY_MS = 86_400_000;

export type CallsOptions = {
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
   * acknowledged them), and {@link CallReads.get} and {@link CallReads.list} read through to it.
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

/**
 * The parts that keep calls in Redis, each with one job, wired to one per-tool queue cache, one set
 * of tenant quotas and one wake-up index. Callers hand each part to the code that needs it (the
 * planner's routes take `reads` and `actions`, the archiver `archive`…); there is no object with
 * every method.
 */
export type Calls = {
  /** The BullMQ queue object of each tool, shared by every part. */
  queues: ToolQueueCache;
  /** The tenants' ceilings every enqueue and retry passes. */
  quotas: TenantQuotas;
  /** New calls onto their tool's queue. */
  producer: CallProducer;
  /** Calls as the API shows them: by id, a tenant's audit trail, earlier runs. */
  reads: CallReads;
  /** Approve, reject, cancel, retry; the approval grant the worker checks. */
  actions: CallActions;
  /** The archiver's pages of finished calls, and dropping those archived. */
  archive: CallArchive;
  /** A tool's queue settings, the versions its calls need, and what a deleted tool gives back. */
  lifecycle: ToolLifecycle;
};

/** The call parts of one process over `redis`. */
export function createCalls(redis: RedisConnection, keys: Keys, opts: CallsOptions = {}): Calls {
  const retentionMs = opts.retentionMs ?? 7 * DAY_MS;
  const archived = opts.history !== undefined;
  const queues = new ToolQueueCache(redis, keys);
  const quotas = new TenantQuotas(redis, keys, { maxCallsInFlight: opts.maxCallsInFlight ?? DEFAULT_TENANT_MAX_CALLS_IN_FLIGHT });
  const wakeups = new ToolWakeups(redis, keys);
  const reads = new CallReads(redis, keys, queues, opts.history ? { history: opts.history } : {});
  return {
    queues,
    quotas,
    producer: new CallProducer(redis, keys, queues, quotas, wakeups, {
      retentionMs,
      archived,
      ...(opts.defaultDeadlineMs !== undefined ? { defaultDeadlineMs: opts.defaultDeadlineMs } : {}),
    }),
    reads,
    actions: new CallActions(redis, keys, queues, reads, quotas, wakeups, { retentionMs, archived }),
    archive: new CallArchive(redis, keys, queues, quotas),
    lifecycle: new ToolLifecycle(redis, keys, queues, { archived, retentionMs }),
  };
}
