import { Job } from 'bullmq';
import { DEFAULT_TENANT, type CallJobData, type CallOutput, type CallRecord } from '@toolplane/core';
import type { RedisConnection } from './connection.js';
import type { Keys } from './keys.js';
import { isIdempotentCallId } from './call-ids.js';
import { toCallRecord, tombstoneRecord } from './call-record.js';
import { LuaScript } from './lua-script.js';
import type { TenantQuotas } from './tenant-quotas.js';
import type { ToolQueueCache } from './tool-queue-cache.js';

const DROP_ARCHIVED = LuaScript.fromFile('drop-archived-3');

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

/**
 * The archiver's side of the calls: pages of a tool's finished calls oldest first, and dropping from
 * Redis those the history store has acknowledged (`@toolplane/history`'s `Archiver` drives it).
 */
export class CallArchive {
  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: Keys,
    private readonly queues: ToolQueueCache,
    private readonly quotas: TenantQuotas,
  ) {}

  /**
   * Calls of `tool` that ended before `before` (ms since epoch), oldest first, at most `limit` of
   * each kind (completed, failed, removed before running): what the archiver moves to history.
   */
  async finishedBefore(tool: string, before: number, limit: number): Promise<FinishedCall[]> {
    const q = this.queues.queue(tool);
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
    const q = this.queues.queue(tool);
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
    const q = this.queues.queue(tool);
    const heads = await Promise.all(
      [q.keys['completed']!, q.keys['failed']!, this.keys.tombstones(tool)].map((key) => this.redis.zrange(key, 0, 0, 'WITHSCORES')),
    );
    const scores = heads.filter((h) => h.length === 2).map((h) => Number(h[1]));
    return scores.length > 0 ? Math.min(...scores) : undefined;
  }

  private async finishedRecord(tool: string, id: string, source: FinishedCall['source']): Promise<CallRecord | undefined> {
    if (source === 3) return tombstoneRecord(id, await this.redis.get(this.keys.cancelMarker(tool, id)));
    const job = await Job.fromId<CallJobData, CallOutput>(this.queues.queue(tool), id);
    return job ? toCallRecord(job, source === 1 ? 'completed' : 'failed') : undefined;
  }
}
