import { randomUUID } from 'node:crypto';
import type { Logger } from '@toolplane/core';
import type { CallArchive, Keys, RedisConnection } from '@toolplane/queue';
import type { ArchivedRun, HistoryStore } from './types.js';

/** Finished agent runs, for the archiver: the agent package's run store provides it. */
export type RunArchiveSource = {
  /** Runs that finished before `before` (ms since epoch), oldest first, at most `limit`. */
  finishedBefore(before: number, limit: number): Promise<ArchivedRun[]>;
  /** Drops archived runs from Redis. */
  drop(ids: readonly string[]): Promise<void>;
  /** Finish time (ms since epoch) of the oldest finished run still in Redis: counted in the lag. */
  oldestFinished?(): Promise<number | undefined>;
};

/** What the archiver reports; the planner turns these into metrics. */
export type ArchiverHooks = {
  /** A batch reached the store and left Redis. */
  onBatch?(kind: 'call' | 'run', records: number, seconds: number): void;
  /** A batch failed (the store is slow or down, or Redis is): nothing was dropped, it is tried again. */
  onError?(err: unknown): void;
  /** Seconds the oldest finished call in Redis is past its hot retention (0 when none is). */
  onLag?(seconds: number): void;
  /** Rows the purge deleted. */
  onPurge?(rows: number): void;
};

export type ArchiverOptions = {
  /** The finished calls in Redis: pages of them to move, and dropping those moved. */
  calls: CallArchive;
  store: HistoryStore;
  redis: RedisConnection;
  keys: Keys;
  /** The tools whose queues to look at. */
  tools: () => Promise<readonly string[]>;
  /** A finished call stays in Redis this long (for `wait`, polling and SSE), then moves to history. */
  hotRetentionMs: number;
  runs?: RunArchiveSource;
  /**
   * Records per store write.
   * @default 500
   */
  batchSize?: number;
  /**
   * Pause between rounds when there was nothing (or less than a batch) to move.
   * @default 1_000
   */
  intervalMs?: number;
  /**
   * The lease: only its holder archives. A holder that dies is replaced after this long.
   * @default 15_000
   */
  leaseMs?: number;
  /**
   * Longest pause after failures (the pause doubles from `intervalMs` with each failure in a row).
   * @default 30_000
   */
  maxBackoffMs?: number;
  /**
   * How often the lease holder purges history past each tenant's retention.
   * @default 1 hour
   */
  purgeIntervalMs?: number;
  logger?: Logger;
  hooks?: ArchiverHooks;
};

/**
 * Finish times come from the clocks of other processes (workers, planners): a tool's quiet period
 * (see `quietUntil`) ends this much early, so a clock behind ours cannot make a call wait past due.
 */
const CLOCK_SKEW_MS = 5_000;

const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') and 1 or 0`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

/**
 * Moves finished calls (and agent runs) from Redis to the history store, in batches:
 *
 * 1. read up to `batchSize` calls of a tool that ended more than `hotRetentionMs` ago;
 * 2. write them to the store in one transaction (insert or replace by id: idempotent);
 * 3. only once the store has acknowledged, drop them from Redis — each only if it is still as read.
 *
 * A crash between 2 and 3 leaves the calls in Redis, and the next round (this archiver's or the next
 * lease holder's) writes them again over themselves: no loss, no duplicate. While the store is slow
 * or down, rounds fail, nothing is dropped, Redis holds the calls (it grows), the pause between
 * attempts doubles up to `maxBackoffMs`, and the lag reported through `onLag` rises (the alert
 * `ToolplaneHistoryArchiveLagging` reads it).
 *
 * One holder of a Redis lease archives at a time; any number of processes may run an Archiver.
 */
export class Archiver {
  private readonly owner = randomUUID();
  private readonly batchSize: number;
  private readonly intervalMs: number;
  private readonly leaseMs: number;
  private readonly maxBackoffMs: number;
  private readonly purgeIntervalMs: number;
  private running: Promise<void> | undefined;
  private readonly stopping = new AbortController();
  private lastPurge = 0;
  private failures = 0;
  /**
   * Per tool, a time before which none of its finished calls can be past the hot retention: a call
   * that finishes later is due a whole retention after that. Tools are read only once their time
   * comes, so idle tools cost no Redis commands round after round (with 2,000 tools, reading each
   * every second was ~1,200 commands/s at rest). Only ever a lower bound: archiving raises the true one.
   */
  private readonly quietUntil = new Map<string, number>();

  constructor(private readonly opts: ArchiverOptions) {
    this.batchSize = opts.batchSize ?? 500;
    this.intervalMs = opts.intervalMs ?? 1_000;
    this.leaseMs = opts.leaseMs ?? 15_000;
    this.maxBackoffMs = opts.maxBackoffMs ?? 30_000;
    this.purgeIntervalMs = opts.purgeIntervalMs ?? 3_600_000;
  }

  /** Starts the loop in the background. */
  start(): void {
    this.running ??= this.loop();
  }

  /** Stops after the round in progress and gives up the lease. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.running;
    await this.opts.redis.eval(RELEASE, 1, this.opts.keys.archiverLease, this.owner).catch(() => {});
  }

  /**
   * One round: every tool's calls (and runs) past the hot retention, batch by batch, until none is
   * left. Returns the records moved. Throws when a batch fails (nothing of it was dropped).
   */
  async archiveOnce(now = Date.now()): Promise<number> {
    const before = now - this.opts.hotRetentionMs;
    let moved = 0;
    for (const tool of await this.currentTools()) {
      if ((this.quietUntil.get(tool) ?? 0) > now) continue;
      for (;;) {
        const calls = await this.opts.calls.finishedBefore(tool, before, this.batchSize);
        if (calls.length === 0) {
          await this.readOldest(tool);
          break;
        }
        const started = performance.now();
        await this.opts.store.putCalls(calls);
        const dropped = await this.opts.calls.dropArchived(tool, calls);
        moved += calls.length;
        this.opts.hooks?.onBatch?.('call', calls.length, (performance.now() - started) / 1000);
        // Less than a batch of each kind: the tool is done for this round. None dropped (each changed
        // since it was read): the next round reads them as they are then.
        if (calls.length < this.batchSize || dropped.length === 0 || this.stopping.signal.aborted) break;
      }
    }
    const runs = this.opts.runs;
    while (runs) {
      const batch = await runs.finishedBefore(before, this.batchSize);
      if (batch.length === 0) break;
      const started = performance.now();
      await this.opts.store.putRuns(batch);
      await runs.drop(batch.map((r) => r.id));
      moved += batch.length;
      this.opts.hooks?.onBatch?.('run', batch.length, (performance.now() - started) / 1000);
      if (batch.length < this.batchSize || this.stopping.signal.aborted) break;
    }
    return moved;
  }

  /** Seconds the oldest finished call (or run) still in Redis is past its hot retention. */
  async lagSeconds(now = Date.now()): Promise<number> {
    let oldest = (await this.opts.runs?.oldestFinished?.()) ?? Infinity;
    for (const tool of await this.currentTools()) {
      // A quiet tool has nothing past due: it adds no lag.
      if ((this.quietUntil.get(tool) ?? 0) > now) continue;
      oldest = Math.min(oldest, (await this.readOldest(tool)) ?? Infinity);
    }
    return Number.isFinite(oldest) ? Math.max(0, now - this.opts.hotRetentionMs - oldest) / 1000 : 0;
  }

  /** The tools to look at; quiet periods of tools no longer listed are forgotten. */
  private async currentTools(): Promise<readonly string[]> {
    const tools = await this.opts.tools();
    const listed = new Set(tools);
    for (const tool of this.quietUntil.keys()) if (!listed.has(tool)) this.quietUntil.delete(tool);
    return tools;
  }

  /** The tool's oldest finish time still in Redis; starts its quiet period until that can be due. */
  private async readOldest(tool: string): Promise<number | undefined> {
    // Calls finish in real time whatever `now` a caller passed: the bound starts from the clock.
    const clock = Date.now();
    const oldest = await this.opts.calls.oldestFinished(tool);
    this.quietUntil.set(tool, Math.min(oldest ?? clock, clock) + this.opts.hotRetentionMs - CLOCK_SKEW_MS);
    return oldest;
  }

  private async loop(): Promise<void> {
    const log = this.opts.logger;
    while (!this.stopping.signal.aborted) {
      let pauseMs = this.intervalMs;
      try {
        const held = (await this.opts.redis.eval(RENEW, 1, this.opts.keys.archiverLease, this.owner, this.leaseMs)) === 1;
        if (held) {
          await this.archiveOnce();
          this.failures = 0;
          if (Date.now() - this.lastPurge >= this.purgeIntervalMs) {
            this.lastPurge = Date.now();
            const rows = await this.opts.store.purge(Date.now());
            this.opts.hooks?.onPurge?.(rows);
            if (rows > 0) log?.info({ rows }, 'history purged past retention');
          }
        }
      } catch (err: unknown) {
        this.failures++;
        pauseMs = Math.min(this.maxBackoffMs, this.intervalMs * 2 ** this.failures);
        this.opts.hooks?.onError?.(err);
        log?.warn({ err, failures: this.failures, pauseMs }, 'history archive round failed');
      }
      try {
        this.opts.hooks?.onLag?.(await this.lagSeconds());
      } catch {
        // Redis unreachable: the next round reports it.
      }
      await sleep(pauseMs, this.stopping.signal);
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}
