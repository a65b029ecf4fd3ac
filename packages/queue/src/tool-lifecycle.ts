import type { Tool } from '@toolplane/core';
import type { RedisConnection } from './connection.js';
import type { Keys } from './keys.js';
import type { ToolQueueCache } from './tool-queue-cache.js';

/** Unfinished calls read to learn which versions of a tool they still need. */
const QUEUED_VERSIONS_SCAN = 1000;
/** BullMQ's states of a call that has not finished yet. */
const UNFINISHED_STATES = ['waiting', 'delayed', 'prioritized', 'active', 'waiting-children'] as const;

/**
 * A tool's queue through the tool's life: its settings when registered or replaced, the versions its
 * queued calls still need, and what a deleted tool gives back and when nothing of it is left.
 */
export class ToolLifecycle {
  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: Keys,
    private readonly queues: ToolQueueCache,
  ) {}

  /** Makes the tool's concurrency cap hold across every worker replica (BullMQ global concurrency). */
  async applyToolSettings(tool: Tool): Promise<void> {
    const queue = this.queues.queue(tool.name);
    await (tool.concurrency === null ? queue.removeGlobalConcurrency() : queue.setGlobalConcurrency(tool.concurrency));
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
    const k = queue.keys;
    await this.redis.del(k.meta!, k.events!, k.marker!, k['stalled-check']!, k.pc!, k.id!, this.keys.fairTags(tool));
    return false;
  }
}
