import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Job, UnrecoverableError, type Queue } from 'bullmq';
import { silentLogger, toPublicFailure, type CallJobData, type CallOutput, type Logger } from '@toolplane/core';
import { announceCallDone } from './call-waiter.js';
import type { RedisConnection } from './connection.js';
import { decodeFailure, encodeFailure } from './failure.js';
import type { Keys } from './keys.js';
import { LuaScript } from './lua-script.js';
import type { TenantQuotas } from './tenant-quotas.js';

export type DeadlineSweeperOptions = {
  /** The BullMQ queue object of each tool (the process's own, shared with its other users). */
  queues: { queue(tool: string): Queue };
  /** Gives an ended call's slot back to its tenant's calls in flight. */
  quotas?: TenantQuotas;
  /**
   * How often the lease holder sweeps; a call waiting past its deadline ends within about this
   * much of it.
   * @default 1_000
   */
  intervalMs?: number;
  /**
   * The sweep's lease, renewed on each sweep: a holder that dies is replaced after this long.
   * @default 5_000
   */
  leaseMs?: number;
  /**
   * Calls one sweep ends, about (runs in progress finish): past it, the next sweep starts at once
   * instead of after the interval, with the tools this one did not get to, so a sweep stays well
   * within its lease (measured: ~5,000 calls ended per second on a loaded 2-core machine).
   * @default 5_000
   */
  maxEndedPerSweep?: number;
  logger?: Logger;
};

/** Tools read per scheduler set on one sweep, about: bounds a sweep when very many tools have work. */
const TOOLS_PER_SCAN = 500;
/** Due entries of one tool looked at per script run. */
const ENTRIES_PER_RUN = 200;
/**
 * Whole-list scans per script run. A due call in the wait list is looked for among its 1,000 oldest
 * first (where due calls mostly are); one queued after a long backlog without deadlines costs a scan
 * of the whole list (measured ~1.6 ms per 100,000 calls), so a run blocks Redis for ~10 ms at most.
 */
const LIST_SCANS_PER_RUN = 5;
/** Tools swept at once. */
const TOOLS_IN_PARALLEL = 20;
/**
 * The lock the sweeper holds on a call between taking it off its queue and ending it (a few ms).
 * One token for the whole fleet: a sweep that dies in between leaves the call for the next sweep,
 * whichever process runs it, to end.
 */
const SWEEP_TOKEN = 'toolplane:deadline-sweep';
/** How long that lock lasts: only a sweeper dying in between lets it lapse. */
const SWEEP_LOCK_MS = 60_000;

const sweepTools = LuaScript.fromFile('sweep-deadline-tools-6');
const sweepDeadlines = LuaScript.fromFile('sweep-deadlines-6');
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

/**
 * The text of a call's `DEADLINE_EXCEEDED`, as the worker words it when it finds a call late: it
 * never started, or it was waiting for another attempt after `lastAttempt` failed.
 */
export function deadlineMessage(deadlineAt: number, lastAttempt?: string): string {
  const at = new Date(deadlineAt).toISOString();
  return lastAttempt !== undefined
    ? `call reached its deadline (${at}) before another attempt; last attempt: ${lastAttempt}`
    : `call could not start before its deadline (${at})`;
}

/**
 * Ends calls still waiting past their deadline, at their deadline: behind an open breaker, a hold,
 * a rate limit or a backlog, a call would otherwise end only when a worker takes it.
 *
 * One process of the fleet sweeps at a time (a lease), about once a second. A sweep looks at the
 * tools of the scheduler's sets (every tool with a queued call is in one of them) and the tools
 * whose deadline index has an entry due (`keys.deadlineTools`, kept by the sweep), so idle tools
 * cost nothing. For each tool, one script in the tool's slot takes the due entries of its deadline
 * index (`keys.callDeadlines`): calls still waiting leave BullMQ's lists, and BullMQ's own
 * `moveToFailed` ends them `DEADLINE_EXCEEDED` (the failed set, finishedOn and removeOnFail as
 * when a worker fails a call, so the record, retry and the archiver see the same). Running calls
 * are left to the processor. Each call ended here leaves its tenant's calls in flight, is announced
 * to whoever waits on it, and is emitted as `expired` (the job, finished) for metrics and webhooks.
 */
export class DeadlineSweeper extends EventEmitter {
  private readonly owner = randomUUID();
  private readonly intervalMs: number;
  private readonly leaseMs: number;
  private readonly maxEnded: number;
  private readonly log: Logger;
  /** ZSCAN cursors of the scheduler's four sets, carried from one sweep to the next. */
  private cursors = ['0', '0', '0', '0'];
  /** Tools a sweep that reached `maxEndedPerSweep` did not get to: the next sweep starts with them. */
  private pending: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private stopped = true;

  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: Keys,
    private readonly opts: DeadlineSweeperOptions,
  ) {
    super();
    this.intervalMs = opts.intervalMs ?? 1_000;
    this.leaseMs = opts.leaseMs ?? 5_000;
    this.maxEnded = opts.maxEndedPerSweep ?? 5_000;
    this.log = opts.logger ?? silentLogger();
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule(0);
  }

  /** Stops after the sweep in progress and gives the lease up, so another process sweeps at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
    await this.redis.eval(RELEASE, 1, this.keys.deadlineSweepLease, this.owner).catch(() => {});
  }

  /**
   * One sweep: the calls it ended, or `undefined` when another process holds the lease.
   * `now` (ms) is when deadlines are counted to.
   */
  async sweep(now = Date.now()): Promise<number | undefined> {
    const k = this.keys;
    const page = (await sweepTools.run(
      this.redis,
      [k.deadlineSweepLease, k.readyTools, k.claimedTools, k.toolTimers, k.busyTools, k.deadlineTools],
      [this.owner, this.leaseMs, now, TOOLS_PER_SCAN, ...this.cursors],
    )) as string[] | null;
    if (!page) return undefined;
    this.cursors = page.slice(0, 4);
    const tools = [...new Set([...this.pending, ...page.slice(4)])];
    const budget = { left: this.maxEnded };
    const next: Array<string | number> = [];
    const empty: string[] = [];
    let i = 0;
    for (; i < tools.length && budget.left > 0; i += TOOLS_IN_PARALLEL) {
      await Promise.all(
        tools.slice(i, i + TOOLS_IN_PARALLEL).map(async (tool) => {
          const swept = await this.sweepTool(tool, now, budget).catch((err: unknown) => {
            // Left as it is: the next sweep looks at the tool again.
            this.log.warn({ err: (err as Error).message, tool }, 'deadline sweep of a tool failed');
            return undefined;
          });
          if (!swept) return;
          if (swept.next > 0) next.push(swept.next, tool);
          else empty.push(tool);
        }),
      );
    }
    // Where the sweep comes back to each tool: its next deadline, even once it has no queued call.
    const writes = this.redis.multi();
    if (next.length > 0) writes.zadd(k.deadlineTools, ...next);
    if (empty.length > 0) writes.zrem(k.deadlineTools, ...empty);
    if (next.length + empty.length > 0) await writes.exec();
    this.pending = tools.slice(i);
    return this.maxEnded - budget.left;
  }

  /**
   * Ends the due calls of one tool, taking them off the sweep's `budget`; answers the earliest
   * deadline still ahead (-1: none; `now`: some are still due).
   */
  private async sweepTool(tool: string, now: number, budget: { left: number }): Promise<{ next: number }> {
    const queue = this.opts.queues.queue(tool);
    const q = queue.keys;
    const jobPrefix = `${this.keys.bullPrefix}:${this.keys.queueName(tool)}:`;
    const approvalPrefix = this.keys.approvalPending(tool, '');
    for (;;) {
      const [next, more, ...ids] = (await sweepDeadlines.run(
        this.redis,
        [this.keys.callDeadlines(tool), q['wait']!, q['paused']!, q['prioritized']!, q['delayed']!, q['active']!],
        [now, ENTRIES_PER_RUN, jobPrefix, SWEEP_TOKEN, SWEEP_LOCK_MS, approvalPrefix, LIST_SCANS_PER_RUN],
      )) as [number, number, ...string[]];
      const done = await this.end(tool, queue, ids);
      budget.left -= done;
      // A call taken but not ended (Redis failed in between) is still due: come back next sweep.
      if (done < ids.length) return { next: now };
      if (more !== 1) return { next: Number(next) };
      if (budget.left <= 0) return { next: now };
    }
  }

  /** Ends calls the script took off their queue: failed `DEADLINE_EXCEEDED`, by BullMQ. Answers how many. */
  private async end(tool: string, queue: Queue, ids: string[]): Promise<number> {
    if (ids.length === 0) return 0;
    const ended: Array<Job<CallJobData, CallOutput>> = [];
    await Promise.all(
      ids.map(async (id) => {
        try {
          const job = await Job.fromId<CallJobData, CallOutput>(queue, id);
          if (!job) return;
          const lastAttempt = job.attemptsMade > 0 && job.failedReason ? decodeFailure(job.failedReason).message : undefined;
          const message = deadlineMessage(job.data.deadlineAt ?? Date.now(), lastAttempt);
          const err = new UnrecoverableError(encodeFailure(toPublicFailure({ code: 'DEADLINE_EXCEEDED', message })));
          // The stack would name the sweeper, which says nothing about the call.
          err.stack = err.message;
          await job.moveToFailed(err, SWEEP_TOKEN, false);
          ended.push(job);
        } catch (err: unknown) {
          // Another sweep ended it first (a lease that lapsed mid-sweep), or Redis failed: the call
          // stays due and under the sweeper's lock, and the next sweep ends it.
          this.log.warn({ err: (err as Error).message, tool, callId: id }, 'could not end a call past its deadline');
        }
      }),
    );
    if (ended.length === 0) return 0;
    await this.redis.zrem(this.keys.callDeadlines(tool), ...ended.map((job) => job.id!));
    const byTenant = new Map<string, string[]>();
    for (const job of ended) byTenant.set(job.data.tenant, [...(byTenant.get(job.data.tenant) ?? []), job.id!]);
    // Should Redis fail here, the entries go stale by themselves (TenantQuotas).
    if (this.opts.quotas) await Promise.all([...byTenant].map(([tenant, tenantIds]) => this.opts.quotas!.release(tenant, tenantIds).catch(() => 0)));
    for (const job of ended) {
      announceCallDone(this.redis, this.keys, job.id!).catch(() => {});
      this.log.info({ tool, callId: job.id, deadlineAt: job.data.deadlineAt }, 'call deadline exceeded while waiting');
      this.emit('expired', job);
    }
    return ended.length;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      const started = Date.now();
      const sweep = this.sweep(started).then(
        (ended) => ended ?? 0,
        (err: unknown) => {
          this.log.warn({ err: (err as Error).message }, 'deadline sweep failed');
          return 0;
        },
      );
      this.running = sweep;
      void sweep.then((ended) => this.schedule(ended >= this.maxEnded ? 0 : Math.max(0, this.intervalMs - (Date.now() - started))));
    }, delayMs);
    this.timer.unref();
  }
}
