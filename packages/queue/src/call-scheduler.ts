import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import {
  QueueKeys,
  RedisConnection as BullConnection,
  RedisQueueBackend,
  Worker,
  type BackendFactory,
  type Job,
} from 'bullmq';
import { MAX_STALLED_COUNT, silentLogger, type CallJobData, type CallOutput, type Logger } from '@toolplane/core';
import type { RedisConnection } from './connection.js';
import type { Keys } from './keys.js';
import { LuaScript } from './lua-script.js';
import type { TenantQuotas } from './tenant-quotas.js';
import { TickBatcher } from './tick-batcher.js';
import { ToolWakeups } from './tool-wakeups.js';
import { toBullProcessor, type CallProcessor } from './tool-worker.js';

export type CallSchedulerOptions = {
  /**
   * The connection BullMQ's lanes use (default: the scheduler's own). A visit claims its tool and
   * counts the tool's waiting calls on it too: both are sent just before the takes, on the same
   * connection, so the claim is in place before anything is taken and the count sees what they will take.
   */
  bull?: RedisConnection;
  /** Calls this process runs at once, across all tools. */
  concurrency: number;
  /** How long a lock on a running call lasts; renewed at a quarter of it while the call runs. */
  lockDurationMs: number;
  /** How often tools with running calls are checked for calls whose worker died. */
  stalledIntervalMs: number;
  /** Every tool name, for the slow repair sweep that finds runnable calls nobody announced. */
  tools: () => Promise<string[]>;
  quotas?: TenantQuotas;
  logger?: Logger;
};

/** What the scheduler does; bounded, for logs and tests. */
export type SchedulerState = 'INITIALIZED' | 'RUNNING' | 'DRAINING' | 'STOPPED';

/** A worker's claim on a tool it took from the ready set; lapses (and the tool is runnable again) if it dies. */
const CLAIM_MS = 30_000;
/** How long one wait for a runnable tool blocks the scheduler's own connection. */
const POP_BLOCK_S = 1;
/** Timers and lapsed claims are promoted this often by every worker (the fleet's only idle cost). */
const PROMOTE_EVERY_MS = 250;
/** The fleet-wide repair sweep: every tool's queue looked at once, by one worker, this often. */
const REPAIR_EVERY_MS = 300_000;
/** How stale the count of waiting tools may be when a lane decides to go on with its own next call. */
const FAIRNESS_CHECK_MS = 10;
/** A lane running calls back to back announces its tool this often, for idle workers to join. */
const ANNOUNCE_EVERY_MS = 200;
/** A lane with no running call and no use for this long is closed. */
const LANE_IDLE_MS = 60_000;

const promoteTools = LuaScript.fromFile('promote-tools-3');
const forgetBusy = LuaScript.fromFile('forget-busy-1');

/**
 * One tool's queue as a lane of the scheduler: BullMQ's `Worker` in manual mode, on the process's
 * shared connection, with no loop, no blocking connection and no timers of its own. BullMQ still
 * does what it does per job: moving it to active and to completed or failed, attempts and backoff,
 * deferred failures (a call stalled too often fails `POISONED`), rate limits, cancel signals.
 */
class ToolLane extends Worker<CallJobData, CallOutput> {
  lastUsed = Date.now();
  /** When this process last announced the tool while running its calls back to back. */
  announcedAt = 0;
  /** Running calls of this lane in this process: job id → lock token. */
  readonly calls = new Map<string, string>();
  /** Errors BullMQ reported on this lane: a call chain that saw one cannot trust BullMQ's last answer. */
  errors = 0;

  /** When the queue may have a runnable call again, as BullMQ's last answer said (0: it did not say). */
  nextWakeAt(): number {
    // BullMQ keeps these private; they are what its own loop sleeps on.
    const delays = this as unknown as { limitUntil: number; blockUntil: number };
    return Math.max(delays.limitUntil || 0, delays.blockUntil || 0);
  }

  /** Renews the locks of this lane's running calls. */
  async renewLocks(lockDurationMs: number): Promise<void> {
    if (this.calls.size === 0) return;
    const ids = [...this.calls.keys()];
    await this.extendJobLocks(ids, ids.map((id) => this.calls.get(id)!), lockDurationMs);
  }

  /** BullMQ's stalled check of this queue (private in its types; its own loop calls it on a timer). */
  checkStalled(): Promise<void> {
    return (this as unknown as { moveStalledJobsToWait(): Promise<void> }).moveStalledJobsToWait();
  }
}

/**
 * Runs calls of every tool in one process under one budget, over a fixed set of Redis connections.
 *
 * Tools with runnable calls are announced in a fleet-wide ready set (`ToolWakeups`); each worker
 * blocks on it with one connection, takes the tool that has waited longest, starts as many of its
 * calls as it has free slots for (up to half of its budget per visit), and puts the tool back
 * at the end of the line if it may have more. A call of another tool therefore starts within about
 * one call's run time of a free slot, whatever backlog a tool has; priorities still order calls
 * within a tool (BullMQ's own order). Delayed, backed-off and rate-limited tools come back through
 * timers; a worker that dies holding a claim loses it after {@link CLAIM_MS}.
 *
 * Idle tools cost nothing: no connection, no polling. The idle cost of a worker is one blocking pop
 * per second and one small script four times a second, whatever the number of tools.
 */
export class CallScheduler extends EventEmitter {
  private readonly lanes = new Map<string, ToolLane>();
  private readonly bull: BullConnection;
  /** The connection under {@link bull}: BullMQ's takes, and a visit's claim and count just before them. */
  private readonly takes: RedisConnection;
  private readonly backendFactory: BackendFactory<RedisQueueBackend>;
  private readonly processor: ReturnType<typeof toBullProcessor>;
  private readonly log: Logger;
  private readonly wakeups: ToolWakeups;
  private readonly maxPerVisit: number;
  private readonly queueKeys: QueueKeys;
  private readonly slotWaiters: Array<() => void> = [];
  private readonly timers: NodeJS.Timeout[] = [];
  private state: SchedulerState = 'INITIALIZED';
  private running = 0;
  /** The first tools waiting in the ready set at the last look: when others wait, a lane does not go on by itself. */
  private readyHead: string[] = [];
  private readyCheckedAt = 0;
  private loopDone: Promise<void> | undefined;
  /**
   * Calls of one tool that finished for good in one turn leave its deadline index with one `ZREM`.
   * Left there, each entry stayed in Redis until its deadline (an hour by default: at 5,000 calls/s,
   * 18 million entries) and cost the deadline sweep a look when it came due.
   */
  private readonly finished = new TickBatcher<string, void>(async (tool, ids) => {
    await this.redis.zrem(this.keys.callDeadlines(tool), ...ids);
    return ids.map(() => undefined);
  });

  constructor(
    private readonly redis: RedisConnection,
    /** Only for the blocking pop; nothing else may use it. */
    private readonly blocking: RedisConnection,
    private readonly keys: Keys,
    processor: CallProcessor,
    private readonly opts: CallSchedulerOptions,
  ) {
    super();
    this.log = opts.logger ?? silentLogger();
    this.wakeups = new ToolWakeups(redis, keys);
    this.maxPerVisit = Math.max(1, Math.ceil(opts.concurrency / 2));
    this.processor = toBullProcessor(processor, opts.quotas);
    this.takes = opts.bull ?? redis;
    this.bull = new BullConnection(this.takes, { shared: true, blocking: false });
    // BullMQ re-emits the client's errors here; unheard, one would end the process. The connection
    // reconnects by itself, and the app logs the client's errors already.
    this.bull.on('error', () => {});
    // Every lane's backend listens on it.
    this.bull.setMaxListeners(0);
    const queueKeys = (this.queueKeys = new QueueKeys(keys.bullPrefix));
    this.backendFactory = (name, queueOpts) =>
      new RedisQueueBackend(this.bull, name, queueKeys.getKeys(name), (type) => queueKeys.toKey(name, type), queueOpts, undefined, false);
  }

  /** Calls running in this process now. */
  get active(): number {
    return this.running;
  }

  get lifecycle(): SchedulerState {
    return this.state;
  }

  start(): void {
    if (this.state !== 'INITIALIZED') return;
    this.state = 'RUNNING';
    this.every(PROMOTE_EVERY_MS, () => this.promote());
    this.every(Math.max(100, Math.floor(this.opts.lockDurationMs / 4)), () => this.renewLocks());
    this.every(this.opts.stalledIntervalMs, () => this.checkStalled());
    this.every(REPAIR_EVERY_MS, () => this.repair(true));
    this.every(LANE_IDLE_MS, () => this.closeIdleLanes());
    // Calls queued before this worker (or this version of it) knew of the ready set; and after Redis
    // comes back, announcements lost with the connection (a tool popped as the server died).
    void this.repair(false).catch((err: unknown) => this.log.warn({ err }, 'scheduler repair sweep failed'));
    this.redis.on('ready', this.onReconnect);
    this.loopDone = this.loop();
  }

  /**
   * Takes no new calls; resolves when the running ones have finished or `timeoutMs` passed. Calls
   * still running then are left to other workers' stalled-call recovery.
   */
  async drain(timeoutMs: number): Promise<boolean> {
    if (this.state === 'RUNNING') this.state = 'DRAINING';
    for (const w of this.slotWaiters.splice(0)) w();
    const deadline = Date.now() + timeoutMs;
    while (this.running > 0 && Date.now() < deadline) await sleep(20);
    await this.loopDone;
    return this.running === 0;
  }

  /** Stops every timer and lane. Call {@link drain} first. */
  async close(): Promise<void> {
    this.state = 'STOPPED';
    this.redis.off('ready', this.onReconnect);
    for (const t of this.timers.splice(0)) clearInterval(t);
    await Promise.all([...this.lanes.values()].map((lane) => lane.close(true).catch(() => {})));
    this.lanes.clear();
  }

  /** Aborts the signal of a call if this process runs it. */
  cancel(tool: string, id: string): boolean {
    return this.lanes.get(tool)?.cancelJob(id, 'cancelled') ?? false;
  }

  /** A tool was deleted: its lane goes once nothing of it runs here. */
  forget(tool: string): void {
    const lane = this.lanes.get(tool);
    if (!lane || lane.calls.size > 0) return;
    this.closeLane(tool, lane);
  }

  /** Lanes open now (tools this process ran or checked recently). */
  laneCount(): number {
    return this.lanes.size;
  }

  private async loop(): Promise<void> {
    while (this.state === 'RUNNING') {
      if (this.running >= this.opts.concurrency) {
        await new Promise<void>((resolve) => this.slotWaiters.push(resolve));
        continue;
      }
      let popped: [string, string, string] | null;
      try {
        popped = (await this.blocking.bzpopmin(this.keys.readyTools, POP_BLOCK_S)) as [string, string, string] | null;
      } catch (err: unknown) {
        if (this.state !== 'RUNNING') break;
        this.emit('error', err);
        await sleep(500);
        continue;
      }
      if (!popped) continue;
      if (this.state !== 'RUNNING') {
        // Taken while draining: give it back for another worker.
        await this.redis.zadd(this.keys.readyTools, 'LT', Number(popped[2]), popped[1]).catch(() => {});
        break;
      }
      this.visit(popped[1]).catch((err: unknown) => this.emit('error', err));
    }
  }

  /**
   * Starts what it can of one tool's calls, then puts the tool where it belongs. Calls are asked for
   * in rounds of 1, 2, 4… up to the visit's share, stopping at the first round BullMQ cannot fill or
   * when the calls counted with the first round are taken: asking for the whole share at once cost
   * an empty BullMQ script run (8 commands) for every slot a short queue could not fill, i.e. most of
   * them when calls arrive one at a time. The count travels in the first round's round trip (sent
   * just before the takes, on the same connection and node): counting between rounds instead slowed
   * a joining worker's ramp-up (a worker added mid-run took 2–18 % of a backlog instead of ~23 %,
   * `redis-cluster.test.ts`).
   */
  private async visit(tool: string): Promise<void> {
    const want = Math.max(1, Math.min(this.opts.concurrency - this.running, this.maxPerVisit));
    this.running += want;
    const lane = this.lane(tool);
    const now = Date.now();
    let asked = 0;
    let started = 0;
    /** Calls BullMQ may still hand out, as counted with the first round (an upper bound: others take too). */
    let left = Infinity;
    try {
      for (let round = 1; asked < want && left > 0; round *= 2) {
        const tokens = Array.from({ length: Math.min(round, want - asked, left) }, () => randomUUID());
        // Busy before anything is taken (sent first, on the takes' connection, so executed first on
        // a single Redis): a worker that dies holding a call must leave its tool in the set the
        // stalled checks read, or the call stays active for good. Plain commands, not MULTI: they
        // leave with the count and the takes in the turn's one write, and each MULTI built an ioredis
        // Pipeline that copies every script BullMQ defined on the connection.
        const claim = asked === 0 ? Promise.all([this.takes.zadd(this.keys.claimedTools, now + CLAIM_MS, tool), this.takes.zadd(this.keys.busyTools, now, tool)]) : undefined;
        const count = asked === 0 ? this.waitingCount(tool) : undefined;
        const [jobs, , waiting] = await Promise.all([Promise.all(tokens.map((token) => lane.getNextJob(token, { block: false }))), claim, count]);
        if (waiting !== undefined) left = waiting;
        asked += tokens.length;
        let got = 0;
        jobs.forEach((job, i) => {
          if (!job) return;
          got++;
          void this.runChain(tool, lane, job, tokens[i]!);
        });
        started += got;
        left -= got;
        if (got < tokens.length) break;
      }
    } catch (err: unknown) {
      this.freeSlots(want - started);
      // The claim lapses and the tool comes back by itself if this fails too (or the repair sweep
      // after a reconnect finds it).
      await this.putBack(tool, lane, true).catch(() => {});
      throw err;
    }
    this.freeSlots(want - started);
    await this.putBack(tool, lane, started === want && left > 0);
  }

  /** Calls of a tool BullMQ could hand out now (waiting and prioritized; delayed ones come through timers): the repair sweep's test. */
  private async waitingCount(tool: string): Promise<number> {
    const k = this.queueKeys.getKeys(this.keys.queueName(tool));
    const [waiting, prioritized] = await Promise.all([this.takes.llen(k.wait!), this.takes.zcard(k.prioritized!)]);
    return waiting + prioritized;
  }

  /**
   * Runs a call and, while no other tool waits, the next calls BullMQ hands over with its completion
   * (one round trip for both, as BullMQ's own loop does).
   */
  private async runChain(tool: string, lane: ToolLane, first: Job<CallJobData, CallOutput>, token: string): Promise<void> {
    let job: Job<CallJobData, CallOutput> | undefined = first;
    /**
     * Whether the last call finished for good and BullMQ looked for a next one along with it: then
     * its answer is the queue's state. (A retry's backoff or a put-back says nothing of the queue.)
     */
    let settled = false;
    const errors = lane.errors;
    try {
      while (job) {
        lane.calls.set(job.id!, token);
        lane.lastUsed = Date.now();
        const id = job.id!;
        const current = job;
        let looked = false;
        try {
          const next: void | Job<CallJobData, CallOutput> = await lane.processJob(job, token, () => (looked = this.mayContinue(tool)));
          settled = looked && Boolean(current.finishedOn);
          job = next ? next : undefined;
          // Going on by itself, the lane keeps the tool announced, so an idle worker can join in.
          if (job && Date.now() - lane.announcedAt > ANNOUNCE_EVERY_MS) {
            lane.announcedAt = Date.now();
            void this.wake(tool);
          }
        } finally {
          lane.calls.delete(id);
        }
      }
    } catch (err: unknown) {
      this.emit('error', err);
    } finally {
      this.freeSlots(1);
    }
    // When BullMQ looked for a next call with the last finish and had none, its answer (nothing
    // waiting; when the next delayed call or backoff is due) is the queue's state: the tool goes to
    // a timer or nowhere, and a new call wakes it. Otherwise — it did not look (another tool waits,
    // a limited call went back to wait), or an error came between — the next visit finds out.
    // (Putting the tool back every time cost an empty visit, ~18 commands, per call that arrived alone.)
    const mayHaveMore = !settled || lane.errors !== errors || this.state !== 'RUNNING';
    await this.putBack(tool, lane, mayHaveMore).catch(() => {});
  }

  private async putBack(tool: string, lane: ToolLane, mayHaveMore: boolean): Promise<void> {
    const now = Date.now();
    const at = lane.nextWakeAt();
    // Sent back to back in the turn's one write (see the claim in `visit`), executed in this order.
    const writes: Array<Promise<unknown>> = [this.redis.zrem(this.keys.claimedTools, tool)];
    // A wait BullMQ reported that is over already (it ended while we were on our way) means now.
    if (mayHaveMore || (at > 0 && at <= now)) writes.push(this.redis.zadd(this.keys.readyTools, 'LT', now, tool));
    else if (at > now) writes.push(this.redis.zadd(this.keys.toolTimers, 'LT', at, tool));
    if (lane.calls.size > 0) writes.push(this.redis.zadd(this.keys.busyTools, now, tool));
    await Promise.all(writes);
    // A timer due soon is promoted by this process right then, not at the next tick.
    if (!mayHaveMore && at > now && at - now < PROMOTE_EVERY_MS) setTimeout(() => void this.promote(), at - now).unref();
  }

  /**
   * Whether a lane may take its next call along with a completion: only while no other tool waits.
   * The count of waiting tools is refreshed in the background at most every {@link FAIRNESS_CHECK_MS},
   * so a backlog holds another tool's call back by that much plus one call at most.
   */
  private mayContinue(tool: string): boolean {
    const now = performance.now();
    if (now - this.readyCheckedAt > FAIRNESS_CHECK_MS) {
      this.readyCheckedAt = now;
      this.redis.zrange(this.keys.readyTools, 0, 4).then(
        (head) => (this.readyHead = head),
        () => {},
      );
    }
    return this.state === 'RUNNING' && this.readyHead.every((waiting) => waiting === tool);
  }

  private freeSlots(n: number): void {
    if (n <= 0) return;
    this.running -= n;
    for (let i = 0; i < n; i++) this.slotWaiters.shift()?.();
  }

  private lane(tool: string): ToolLane {
    let lane = this.lanes.get(tool);
    if (!lane) {
      lane = new ToolLane(
        this.keys.queueName(tool),
        this.processor,
        {
          connection: this.redis,
          prefix: this.keys.bullPrefix,
          autorun: false,
          concurrency: 1,
          lockDuration: this.opts.lockDurationMs,
          stalledInterval: this.opts.stalledIntervalMs,
          // A call whose run stalled a worker twice (the worker died or hung under it) is poison: it
          // fails (POISONED, see `decodeFailure`) instead of walking through the whole fleet.
          maxStalledCount: MAX_STALLED_COUNT,
        },
        this.backendFactory,
      );
      lane.on('completed', (job) => this.emit('completed', job));
      lane.on('failed', (job, err) => this.emit('failed', job, err));
      // `finishedOn` is set only when no attempt is left: a call waiting to be retried keeps its deadline.
      const forgetDeadline = (job: Job<CallJobData, CallOutput> | undefined) => {
        if (job?.id && job.finishedOn && job.data?.deadlineAt !== undefined) this.finished.add(tool, job.id).catch(() => {});
      };
      lane.on('completed', forgetDeadline);
      lane.on('failed', forgetDeadline);
      lane.on('stalled', () => void this.wake(tool));
      lane.on('error', (err) => {
        lane!.errors++;
        this.emit('error', err);
      });
      if (this.opts.quotas) {
        const quotas = this.opts.quotas;
        // `finishedOn` is set only when no attempt is left: a call that will be retried stays in flight.
        lane.on('failed', (job) => {
          if (job?.id && job.finishedOn && typeof job.data?.tenant === 'string') {
            // Should this fail, the entry goes stale by itself (TenantQuotas).
            quotas.release(job.data.tenant, [job.id]).catch(() => {});
          }
        });
      }
      this.lanes.set(tool, lane);
    }
    return lane;
  }

  private readonly onReconnect = (): void => {
    if (this.state !== 'RUNNING') return;
    this.log.info('redis connection back, announcing runnable tools again');
    this.repair(false).catch((err: unknown) => this.log.warn({ err }, 'scheduler repair sweep failed'));
  };

  private async wake(tool: string): Promise<void> {
    await this.wakeups.wake(tool).catch(() => {});
  }

  private async promote(): Promise<void> {
    await promoteTools.run(this.redis, [this.keys.readyTools, this.keys.toolTimers, this.keys.claimedTools], [Date.now()]);
  }

  private async renewLocks(): Promise<void> {
    const busy: string[] = [];
    await Promise.all(
      [...this.lanes].map(async ([tool, lane]) => {
        if (lane.calls.size === 0) return;
        busy.push(tool);
        await lane.renewLocks(this.opts.lockDurationMs);
      }),
    );
    if (busy.length > 0) {
      const now = Date.now();
      await this.redis.zadd(this.keys.busyTools, ...busy.flatMap((t) => [now, t]));
    }
  }

  /** Tools with calls running somewhere get BullMQ's stalled check; the calls of dead workers go back to wait. */
  private async checkStalled(): Promise<void> {
    const tools = await this.redis.zrange(this.keys.busyTools, 0, -1, 'WITHSCORES');
    for (let i = 0; i < tools.length; i += 2) {
      const tool = tools[i]!;
      const lane = this.lane(tool);
      lane.lastUsed = Date.now();
      await lane.checkStalled();
      // A tool leaves the set only once nothing of it is active, and nobody has said otherwise
      // for a lock's duration (a worker that took a call since would have renewed its entry):
      // age alone must never drop it, or a dead worker's calls would stay active for good.
      // Dropped only if its entry is still the one read: a take since (this worker's own included,
      // racing this check) marks it again first.
      const quiet = Number(tools[i + 1]) < Date.now() - this.opts.lockDurationMs;
      if (quiet && (await this.redis.llen(this.queueKeys.getKeys(this.keys.queueName(tool)).active!)) === 0) {
        await forgetBusy.run(this.redis, [this.keys.busyTools], [tool, tools[i + 1]!]);
      }
    }
  }

  /**
   * Announces every tool whose queue has waiting calls: once at start (calls queued before the
   * ready set existed) and, as a safety net, every few minutes by one worker of the fleet.
   */
  private async repair(leased: boolean): Promise<void> {
    if (leased && (await this.redis.set(this.keys.schedulerRepair, '1', 'PX', REPAIR_EVERY_MS - 1_000, 'NX')) !== 'OK') return;
    const tools = await this.opts.tools();
    for (let i = 0; i < tools.length; i += 200) {
      const batch = tools.slice(i, i + 200);
      const counts = await Promise.all(batch.map((tool) => this.waitingCount(tool)));
      const runnable = batch.filter((_, j) => counts[j]! > 0);
      if (runnable.length > 0) {
        const now = Date.now();
        await this.redis.zadd(this.keys.readyTools, 'LT', ...runnable.flatMap((t) => [now, t]));
      }
    }
  }

  private closeIdleLanes(): void {
    const cutoff = Date.now() - LANE_IDLE_MS;
    for (const [tool, lane] of this.lanes) {
      if (lane.calls.size === 0 && lane.lastUsed < cutoff) this.closeLane(tool, lane);
    }
  }

  private closeLane(tool: string, lane: ToolLane): void {
    this.lanes.delete(tool);
    // Its backend keeps listening on the shared connection after close: errors it forwards must
    // still find a listener on the lane.
    lane.removeAllListeners();
    lane.on('error', () => {});
    void lane.close(true).catch(() => {});
  }

  private every(ms: number, fn: () => Promise<void> | void): void {
    const timer = setInterval(() => {
      if (this.state === 'STOPPED') return;
      Promise.resolve()
        .then(fn)
        .catch((err: unknown) => this.emit('error', err));
    }, ms);
    timer.unref();
    this.timers.push(timer);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
