import type { RedisConnection } from '@toolplane/queue';
import type { AgentKeys } from './keys.js';
import type { RunEvent, RunRecord } from './types.js';

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

/**
 * Runs in Redis: one JSON state key and one event stream per run, plus a lease that says which
 * planner drives it. Only the lease holder writes; any replica reads.
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
    if (saved === 1 && finished) await this.redis.zrem(this.keys.runsActive, run.id);
    return saved === 1;
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
