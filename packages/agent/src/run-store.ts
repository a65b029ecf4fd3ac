import { DEFAULT_TENANT } from '@toolplane/core';
import type { RedisConnection } from '@toolplane/queue';
import type { AgentKeys } from './keys.js';
import { toRunView, type RunEvent, type RunRecord, type RunStatus, type RunView } from './types.js';

/*
 * Saves a run and appends its events, only while the caller still holds the run's lease, so a
 * planner that lost a run to another replica can never overwrite it.
 * KEYS[1] state, KEYS[2] events stream, KEYS[3] lease (one hash tag)
 * ARGV[1] owner, ARGV[2] state JSON, ARGV[3] retention ms when the run finished (0 while it runs),
 * ARGV[4] change channel, ARGV[5] run id, ARGV[6..] event JSONs
 * Returns 1, or 0 when the lease is not the caller's.
 */
const SAVE_RUN = `
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
for i = 6, #ARGV do redis.call('XADD', KEYS[2], '*', 'e', ARGV[i]) end
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
  redis.call('DEL', KEYS[3])
end
if #ARGV >= 6 then redis.call('PUBLISH', ARGV[4], ARGV[5]) end
return 1
`;

/* KEYS[1] lease; ARGV[1] owner, ARGV[2] lease ms. Extends the lease if it is the caller's. */
const RENEW_LEASE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`;

/* KEYS[1] lease; ARGV[1] owner. Gives the lease up if it is the caller's. */
const RELEASE_LEASE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
`;

/** A stored event with its stream id (the SSE `id`). */
export type StoredRunEvent = { id: string; event: RunEvent };

/** A finished run as the history archiver takes it (the shape of `ArchivedRun` in `@toolplane/history`). */
export type FinishedRun = {
  id: string;
  tenant: string;
  status: RunStatus;
  /** ms since epoch */
  createdAt: number;
  /** ms since epoch */
  finishedAt: number;
  run: RunView;
  /** Its events with their stream ids, oldest first. */
  events: StoredRunEvent[];
};

/**
 * Runs in Redis: one JSON state key and one event stream per run, plus a lease that says which
 * planner drives it. Only the lease holder writes; any replica reads. Finished runs are indexed by
 * finish time so the history archiver can move them out ({@link finishedBefore}, {@link drop}).
 */
export class RunStore {
  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: AgentKeys,
    private readonly retentionMs: number,
  ) {}

  /** Takes the lease of a run nobody holds; true when it is now the caller's. */
  async claim(id: string, owner: string, leaseMs: number): Promise<boolean> {
    return (await this.redis.set(this.keys.runLease(id), owner, 'PX', leaseMs, 'NX')) === 'OK';
  }

  async renew(id: string, owner: string, leaseMs: number): Promise<boolean> {
    return (await this.redis.eval(RENEW_LEASE, 1, this.keys.runLease(id), owner, leaseMs)) === 1;
  }

  async release(id: string, owner: string): Promise<void> {
    await this.redis.eval(RELEASE_LEASE, 1, this.keys.runLease(id), owner);
  }

  /**
   * Writes the run and appends `events`; a finished run expires after the retention time and
   * leaves the active set. False when the caller no longer holds the lease.
   */
  async save(run: RunRecord, owner: string, events: RunEvent[], finished = false): Promise<boolean> {
    const saved = await this.redis.eval(
      SAVE_RUN,
      3,
      this.keys.run(run.id),
      this.keys.runEvents(run.id),
      this.keys.runLease(run.id),
      owner,
      JSON.stringify(run),
      finished ? this.retentionMs : 0,
      this.keys.runsChanged,
      run.id,
      ...events.map((e) => JSON.stringify(e)),
    );
    if (saved === 1 && finished) {
      const now = Date.now();
      // The finished index is what the history archiver reads; entries whose keys expired (no archiver
      // ran within the retention) are trimmed here so it stays bounded.
      await this.redis
        .multi()
        .zrem(this.keys.runsActive, run.id)
        .zadd(this.keys.runsFinished, run.finishedAt ? Date.parse(run.finishedAt) : now, run.id)
        .zremrangebyscore(this.keys.runsFinished, '-inf', now - this.retentionMs)
        .exec();
    }
    return saved === 1;
  }

  /**
   * Finished runs that ended before `before` (ms since epoch), oldest first, at most `limit`, with
   * their events: the history archiver's source. Index entries whose run already expired are removed.
   */
  async finishedBefore(before: number, limit: number): Promise<FinishedRun[]> {
    const ids = await this.redis.zrangebyscore(this.keys.runsFinished, '-inf', before, 'LIMIT', 0, limit);
    if (ids.length === 0) return [];
    const read = this.redis.pipeline();
    for (const id of ids) read.get(this.keys.run(id)).xrange(this.keys.runEvents(id), '-', '+');
    const replies = (await read.exec()) ?? [];
    const out: FinishedRun[] = [];
    const gone: string[] = [];
    ids.forEach((id, i) => {
      const [stateErr, state] = replies[2 * i] ?? [];
      const [eventsErr, entries] = replies[2 * i + 1] ?? [];
      if (stateErr || eventsErr) throw stateErr ?? eventsErr;
      if (typeof state !== 'string') return void gone.push(id);
      const run = JSON.parse(state) as RunRecord;
      out.push({
        id,
        tenant: run.tenant ?? DEFAULT_TENANT,
        status: run.status,
        createdAt: Date.parse(run.createdAt),
        finishedAt: Date.parse(run.finishedAt ?? run.updatedAt),
        run: toRunView(run),
        events: (entries as Array<[string, string[]]>).map(([entryId, fields]) => ({
          id: entryId,
          event: JSON.parse(fields[1] ?? 'null') as RunEvent,
        })),
      });
    });
    if (gone.length > 0) await this.redis.zrem(this.keys.runsFinished, ...gone);
    return out;
  }

  /** Drops finished runs from Redis once the history store has them. */
  async drop(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    const del = this.redis.pipeline();
    for (const id of ids) del.del(this.keys.run(id), this.keys.runEvents(id));
    del.zrem(this.keys.runsFinished, ...ids);
    for (const [err] of (await del.exec()) ?? []) if (err) throw err;
  }

  /** Finish time (ms since epoch) of the oldest finished run still in Redis. */
  async oldestFinished(): Promise<number | undefined> {
    const [, score] = await this.redis.zrange(this.keys.runsFinished, 0, 0, 'WITHSCORES');
    return score === undefined ? undefined : Number(score);
  }

  /** Marks a run as one to resume if its planner goes away; called before its first save. */
  async markActive(id: string, startedAt: number): Promise<void> {
    await this.redis.zadd(this.keys.runsActive, startedAt, id);
  }

  async unmarkActive(id: string): Promise<void> {
    await this.redis.zrem(this.keys.runsActive, id);
  }

  /** Runs not finished yet, oldest first. */
  async activeIds(limit = 1000): Promise<string[]> {
    return this.redis.zrange(this.keys.runsActive, 0, limit - 1);
  }

  async get(id: string): Promise<RunRecord | undefined> {
    const raw = await this.redis.get(this.keys.run(id));
    return raw === null ? undefined : (JSON.parse(raw) as RunRecord);
  }

  /** Events after stream id `after` (exclusive; `0` for all), oldest first. */
  async eventsAfter(id: string, after: string, count = 500): Promise<StoredRunEvent[]> {
    const start = after === '0' ? '-' : `(${after}`;
    const entries = await this.redis.xrange(this.keys.runEvents(id), start, '+', 'COUNT', count);
    return entries.map(([entryId, fields]) => ({ id: entryId, event: JSON.parse(fields[1] ?? 'null') as RunEvent }));
  }
}
