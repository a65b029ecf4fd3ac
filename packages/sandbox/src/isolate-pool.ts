import ivm from 'isolated-vm';
import type { Context } from '@opentelemetry/api';
import { parseEgressRule, type EgressRule } from './bridges/egress.js';
import { fail } from './errors.js';
import { FastPath } from './fast-path.js';
import { LOCKDOWN_SOURCE } from './lockdown.js';
import type { ModuleFactory } from './module-factory.js';
import { loadRuntime } from './runtime-source.js';

/** Why an isolate was thrown away; bounded, so it can label a metric. */
export type DisposalReason = 'timeout' | 'oom' | 'cancelled' | 'error' | 'idle' | 'evicted' | 'shutdown';

/**
 * How long one turn of the event loop may spend starting calls on isolates. A call's synchronous
 * attempt runs as soon as it has an isolate and may take up to the sync budget, so without a bound
 * calls arriving together, or handed freed isolates one after another, would hold the host's loop for
 * the budget times their number (at 300 calls in flight, past the 1 s at which the parent kills a
 * stalled host).
 */
const SYNC_MS_PER_TURN = 10;

/** The runner's entry points in an isolate (see `isolate/runner.ts`). */
type Runner = {
  start: ivm.Reference<(...args: unknown[]) => void>;
  take: ivm.Reference<(token: number) => string | undefined>;
  ping: ivm.Reference<() => void>;
};

/** The call an isolate is leased to; host bridges check its token so a finished call's leftovers get nothing. */
export type ActiveCall = {
  token: number;
  rules: readonly EgressRule[];
  deadline: number;
  /** Made on the first `ctx.fetch` only: an abort costs a DOMException, too dear for every call. */
  fetches: AbortController | undefined;
  fetchCount: number;
  onRetryAfter: ((ms: number) => void) | undefined;
  /** Set while the host waits for the runner's report. */
  reported: ((outcome: string) => void) | undefined;
  /** Trace context of the call's `sandbox.run` span, parent of its `ctx.fetch` spans. */
  trace: Context;
  /** Told synchronously when V8 loses control of this call's isolate, before the process ends. */
  onFatal: ((message: string) => void) | undefined;
  /** The call's pending timer waits (`setTimeout` in the isolate); all released when the call ends. */
  timers: Set<TimerWait>;
  /** `ctx.progress` reports of the call, already checked and redacted. */
  onProgress: ((report: ProgressReport) => void) | undefined;
};

/** One `ctx.progress` report as the host passes it on, with the log lines written since the previous one. */
export type ProgressReport = { fraction: number; message: string; logs: string[] };

/** One pending wait of a call's `setTimeout`; `handle` is unset for a wait past the deadline. */
export type TimerWait = { handle: NodeJS.Timeout | undefined; resolve: () => void };

/** One isolate with its locked-down context and runner, leased to one call at a time. */
export type Slot = Runner & {
  isolate: ivm.Isolate;
  context: ivm.Context;
  memoryMb: number;
  call: ActiveCall | undefined;
  /** The tool's module factory, compiled in this isolate on its first call that can use it. */
  factory?: ivm.Reference;
};

/** The isolates of one tool version. */
export type Pool = {
  idle: Slot[];
  size: number;
  waiters: Array<(slot: Slot | undefined) => void>;
  cachedData: ivm.ExternalCopy<ArrayBuffer> | undefined;
  lastUsed: number;
  memoryMb: number;
  rules: EgressRule[];
  fastPath: FastPath;
  /**
   * The version's module as a factory (`module-factory.ts`); undefined for a module that cannot be
   * converted, whose calls compile the module per call.
   */
  factory: ModuleFactory | undefined;
  /** The conversion, once per tool version and process; set once started, undefined when done. */
  converting: Promise<void> | undefined;
  converted: boolean;
};

/** The host functions a runner gets, made per isolate by the sandbox. */
export type HostBridges = (slot: Slot) => {
  fetch: ivm.Reference;
  report: ivm.Reference;
  timer: ivm.Reference;
  crypto: ivm.Reference;
  limits: Record<string, number>;
  progress: ivm.Reference;
};

export type IsolatePoolsOptions = {
  maxIsolatesPerTool: number;
  memoryBudgetMb: number | undefined;
  idleTtlMs: number;
  syncBudgetMs: number;
  bridges: HostBridges;
  onDispose: ((reason: DisposalReason) => void) | undefined;
  /** V8 lost control of the isolate of `slot` (whose call, if any, is `slot.call`). */
  onCatastrophicError: (message: string, slot: Slot) => void;
};

/**
 * Isolate pools per tool version under one memory budget. Each isolate runs one call at a time, so
 * disposing one that hit a limit never takes a neighbour's call with it; past the budget, idle
 * isolates of the least recently used tools are evicted, then calls wait for one to go.
 */
export class IsolatePools {
  private readonly pools = new Map<string, Pool>();
  private readonly sweeper: NodeJS.Timeout;
  /** Heap limits of the live isolates, in MB. */
  private reservedMb = 0;
  private readonly budgetWaiters: Array<() => void> = [];
  private closed = false;
  /** When this turn's first call started on an isolate; undefined once the loop has turned since. */
  private turnStartedAt: number | undefined;

  constructor(private readonly opts: IsolatePoolsOptions) {
    this.sweeper = setInterval(() => this.sweep(), Math.min(opts.idleTtlMs, 30_000));
    this.sweeper.unref();
  }

  /** The pool of a tool version, made on first use. */
  pool(tool: { key: string; memoryMb: number; egress?: readonly string[] | undefined }): Pool {
    let pool = this.pools.get(tool.key);
    if (!pool) {
      pool = {
        idle: [],
        size: 0,
        waiters: [],
        cachedData: undefined,
        lastUsed: Date.now(),
        memoryMb: tool.memoryMb,
        rules: (tool.egress ?? []).map(parseEgressRule).filter((r): r is EgressRule => r !== undefined),
        fastPath: new FastPath(this.opts.syncBudgetMs),
        factory: undefined,
        converting: undefined,
        converted: false,
      };
      this.pools.set(tool.key, pool);
    }
    pool.lastUsed = Date.now();
    return pool;
  }

  /** The pool of a tool version if it exists; never makes one. */
  find(key: string): Pool | undefined {
    return this.pools.get(key);
  }

  /** An idle isolate of the pool: a free one, a new one within the limits, or the next one released. */
  async acquire(pool: Pool): Promise<Slot> {
    if (this.closed) throw fail('SANDBOX_ERROR', 'sandbox is shut down');
    const idle = pool.idle.pop();
    if (idle) return idle;
    // A tool that has isolates grows only while the budget has room (after evicting other tools'
    // idle ones); past it, its calls wait for its own isolates instead of evicting them to make
    // new ones (which thrashed: every call paid a cold start). A tool with none always gets one.
    if (pool.size < this.opts.maxIsolatesPerTool && (pool.size === 0 || this.makeRoom(pool))) {
      pool.size++;
      try {
        await this.reserve(pool.memoryMb);
      } catch (err: unknown) {
        pool.size--;
        throw err;
      }
      try {
        return await this.createSlot(pool.memoryMb);
      } catch (err: unknown) {
        pool.size--;
        this.unreserve(pool.memoryMb);
        throw fail('SANDBOX_ERROR', 'could not create an isolate', err);
      }
    }
    const slot = await new Promise<Slot | undefined>((resolve) => pool.waiters.push(resolve));
    if (!slot) throw fail('SANDBOX_ERROR', 'sandbox is shut down');
    return slot;
  }

  /**
   * Resolves once this turn of the event loop has time left for starting calls (at once, without a
   * promise, while it has); see {@link SYNC_MS_PER_TURN}.
   */
  untilTurnFree(): Promise<void> | undefined {
    if (this.turnSpentMs() < SYNC_MS_PER_TURN) return undefined;
    return new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.untilTurnFree());
  }

  /**
   * An idle isolate now, or the one a running call gives back before the event loop's next turn;
   * undefined if neither (then {@link acquire} grows the pool or queues). Calls that end within their
   * synchronous attempt give their isolate back before any other call starts, and one that waits on
   * I/O within the turn it started in, so a batch of calls arriving together runs on one warm isolate
   * instead of spreading over as many new ones as arrived: those cost a cold start and a factory
   * compile each, and ~2.5 × the CPU per call from cold caches and more isolate heaps to collect
   * (`Sandbox.run`, trivial tool, 100 calls in flight: 160 → 65 µs when given back within the turn,
   * ~33 µs when given back at once). Calls that wait on I/O keep theirs past the turn, and the pool
   * grows as before.
   */
  takeSoon(pool: Pool): Slot | undefined | Promise<Slot | undefined> {
    if (this.closed) return undefined;
    const idle = pool.idle.pop();
    if (idle || pool.size === 0) return idle;
    return new Promise((resolve) => {
      let settled = false;
      const waiter = (slot: Slot | undefined) => {
        // A replacement for a broken isolate can arrive after the turn: it goes to the next in line.
        if (settled) {
          if (slot) this.release(pool, slot, undefined);
          return;
        }
        settled = true;
        clearImmediate(timer);
        resolve(slot);
      };
      const timer = setImmediate(() => {
        if (settled) return;
        settled = true;
        const at = pool.waiters.indexOf(waiter);
        if (at >= 0) pool.waiters.splice(at, 1);
        resolve(undefined);
      });
      pool.waiters.push(waiter);
    });
  }

  /** Gives the isolate back after a call; `broken` disposes it (a limit tripped or it is unclean). */
  release(pool: Pool, slot: Slot, broken: DisposalReason | undefined): void {
    if (broken || slot.isolate.isDisposed || this.closed) {
      const waiter = pool.waiters.shift();
      // The replacement takes over the broken isolate's share of the budget.
      if (waiter && !this.closed) this.reservedMb += slot.memoryMb;
      this.dispose(slot, broken ?? 'error');
      pool.size--;
      if (waiter) {
        pool.size++;
        this.createSlot(pool.memoryMb).then(waiter, () => {
          pool.size--;
          this.unreserve(pool.memoryMb);
          waiter(undefined);
        });
      }
      return;
    }
    const waiter = pool.waiters.shift();
    if (waiter) return this.handOver(waiter, slot);
    pool.idle.push(slot);
    // A call waiting for budget can now evict this idle isolate.
    this.budgetWaiters.shift()?.();
  }

  /** Gives `slot` to `waiter` now, or on the loop's next turn once this turn has spent its time starting calls. */
  private handOver(waiter: (slot: Slot | undefined) => void, slot: Slot): void {
    const turn = this.untilTurnFree();
    if (!turn) return waiter(slot);
    void turn.then(() => {
      if (!this.closed) return waiter(slot);
      this.dispose(slot, 'shutdown');
      waiter(undefined);
    });
  }

  /** Milliseconds since this turn's first call started on an isolate (0 for the first). */
  private turnSpentMs(): number {
    const now = performance.now();
    if (this.turnStartedAt === undefined) {
      this.turnStartedAt = now;
      setImmediate(() => (this.turnStartedAt = undefined));
    }
    return now - this.turnStartedAt;
  }

  /** Disposes every isolate. */
  close(): void {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const [key, pool] of this.pools) {
      for (const slot of pool.idle) this.dispose(slot, 'shutdown');
      pool.idle = [];
      for (const w of pool.waiters) w(undefined);
      this.pools.delete(key);
    }
    for (const w of this.budgetWaiters.splice(0)) w();
  }

  /** Isolates alive now, per tool version key. */
  stats(): Record<string, number> {
    return Object.fromEntries([...this.pools].map(([k, p]) => [k, p.size]));
  }

  /** Takes `mb` of the memory budget for a new isolate, evicting idle ones or waiting when it is spent. */
  private async reserve(mb: number): Promise<void> {
    const budget = this.opts.memoryBudgetMb;
    if (budget !== undefined && mb > budget) {
      throw fail('OUT_OF_MEMORY', `the tool's memory limit of ${mb} MB exceeds this worker's sandbox budget of ${budget} MB`);
    }
    while (budget !== undefined && this.reservedMb + mb > budget) {
      if (this.closed) throw fail('SANDBOX_ERROR', 'sandbox is shut down');
      if (!this.evictIdle()) await new Promise<void>((resolve) => this.budgetWaiters.push(resolve));
    }
    this.reservedMb += mb;
  }

  /** Whether a new isolate of `pool` fits the budget, evicting other tools' idle isolates to make it fit. */
  private makeRoom(pool: Pool): boolean {
    const budget = this.opts.memoryBudgetMb;
    if (budget === undefined) return true;
    while (this.reservedMb + pool.memoryMb > budget) {
      if (!this.evictIdle(pool)) return false;
    }
    return true;
  }

  private unreserve(mb: number): void {
    this.reservedMb -= mb;
    this.budgetWaiters.shift()?.();
  }

  /** Disposes one idle isolate of the least recently used tool (other than `spare`); false if none is idle. */
  private evictIdle(spare?: Pool): boolean {
    let lru: Pool | undefined;
    for (const p of this.pools.values()) if (p !== spare && p.idle.length > 0 && (!lru || p.lastUsed < lru.lastUsed)) lru = p;
    const slot = lru?.idle.pop();
    if (!lru || !slot) return false;
    lru.size--;
    this.dispose(slot, 'evicted');
    return true;
  }

  private async createSlot(memoryMb: number): Promise<Slot> {
    let slot: Slot | undefined;
    const isolate = new ivm.Isolate({
      memoryLimit: memoryMb,
      onCatastrophicError: (message) => this.opts.onCatastrophicError(message, slot ?? ({ call: undefined } as Slot)),
    });
    try {
      const context = await isolate.createContext();
      // The web runtime installs its globals first, so the lockdown freezes them with the built-ins.
      const boot = await loadRuntime(isolate, context);
      slot = { isolate, context, memoryMb, call: undefined } as Slot;
      // Host functions handed to the runtime; it keeps them in its closure, out of tool code's reach.
      const bridges = this.opts.bridges(slot);
      const limits = new ivm.ExternalCopy(bridges.limits).copyInto();
      const runner = (await boot.apply(undefined, [bridges.fetch, bridges.report, bridges.timer, bridges.crypto, limits, bridges.progress], {
        result: { reference: true },
      })) as ivm.Reference<Record<keyof Runner, unknown>>;
      boot.release();
      await context.eval(LOCKDOWN_SOURCE);
      slot.start = runner.getSync('start', { reference: true }) as Runner['start'];
      slot.take = runner.getSync('take', { reference: true }) as Runner['take'];
      slot.ping = runner.getSync('ping', { reference: true }) as Runner['ping'];
      runner.release();
      return slot;
    } catch (err: unknown) {
      if (!isolate.isDisposed) isolate.dispose();
      throw err;
    }
  }

  private dispose(slot: Slot, reason: DisposalReason): void {
    if (!slot.isolate.isDisposed) slot.isolate.dispose();
    this.unreserve(slot.memoryMb);
    this.opts.onDispose?.(reason);
  }

  private sweep(): void {
    const now = Date.now();
    for (const [key, pool] of this.pools) {
      if (now - pool.lastUsed < this.opts.idleTtlMs || pool.size !== pool.idle.length) continue;
      for (const slot of pool.idle) this.dispose(slot, 'idle');
      this.pools.delete(key);
    }
  }
}
