import ivm from 'isolated-vm';
import { context, type Context } from '@opentelemetry/api';
import { ToolExecError, silentLogger, type Logger } from '@toolplane/core';
import { parseEgressRule, parseNetworkList, type EgressRule, type NetworkList } from './bridges/egress.js';
import { defaultResolver, hostFetch, type FetchRequest, type HostResolver } from './bridges/fetch-bridge.js';
import { EvaluationError, classifyIsolateError, fail, failWithReportedCode, isLimit, isTimeout, messageOf } from './errors.js';
import { LOCKDOWN_SOURCE } from './lockdown.js';
import { redactSecrets } from './redact.js';
import { RUNNER_SOURCE } from './isolate/runner.js';

/** What the sandbox needs to know of a tool: its code and limits under a key that changes with the code. */
export type ToolSource = {
  /** Unique per code version, e.g. `add@3`; isolates are pooled under it. */
  key: string;
  code: string;
  /** Wall time of the whole call: module evaluation, promises and `ctx` calls included. */
  timeoutMs: number;
  /**
   * CPU time the call may burn in its isolate.
   * @default timeoutMs
   */
  cpuMs?: number;
  memoryMb: number;
  maxResultBytes: number;
  /**
   * Hosts `ctx.fetch` may reach: `host` (default port of the scheme), `host:port`, `*.example.com`.
   * Private, loopback and link-local addresses are refused whatever the list says, unless the
   * operator opened them ({@link SandboxOptions.allowPrivateNetworks}).
   * @default [] (no network)
   */
  egress?: readonly string[];
};

export type RunOptions = {
  /** Aborting ends the call at once and disposes its isolate. */
  signal?: AbortSignal;
  /** Secrets granted to this tool, exposed as `ctx.secrets`; their values are redacted from the outcome. */
  secrets?: Record<string, string>;
  /** An upstream answered 429 or 503 with `Retry-After`; `ms` from now (for the tool's rate limiter). */
  onRetryAfter?: (ms: number) => void;
  /** The call got its isolate and its time starts; `waited` when it had to wait for one. */
  onStart?: (waited: boolean) => void;
  /** Parent of the call's `ctx.fetch` spans. @default the active context */
  trace?: Context;
};

export type RunResult = { value: unknown; logs: string[]; runMs: number };

/** Why an isolate was thrown away; bounded, so it can label a metric. */
export type DisposalReason = 'timeout' | 'oom' | 'cancelled' | 'error' | 'idle' | 'evicted' | 'shutdown';

export type SandboxOptions = {
  /**
   * Isolates kept per tool version. Each runs one call at a time, so that disposing an isolate
   * that hit a limit never takes a neighbour's call with it.
   * @default 8
   */
  maxIsolatesPerTool?: number;
  /**
   * Heap limits of all live isolates together, in MB. Creating an isolate past it first evicts idle
   * isolates (least recently used tools first), then waits for one to go; a tool whose own limit
   * exceeds the budget is refused with `OUT_OF_MEMORY`.
   * @default unlimited
   */
  memoryBudgetMb?: number;
  /** CIDRs `ctx.fetch` may reach although private (the operator's `TOOLPLANE_ALLOW_PRIVATE_NETWORKS`). @default '' */
  allowPrivateNetworks?: string;
  /** @default 200 */
  maxLogLines?: number;
  /**
   * A tool version's isolates are disposed after this long without a call.
   * @default 60_000
   */
  idleTtlMs?: number;
  /**
   * How long a call may run synchronously on the host thread before it is restarted on an
   * isolated-vm thread. Most calls finish well within it and then cost one lock instead of two
   * thread hops; a tool that overruns it runs on threads for a while (1 s, doubling while it keeps overrunning). 0 disables the fast path.
   * @default 4
   */
  syncBudgetMs?: number;
  /** @default 1 MiB */
  maxResponseBytes?: number;
  /** @default 50 */
  maxFetchesPerCall?: number;
  /** DNS for `ctx.fetch`. @default `dns.lookup` with all addresses */
  resolveHost?: HostResolver;
  /** Called for every disposed isolate (metrics). */
  onDispose?: (reason: DisposalReason) => void;
  /**
   * V8 lost control of an isolate; the process must end (isolated-vm's advice). The worker's
   * running calls are then re-run by other workers through BullMQ's stalled-job recovery.
   * @default logs and aborts the process
   */
  onCatastrophicError?: (message: string) => void;
  logger?: Logger;
};

type Runner = {
  start: ivm.Reference<(...args: unknown[]) => void>;
  take: ivm.Reference<(token: number) => string | undefined>;
  ping: ivm.Reference<() => void>;
};

/** The call an isolate is leased to; host bridges check its token so a finished call's leftovers get nothing. */
type ActiveCall = {
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
};

type Slot = Runner & { isolate: ivm.Isolate; context: ivm.Context; memoryMb: number; call: ActiveCall | undefined };

type Pool = {
  idle: Slot[];
  size: number;
  waiters: Array<(slot: Slot | undefined) => void>;
  cachedData: ivm.ExternalCopy<ArrayBuffer> | undefined;
  lastUsed: number;
  memoryMb: number;
  rules: EgressRule[];
  /**
   * Until this time (`performance.now()`), the tool's calls go to isolated-vm threads straight away:
   * it overran the sync budget. Not for good: the budget is wall time, so a process that was merely
   * descheduled or paused for GC on a busy machine overruns too, and a fast tool stuck on threads
   * costs several times the CPU per call (measured by `make bench`).
   */
  slowUntil: number;
  /** Overruns in a row; each doubles how long the tool stays on threads, up to {@link SLOW_MAX_MS}. */
  overruns: number;
};

type Outcome =
  | { ok: true; value: unknown; logs: string[] }
  | { ok: false; code: string; message: string; logs: string[] };

/**
 * A tool that overran the sync budget tries the fast path again after 1 s, then 2 s, 4 s… up to a
 * minute while it keeps overrunning: a truly slow tool wastes at most one budget per minute.
 */
const SLOW_BASE_MS = 1_000;
const SLOW_MAX_MS = 60_000;
const STALE = '{"stale":true}';
/** Checked by the runner before a request leaves the isolate, and by the fetch bridge again. */
const REQUEST_LIMITS = { maxUrlLength: 8192, maxRequestBodyBytes: 1024 * 1024 };

/**
 * Runs tool code in isolated-vm isolates.
 *
 * Per tool version, a small pool of isolates, each leased to one call at a time, with one context
 * whose intrinsics are frozen at creation. Each call gets a fresh instance of the tool's module
 * (compiled from V8's code cache), so module state, globals and built-ins never carry over between
 * calls. A call first runs synchronously under a small time budget (compile, evaluate, start and
 * collect the outcome are four cheap entries into a locked isolate, no thread hops); a call that
 * waits on `ctx.fetch` continues on isolated-vm's threads and reports back, and a tool that
 * overruns the budget runs on threads for a while, then tries the fast path again.
 */
export class Sandbox {
  private readonly pools = new Map<string, Pool>();
  private readonly maxIsolates: number;
  private readonly maxLogLines: number;
  private readonly idleTtlMs: number;
  private readonly syncBudgetMs: number;
  private readonly maxResponseBytes: number;
  private readonly maxFetches: number;
  private readonly resolveHost: HostResolver;
  private readonly allowPrivate: NetworkList;
  private readonly log: Logger;
  private readonly sweeper: NodeJS.Timeout;
  private tokens = 0;
  private closed = false;
  /** Heap limits of the live isolates, in MB (see {@link SandboxOptions.memoryBudgetMb}). */
  private reservedMb = 0;
  private readonly budgetWaiters: Array<() => void> = [];

  constructor(private readonly opts: SandboxOptions = {}) {
    this.maxIsolates = opts.maxIsolatesPerTool ?? 8;
    this.maxLogLines = opts.maxLogLines ?? 200;
    this.idleTtlMs = opts.idleTtlMs ?? 60_000;
    this.syncBudgetMs = opts.syncBudgetMs ?? 4;
    this.maxResponseBytes = opts.maxResponseBytes ?? 1024 * 1024;
    this.maxFetches = opts.maxFetchesPerCall ?? 50;
    this.resolveHost = opts.resolveHost ?? defaultResolver;
    this.allowPrivate = parseNetworkList(opts.allowPrivateNetworks ?? '');
    this.log = opts.logger ?? silentLogger();
    this.sweeper = setInterval(() => this.sweep(), Math.min(this.idleTtlMs, 30_000));
    this.sweeper.unref();
  }

  /** Runs one call. Resolves with the JSON result; rejects with a {@link ToolExecError}. */
  async run(tool: ToolSource, args: unknown, opts: RunOptions = {}): Promise<RunResult> {
    if (this.closed) throw fail('SANDBOX_ERROR', 'sandbox is shut down');
    if (opts.signal?.aborted) throw fail('CANCELLED', 'call was cancelled');
    let argsJson: string;
    try {
      argsJson = JSON.stringify(args ?? null);
    } catch (err: unknown) {
      throw fail('REJECTED', 'arguments are not JSON', err);
    }
    const secretValues = Object.values(opts.secrets ?? {});
    const pool = this.pool(tool);
    const asked = performance.now();
    const slot = await this.acquire(pool);
    // Waiting for a free isolate is queueing, not running: the deadline starts now.
    const started = performance.now();
    opts.onStart?.(started - asked > 1);
    const deadline = started + tool.timeoutMs;
    let broken: DisposalReason | undefined;
    let stopped: ToolExecError | undefined;
    const timers: NodeJS.Timeout[] = [];
    let onAbort: (() => void) | undefined;
    try {
      // The host enforces wall and CPU time: isolated-vm's own timeout does not cover awaited promises.
      const limit = new Promise<never>((_, reject) => {
        const stop = (reason: DisposalReason, error: ToolExecError) => {
          if (broken) return;
          broken = reason;
          stopped = error;
          slot.isolate.dispose();
          reject(error);
        };
        timers.push(setTimeout(() => stop('timeout', fail('TIMEOUT', `tool exceeded ${tool.timeoutMs}ms`)), tool.timeoutMs));
        const cpuMs = tool.cpuMs ?? tool.timeoutMs;
        if (cpuMs < tool.timeoutMs) {
          const cpuStart = slot.isolate.cpuTime;
          // CPU time never runs ahead of wall time, so the budget cannot be spent before `left` ms pass.
          const check = (): void => {
            if (slot.isolate.isDisposed) return;
            const usedMs = Number(slot.isolate.cpuTime - cpuStart) / 1e6;
            if (usedMs >= cpuMs) stop('timeout', fail('TIMEOUT', `tool exceeded its CPU time limit of ${cpuMs}ms`));
            else timers.push(setTimeout(check, Math.max(1, cpuMs - usedMs)));
          };
          timers.push(setTimeout(check, cpuMs));
        }
        onAbort = () => stop('cancelled', fail('CANCELLED', 'call was cancelled'));
        opts.signal?.addEventListener('abort', onAbort, { once: true });
        // Aborted while we waited for an isolate: the event has fired already.
        if (opts.signal?.aborted) onAbort();
      });
      const out = await Promise.race([this.execute(slot, pool, tool, argsJson, opts, deadline), limit]);
      return this.decode(out, secretValues, started);
    } catch (err: unknown) {
      // Whatever failed after a limit or an abort disposed the isolate, the limit is the reason.
      if (stopped) throw stopped;
      const classified = classifyIsolateError(err, slot.isolate.isDisposed);
      // A tool's own compile or evaluation error leaves the isolate as clean as it was: keep it.
      if (classified.code !== 'TOOL_ERROR') {
        broken ??= classified.code === 'OUT_OF_MEMORY' ? 'oom' : classified.code === 'TIMEOUT' ? 'timeout' : 'error';
      }
      throw classified;
    } finally {
      for (const t of timers) clearTimeout(t);
      if (onAbort) opts.signal?.removeEventListener('abort', onAbort);
      slot.call?.fetches?.abort();
      slot.call = undefined;
      this.release(pool, slot, broken);
    }
  }

  /** Disposes every isolate. */
  async close(): Promise<void> {
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

  /**
   * One call on a leased, idle isolate: first synchronously under the sync budget, and if that runs
   * out (while more of the deadline is left), again from the start on isolated-vm's threads. The
   * first attempt had no side effects by then: `ctx.fetch` requests only reach the host after the
   * synchronous section, and the new token turns the old attempt's into no-ops.
   */
  private async execute(slot: Slot, pool: Pool, tool: ToolSource, argsJson: string, opts: RunOptions, deadline: number): Promise<string> {
    const secretsJson = JSON.stringify(opts.secrets ?? {});
    if (this.syncBudgetMs > 0 && performance.now() >= pool.slowUntil) {
      const budgetOnly = this.syncBudgetMs < remaining(deadline);
      const timeout = Math.min(this.syncBudgetMs, remaining(deadline));
      const token = this.begin(slot, pool, opts, deadline);
      // CPU time of this thread, where the synchronous attempt runs: tells the tool's own work
      // apart from time the process spent descheduled (the budget itself is wall time).
      const cpuBefore = process.threadCpuUsage();
      try {
        const module = this.instantiate(slot, pool, tool);
        try {
          evaluating(() => module.evaluateSync({ timeout }));
          const args = [module.namespace.derefInto(), argsJson, tool.maxResultBytes, this.maxLogLines, secretsJson, token];
          ignoreStrayRejection(() => slot.start.applySync(undefined, args, { timeout }));
        } finally {
          module.release();
        }
      } catch (err: unknown) {
        if (!(budgetOnly && isTimeout(err))) throw err;
        const cpu = process.threadCpuUsage(cpuBefore);
        // Only a tool that burned most of the budget itself is moved to threads; a preempted or
        // GC-paused attempt just runs this one call there.
        if ((cpu.user + cpu.system) / 1000 >= this.syncBudgetMs / 2) {
          pool.overruns++;
          const holdMs = Math.min(SLOW_MAX_MS, SLOW_BASE_MS * 2 ** (pool.overruns - 1));
          pool.slowUntil = performance.now() + holdMs;
          this.log.debug({ tool: tool.key, holdMs, cpuMs: (cpu.user + cpu.system) / 1000 }, 'tool overran the sync budget, running it on threads');
        }
        return this.executeOnThreads(slot, pool, tool, argsJson, secretsJson, opts, deadline);
      }
      pool.overruns = 0;
      return this.outcome(slot, token);
    }
    return this.executeOnThreads(slot, pool, tool, argsJson, secretsJson, opts, deadline);
  }

  private async executeOnThreads(
    slot: Slot,
    pool: Pool,
    tool: ToolSource,
    argsJson: string,
    secretsJson: string,
    opts: RunOptions,
    deadline: number,
  ): Promise<string> {
    const token = this.begin(slot, pool, opts, deadline);
    const module = this.instantiate(slot, pool, tool);
    try {
      await evaluatingAsync(() => module.evaluate({ timeout: remaining(deadline) }));
      const args = [module.namespace.derefInto(), argsJson, tool.maxResultBytes, this.maxLogLines, secretsJson, token];
      await slot.start.apply(undefined, args, { timeout: remaining(deadline) }).catch(ignoreStrayRejection.rethrowLimits);
    } finally {
      module.release();
    }
    return this.outcome(slot, token);
  }

  /** The outcome once the isolate is idle again: at once if the call settled, else after the runner reports. */
  private async outcome(slot: Slot, token: number): Promise<string> {
    // The isolate is idle here (we just finished a call into it), so a synchronous call is safe.
    const settled = slot.take.applySync(undefined, [token]);
    if (typeof settled === 'string') return settled;
    const call = slot.call!;
    // Armed before we yield: the runner's report reaches us as a later host task.
    const report = new Promise<string>((resolve) => (call.reported = resolve));
    // An isolate killed by its heap limit while we wait would never report: watch for it.
    let watch: NodeJS.Timeout | undefined;
    const died = new Promise<never>((_, reject) => {
      watch = setInterval(() => {
        if (slot.isolate.isDisposed) reject(new Error('Isolate was disposed during execution due to memory limit'));
      }, 20);
    });
    try {
      const reported = await Promise.race([report, died]);
      // The report can come while leftover work still runs; a completed async call proves it has ended.
      await slot.ping.apply(undefined, []);
      return reported;
    } finally {
      clearInterval(watch);
    }
  }

  private begin(slot: Slot, pool: Pool, opts: RunOptions, deadline: number): number {
    slot.call?.fetches?.abort();
    const token = ++this.tokens;
    slot.call = {
      token,
      rules: pool.rules,
      deadline,
      fetches: undefined,
      fetchCount: 0,
      onRetryAfter: opts.onRetryAfter,
      reported: undefined,
      // Isolate callbacks (`bridgeFetch`) do not run in the caller's async context, so keep it here.
      trace: opts.trace ?? context.active(),
    };
    return token;
  }

  /** A fresh instance of the tool's module in the slot's context. Runs no tool code. */
  private instantiate(slot: Slot, pool: Pool, tool: ToolSource): ivm.Module {
    const module = evaluating(() =>
      slot.isolate.compileModuleSync(tool.code, {
        filename: `tool:${tool.key}`,
        ...(pool.cachedData ? { cachedData: pool.cachedData } : { produceCachedData: true }),
      }),
    );
    // isolated-vm sets `cachedData` on modules compiled with `produceCachedData`; its types omit it.
    const produced = (module as { cachedData?: ivm.ExternalCopy<ArrayBuffer> }).cachedData;
    if (!pool.cachedData && produced) pool.cachedData = produced;
    try {
      evaluating(() =>
        module.instantiateSync(slot.context, (specifier) => {
          throw new Error(`import of '${specifier}' is not allowed in tool code`);
        }),
      );
    } catch (err: unknown) {
      module.release();
      throw err;
    }
    return module;
  }

  /** `ctx.fetch` on the host side, called by the runner with the call's token and a JSON request. */
  private async bridgeFetch(slot: Slot, token: number, requestJson: string): Promise<string> {
    const call = slot.call;
    if (!call || call.token !== token) return STALE;
    if (++call.fetchCount > this.maxFetches) return JSON.stringify({ error: `more than ${this.maxFetches} requests in one call` });
    let request: FetchRequest;
    try {
      request = JSON.parse(requestJson) as FetchRequest;
    } catch {
      return JSON.stringify({ error: 'malformed request' });
    }
    const reply = await hostFetch(request, {
      rules: call.rules,
      deadline: call.deadline,
      signal: (call.fetches ??= new AbortController()).signal,
      maxResponseBytes: this.maxResponseBytes,
      resolve: this.resolveHost,
      allowPrivate: this.allowPrivate,
      ...(call.onRetryAfter ? { onRetryAfter: call.onRetryAfter } : {}),
      trace: call.trace,
    });
    return slot.call === call ? JSON.stringify(reply) : STALE;
  }

  private decode(out: string, secrets: string[], started: number): RunResult {
    let parsed = JSON.parse(out) as Outcome;
    if (secrets.length > 0) parsed = redactSecrets(parsed, secrets);
    if (!parsed.ok) throw Object.assign(failWithReportedCode(parsed.code, parsed.message), { logs: parsed.logs });
    return { value: parsed.value, logs: parsed.logs, runMs: performance.now() - started };
  }

  private pool(tool: ToolSource): Pool {
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
        slowUntil: 0,
        overruns: 0,
      };
      this.pools.set(tool.key, pool);
    }
    pool.lastUsed = Date.now();
    return pool;
  }

  private async acquire(pool: Pool): Promise<Slot> {
    const idle = pool.idle.pop();
    if (idle) return idle;
    if (pool.size < this.maxIsolates) {
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

  private release(pool: Pool, slot: Slot, broken: DisposalReason | undefined): void {
    if (broken || slot.isolate.isDisposed || this.closed) {
      const waiter = pool.waiters.shift();
      // The replacement takes over the broken isolate's share of the budget.
      if (waiter && !this.closed) this.reservedMb += slot.memoryMb;
      this.dispose(slot, broken ?? 'error');
      pool.size--;
      if (waiter) {
        pool.size++;
        this.createSlotFor(pool, waiter);
      }
      return;
    }
    const waiter = pool.waiters.shift();
    if (waiter) return waiter(slot);
    pool.idle.push(slot);
    // A call waiting for budget can now evict this idle isolate.
    this.budgetWaiters.shift()?.();
  }

  private createSlotFor(pool: Pool, waiter: (slot: Slot | undefined) => void): void {
    this.createSlot(pool.memoryMb).then(waiter, () => {
      pool.size--;
      this.unreserve(pool.memoryMb);
      waiter(undefined);
    });
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

  private unreserve(mb: number): void {
    this.reservedMb -= mb;
    this.budgetWaiters.shift()?.();
  }

  /** Disposes one idle isolate of the least recently used tool; false if none is idle. */
  private evictIdle(): boolean {
    let lru: Pool | undefined;
    for (const p of this.pools.values()) if (p.idle.length > 0 && (!lru || p.lastUsed < lru.lastUsed)) lru = p;
    const slot = lru?.idle.pop();
    if (!lru || !slot) return false;
    lru.size--;
    this.dispose(slot, 'evicted');
    return true;
  }

  private async createSlot(memoryMb: number): Promise<Slot> {
    const isolate = new ivm.Isolate({
      memoryLimit: memoryMb,
      onCatastrophicError: (message) => {
        if (this.opts.onCatastrophicError) return this.opts.onCatastrophicError(message);
        this.log.fatal({ message }, 'isolated-vm catastrophic error, aborting');
        process.abort();
      },
    });
    try {
      const context = await isolate.createContext();
      await context.eval(LOCKDOWN_SOURCE);
      const factory = (await context.eval(RUNNER_SOURCE, { reference: true })) as ivm.Reference<(...a: unknown[]) => unknown>;
      const slot = { isolate, context, memoryMb, call: undefined } as Slot;
      // Host functions handed to the runner; it keeps them in its closure, out of tool code's reach.
      const fetchRef = new ivm.Reference((token: number, request: string) => this.bridgeFetch(slot, token, request));
      const reportRef = new ivm.Reference((token: number, outcome: string) => {
        if (slot.call?.token === token) slot.call.reported?.(outcome);
      });
      const limits = new ivm.ExternalCopy(REQUEST_LIMITS).copyInto();
      const runner = (await factory.apply(undefined, [fetchRef, reportRef, limits], { result: { reference: true } })) as ivm.Reference<Record<keyof Runner, unknown>>;
      slot.start = runner.getSync('start', { reference: true }) as Runner['start'];
      slot.take = runner.getSync('take', { reference: true }) as Runner['take'];
      slot.ping = runner.getSync('ping', { reference: true }) as Runner['ping'];
      factory.release();
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
      if (now - pool.lastUsed < this.idleTtlMs || pool.size !== pool.idle.length) continue;
      for (const slot of pool.idle) this.dispose(slot, 'idle');
      this.pools.delete(key);
    }
  }
}

/**
 * The runner's `start` never throws; isolated-vm rethrows a promise rejection that tool code left
 * unhandled during the call instead. That is the tool's business (the call's outcome stands), and
 * it must not reach the host's own handlers: drop it. Limits (timeout, disposal) still count.
 */
function ignoreStrayRejection(fn: () => unknown): void {
  try {
    fn();
  } catch (err: unknown) {
    ignoreStrayRejection.rethrowLimits(err);
  }
}
ignoreStrayRejection.rethrowLimits = (err: unknown): void => {
  if (isLimit(err)) throw err;
};

function evaluating<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err: unknown) {
    throw asEvaluationError(err);
  }
}

async function evaluatingAsync<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err: unknown) {
    throw asEvaluationError(err);
  }
}

function asEvaluationError(err: unknown): Error {
  const message = messageOf(err);
  // Limits keep their own classification.
  if (isLimit(err)) return err instanceof Error ? err : new Error(message);
  const name = err instanceof Error && err.name !== 'Error' ? `${err.name}: ` : '';
  return new EvaluationError(`${name}${message}`.slice(0, 4000), { cause: err });
}

function remaining(deadline: number): number {
  return Math.max(1, Math.ceil(deadline - performance.now()));
}
