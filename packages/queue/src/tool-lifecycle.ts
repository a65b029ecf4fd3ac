import type { Tool } from '@toolplane/core';
import type { RedisConnection } from './connection.js';
import type { Keys } from './keys.js';
import type { ToolRegistry } from './registry.js';
import { TOOL_EVENTS_KEPT, type ToolQueueCache } from './tool-queue-cache.js';

/** Unfinished calls read to learn which versions of a tool they still need. */
const QUEUED_VERSIONS_SCAN = 1000;
/** BullMQ's states of a call that has not finished yet. */
const UNFINISHED_STATES = ['waiting', 'delayed', 'prioritized', 'active', 'waiting-children'] as const;
/** Finished calls of a deleted tool dropped per state and pass, so one pass never blocks Redis long. */
const EXPIRE_BATCH = 1000;

/** How finished calls leave Redis, as {@link createCalls} set up the producer. */
export type ToolLifecycleOptions = {
  /** An archiver drops finished calls (after the history store has them); BullMQ's age limits are off. */
  archived: boolean;
  /** Without an archiver: how long finished calls stay (BullMQ's `removeOnComplete.age`). */
  retentionMs: number;
};

/** What {@link ToolLifecycle.settleDeleted} found: the name forgotten, or what keeps it listed. */
export type DeletedToolState = 'forgotten' | 'calls-queued' | 'calls-finished' | 'not-deleted';

/**
 * A tool's queue through the tool's life: its settings when registered or replaced, the versions its
 * queued calls still need, and what a deleted tool gives back and when nothing of it is left.
 */
export class ToolLifecycle {
  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: Keys,
    private readonly queues: ToolQueueCache,
    private readonly opts: ToolLifecycleOptions,
  ) {}

  /**
   * Makes the tool's concurrency cap hold across every worker replica (BullMQ global concurrency),
   * and sets its events stream's length again (a deleted tool's queue settings are dropped; a `Queue`
   * object writes them only when made).
   */
  async applyToolSettings(tool: Tool): Promise<void> {
    const queue = this.queues.queue(tool.name);
    await Promise.all([
      tool.concurrency === null ? queue.removeGlobalConcurrency() : queue.setGlobalConcurrency(tool.concurrency),
      this.redis.hset(queue.keys.meta!, 'opts.maxLenEvents', TOOL_EVENTS_KEPT),
    ]);
  }

  /** The versions of `tool` its unfinished calls were accepted for (read from at most 1,000 of them). */
  async queuedVersions(tool: string): Promise<Set<number>> {
    const jobs = await this.queues.queue(tool).getJobs([...UNFINISHED_STATES], 0, QUEUED_VERSIONS_SCAN - 1);
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
      this.queues.queue(tool).getJobCounts(...UNFINISHED_STATES, 'completed', 'failed'),
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
    const queue = this.queues.queue(tool);
    const counts = await queue.getJobCounts(...UNFINISHED_STATES);
    if (Object.values(counts).some((n) => n > 0)) return true;
    if (!this.opts.archived) {
      // BullMQ drops finished jobs past their age only when a later job of the queue finishes, and
      // no call of a deleted tool will: its last ones would stay for good. (Before the bookkeeping
      // goes: a clean writes to the queue's event stream.)
      for (const state of ['completed', 'failed'] as const) await queue.clean(this.opts.retentionMs, EXPIRE_BATCH, state);
    }
    const k = queue.keys;
    // With nothing left to run, what the deadline index still holds are entries of calls that ended
    // without removing theirs (a worker killed between finish and removal).
    await this.redis.del(k.meta!, k.events!, k.marker!, k['stalled-check']!, k.pc!, k.id!, this.keys.fairTags(tool), this.keys.callDeadlines(tool));
    return false;
  }

  /**
   * Gives back what the deleted tool `tool` still holds ({@link releaseDeletedTool}, its versions no
   * queued call needs) and, once nothing of it is left in Redis ({@link holdsNothing}), forgets its
   * name from the deleted list, archived or not. Called when the tool is deleted, then again now and
   * then (the planner's sweep) until the name is forgotten.
   *
   * A name registered again meanwhile is left alone: the mark read first must still hold when the
   * name is forgotten (a new tool under the name, used and deleted again, keeps it listed), and a
   * registration that lands while the old queue's bookkeeping is dropped gets its settings back.
   */
  async settleDeleted(tool: string, registry: ToolRegistry): Promise<DeletedToolState> {
    const mark = await registry.deletionMark(tool);
    if (mark === undefined) return 'not-deleted';
    const stillQueued = await this.releaseDeletedTool(tool);
    if (!stillQueued && (await registry.deletionMark(tool)) !== mark) {
      const current = await registry.get(tool);
      if (current) await this.applyToolSettings(current);
      return 'not-deleted';
    }
    await registry.prune(tool, stillQueued ? await this.queuedVersions(tool) : new Set(), 0);
    if (stillQueued) return 'calls-queued';
    if (!(await this.holdsNothing(tool))) return 'calls-finished';
    return (await registry.forgetDeleted(tool, mark)) ? 'forgotten' : 'not-deleted';
  }
}
