import ivm from 'isolated-vm';
import { context, type Context } from '@opentelemetry/api';
import { silentLogger, type Logger } from '@toolplane/core';
import { parseNetworkList, type NetworkList } from './bridges/egress.js';
import { hostCrypto } from './bridges/crypto-bridge.js';
import { defaultResolver, hostFetch, type FetchRequest, type HostResolver } from './bridges/fetch-bridge.js';
import { armCallLimits, type CallLimits } from './call-limits.js';
import { classifyIsolateError, evaluating, evaluatingAsync, fail, failWithReportedCode, ignoreStrayRejection, isTimeout, rethrowLimits } from './errors.js';
import { EntryKind } from './isolate/entry-kind.js';
import { IsolatePools, type ActiveCall, type DisposalReason, type Pool, type ProgressReport, type Slot, type TimerWait } from './isolate-pool.js';
import { redactSecrets } from './redact.js';
import { toModuleFactory } from './module-factory.js';
import { mapStack } from './source-map.js';

export type { DisposalReason, ProgressReport } from './isolate-pool.js';

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
  /**
   * Source map (v3 JSON) of a bundled tool: a failed call's stack frames are mapped through it and
   * appended to the error message, so they point at the tool's own source lines. Never sent to a host.
   */
  sourceMap?: string;
  /**
   * `call` (default): every call gets a fresh instance of the module, so nothing of one call's module
   * state reaches the next. `isolate`: an isolate keeps the instance it made for its first call and
   * later calls on that isolate reuse it (caches, warm clients — state carries over between calls of
   * this tool version, never to another tool), as Cloudflare Workers do. An explicit opt-in.
   * @default 'call'
   */
  isolation?: 'call' | 'isolate';
};

/** The call as tool code sees it in `ctx.callId` and `ctx.attempt`. */
export type CallInfo = { id: string; attempt: number };

export type RunOptions = {
  /** @default `{ id: '', attempt: 1 }` */
  call?: CallInfo;
  /** Aborting ends the call at once and disposes its isolate. */
  signal?: AbortSignal;
  /** Secrets granted to this tool, exposed as `ctx.secrets`; their values are redacted from the outcome. */
  secrets?: Record<string, string>;
  /** An upstream answered 429 or 503 with `Retry-After`; `ms` from now (for the tool's rate limiter). */
  onRetryAfter?: (ms: number) => void;
  /** The call got its isolate and its time starts; `waited` when it had to wait for one. */
  onStart?: () => void;
  /** The call waits for an isolate (one of the tool's is free later, or a new one starts); `onStart` follows. */
  onWait?: () => void;
  /** Parent of the call's `ctx.fetch` spans. @default the active context */
  trace?: Context;
  /**
   * V8 lost control of this call's isolate (typically its heap far past the limit); the process
   * ends right after. Called synchronously, so it can only write somewhere at once.
   */
  onFatal?: (message: string) => void;
  /**
   * `ctx.progress` reports, at most one per 100 ms (latest wins in between), each with the log lines
   * written since the previous one; secrets redacted. Nothing is reported after the call ends.
   */
  onProgress?: (report: ProgressReport) => void;
};

export type RunResult = { value: unknown; logs: string[]; runMs: number };

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

type Outcome =
  | { ok: true; value: unknown; logs: string[] }
  | { ok: false; code: string; message: string; stack?: string; logs: string[] };

const STALE = '{"stale":true}';
/** Timer waits one call may have pending on the host; the runtime refuses more before asking. */
const MAX_PENDING_TIMERS = 1000;
/** Checked by the runner before a request leaves the isolate, and by the fetch bridge again. */
const REQUEST_LIMITS = { maxUrlLength: 8192, maxRequestBodyBytes: 1024 * 1024 };

/**
 * Runs tool code in isolated-vm isolates in this process. Workers do not use it directly: they use
 * `SandboxFleet`, which runs it in sandbox host processes that the worker can kill.
 *
 * Per tool version, a small pool of isolates (`isolate-pool.ts`), each leased to one call at a
 * time, with one context whose intrinsics are frozen at creation. Each call gets a fresh instance of
 * the tool's module (compiled from V8's code cache), so module state, globals and built-ins never
 * carry over between calls. A call first runs synchronously under a small time budget (compile,
 * evaluate, start and collect the outcome are four cheap entries into a locked isolate, no thread
 * hops); a call that waits on `ctx.fetch` continues on isolated-vm's threads and reports back, and
 * a tool that overruns the budget runs on threads for a while (`fast-path.ts`). Wall time, CPU
 * time and cancellation are enforced by the host (`call-limits.ts`).
 */
export class Sandbox {
  private readonly pools: IsolatePools;
  private readonly maxLogLines: number;
  private readonly syncBudgetMs: number;
  private readonly maxResponseBytes: number;
  private readonly maxFetches: number;
  private readonly resolveHost: HostResolver;
  private readonly allowPrivate: NetworkList;
  private readonly log: Logger;
  private tokens = 0;
  private closed = false;

  constructor(opts: SandboxOptions = {}) {
    this.maxLogLines = opts.maxLogLines ?? 200;
    this.syncBudgetMs = opts.syncBudgetMs ?? 4;
    this.maxResponseBytes = opts.maxResponseBytes ?? 1024 * 1024;
    this.maxFetches = opts.maxFetchesPerCall ?? 50;
    this.resolveHost = opts.resolveHost ?? defaultResolver;
    this.allowPrivate = parseNetworkList(opts.allowPrivateNetworks ?? '');
    this.log = opts.logger ?? silentLogger();
    this.pools = new IsolatePools({
      maxIsolatesPerTool: opts.maxIsolatesPerTool ?? 8,
      memoryBudgetMb: opts.memoryBudgetMb,
      idleTtlMs: opts.idleTtlMs ?? 60_000,
      syncBudgetMs: this.syncBudgetMs,
      onDispose: opts.onDispose,
      onCatastrophicError: (message, slot) => {
        slot.call?.onFatal?.(message);
        if (opts.onCatastrophicError) return opts.onCatastrophicError(message);
        this.log.fatal({ message }, 'isolated-vm catastrophic error, aborting');
        process.abort();
      },
      bridges: (slot) => ({
        fetch: new ivm.Reference((token: number, request: string) => this.bridgeFetch(slot, token, request)),
        report: new ivm.Reference((token: number, outcome: string) => {
          if (slot.call?.token === token) slot.call.reported?.(outcome);
        }),
        timer: new ivm.Reference((token: number, ms: number) => this.bridgeTimer(slot, token, ms)),
        crypto: new ivm.Reference(hostCrypto),
        limits: REQUEST_LIMITS,
        progress: new ivm.Reference((token: number, json: string) => {
          const call = slot.call;
          if (call?.token !== token || !call.onProgress) return;
          const report = parseProgress(json);
          if (report) call.onProgress(report);
        }),
      }),
    });
  }

  /** Runs one call. Resolves with the JSON result; rejects with a {@link ToolExecError}. */
  async run(tool: ToolSource, args: unknown, opts: RunOptions = {}): Promise<RunResult> {
    let argsJson: string;
    try {
      argsJson = JSON.stringify(args ?? null);
    } catch (err: unknown) {
      throw fail('REJECTED', 'arguments are not JSON', err);
    }
    return this.runArgsJson(tool, argsJson, opts);
  }

  /**
   * {@link run} with the arguments as JSON text, as they arrive at a sandbox host: they go into the
   * isolate as they are (parsed there, in the tool's realm), so the host never parses them.
   */
  async runArgsJson(tool: ToolSource, argsJson: string, opts: RunOptions = {}): Promise<RunResult> {
    if (this.closed) throw fail('SANDBOX_ERROR', 'sandbox is shut down');
    if (opts.signal?.aborted) throw fail('CANCELLED', 'call was cancelled');
    const secretValues = Object.values(opts.secrets ?? {});
    const onProgress = opts.onProgress;
    // Progress leaves while the call runs, so it is redacted on its own, like the outcome.
    if (onProgress && secretValues.length > 0) opts = { ...opts, onProgress: (r) => onProgress(redactSecrets(r, secretValues)) };
    const pool = this.pools.pool(tool);
    // A new version's first call waits for its conversion (a few ms, alongside its isolate's start),
    // so that every call of a version runs the same way.
    if (!pool.converted) await this.convert(pool, tool.code);
    const turn = this.pools.untilTurnFree();
    if (turn) await turn;
    // No isolate free within this turn: the call waits for one, or for a new one to start, before its time starts.
    const taken = this.pools.takeSoon(pool);
    const soon = taken instanceof Promise ? await taken : taken;
    const waits = soon === undefined;
    if (waits) opts.onWait?.();
    const slot = soon ?? (await this.pools.acquire(pool));
    // Waiting for a free isolate is queueing, not running: the deadline starts now.
    const started = performance.now();
    if (waits) opts.onStart?.();
    const deadline = started + tool.timeoutMs;
    const cpuMs = tool.cpuMs ?? tool.timeoutMs;
    const cpuStart = cpuMs < tool.timeoutMs ? slot.isolate.cpuTime : undefined;
    // From taking the isolate to giving it back, a call that ends within its synchronous attempt (most
    // do) never awaits: the isolate is idle again before any other call starts, so calls arriving
    // together run one after another on one warm isolate. Only a call that outlives the attempt arms
    // the host's limits.
    if (opts.signal?.aborted) {
      this.pools.release(pool, slot, undefined);
      throw fail('CANCELLED', 'call was cancelled');
    }
    let limits: CallLimits | undefined;
    let broken: DisposalReason | undefined;
    try {
      let out = this.execute(slot, pool, tool, argsJson, opts, deadline);
      if (typeof out !== 'string') {
        limits = armCallLimits(slot.isolate, { timeoutMs: tool.timeoutMs, cpuMs, startedAt: started, cpuStart }, opts.signal);
        out = await Promise.race([out, limits.limit]);
      }
      return this.decode(out, secretValues, started, tool.sourceMap, slot.factory ? pool.factory?.map : undefined);
    } catch (err: unknown) {
      // Whatever failed after a limit or an abort disposed the isolate, the limit is the reason.
      if (limits?.tripped) throw limits.tripped;
      const classified = classifyIsolateError(err, slot.isolate.isDisposed);
      // A tool's own compile or evaluation error leaves the isolate as clean as it was: keep it.
      if (classified.code !== 'TOOL_ERROR') {
        broken = classified.code === 'OUT_OF_MEMORY' ? 'oom' : classified.code === 'TIMEOUT' ? 'timeout' : 'error';
      }
      throw classified;
    } finally {
      limits?.disarm();
      slot.call?.fetches?.abort();
      if (slot.call) releaseTimers(slot.call);
      slot.call = undefined;
      this.pools.release(pool, slot, limits?.disposal ?? broken);
    }
  }

  /** Disposes every isolate. */
  close(): Promise<void> {
    this.closed = true;
    this.pools.close();
    return Promise.resolve();
  }

  /** Whether calls of a tool version now start from its module factory rather than a module compiled per call. */
  runsFromFactory(key: string): boolean {
    return this.pools.find(key)?.factory !== undefined;
  }

  /** Isolates alive now, per tool version key. */
  stats(): Record<string, number> {
    return this.pools.stats();
  }

  /**
   * One call on a leased, idle isolate: first synchronously under the sync budget, and if that runs
   * out (while more of the deadline is left), again from the start on isolated-vm's threads. The
   * first attempt had no side effects by then: `ctx.fetch` requests only reach the host after the
   * synchronous section, and the new token turns the old attempt's into no-ops.
   */
  private execute(slot: Slot, pool: Pool, tool: ToolSource, argsJson: string, opts: RunOptions, deadline: number): string | Promise<string> {
    const secretsJson = JSON.stringify(opts.secrets ?? {});
    const callJson = JSON.stringify(opts.call ?? { id: '', attempt: 1 });
    if (!pool.fastPath.useSync()) return this.executeOnThreads(slot, pool, tool, argsJson, secretsJson, callJson, opts, deadline);
    const budgetOnly = this.syncBudgetMs < remaining(deadline);
    const timeout = Math.min(this.syncBudgetMs, remaining(deadline));
    const token = this.begin(slot, pool, opts, deadline);
    // The isolate's own CPU time tells the tool's work apart from time the process spent descheduled
    // (the budget itself is wall time); no system call, unlike the thread's. Read once the entry is
    // ready: compiling its factory into a fresh isolate is not the tool's doing.
    let cpuBefore: bigint | undefined;
    try {
      const entry = this.entry(slot, pool, tool);
      cpuBefore = slot.isolate.cpuTime;
      try {
        if (entry.evaluate) evaluating(() => entry.evaluate!.evaluateSync({ timeout }));
        const args = [entry.ref().derefInto(), entry.kind, argsJson, tool.maxResultBytes, this.maxLogLines, secretsJson, token, callJson];
        ignoreStrayRejection(() => slot.start.applySync(undefined, args, { timeout }));
      } finally {
        entry.release();
      }
    } catch (err: unknown) {
      if (!(budgetOnly && cpuBefore !== undefined && isTimeout(err) && !slot.isolate.isDisposed)) throw err;
      const holdMs = pool.fastPath.overran(Number(slot.isolate.cpuTime - cpuBefore) / 1e6);
      if (holdMs !== undefined) this.log.debug({ tool: tool.key, holdMs }, 'tool overran the sync budget, running it on threads');
      return this.executeOnThreads(slot, pool, tool, argsJson, secretsJson, callJson, opts, deadline);
    }
    pool.fastPath.succeeded();
    return this.outcome(slot, token);
  }

  private async executeOnThreads(
    slot: Slot,
    pool: Pool,
    tool: ToolSource,
    argsJson: string,
    secretsJson: string,
    callJson: string,
    opts: RunOptions,
    deadline: number,
  ): Promise<string> {
    const token = this.begin(slot, pool, opts, deadline);
    const entry = this.entry(slot, pool, tool);
    try {
      if (entry.evaluate) await evaluatingAsync(() => entry.evaluate!.evaluate({ timeout: remaining(deadline) }));
      const args = [entry.ref().derefInto(), entry.kind, argsJson, tool.maxResultBytes, this.maxLogLines, secretsJson, token, callJson];
      await slot.start.apply(undefined, args, { timeout: remaining(deadline) }).catch(rethrowLimits);
    } finally {
      entry.release();
    }
    return this.outcome(slot, token);
  }

  /** The outcome once the isolate is idle again: at once if the call settled, else after the runner reports. */
  private outcome(slot: Slot, token: number): string | Promise<string> {
    // The isolate is idle here (we just finished a call into it), so a synchronous call is safe.
    const settled = slot.take.applySync(undefined, [token]);
    return typeof settled === 'string' ? settled : this.reported(slot);
  }

  private async reported(slot: Slot): Promise<string> {
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
    if (slot.call) releaseTimers(slot.call);
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
      onFatal: opts.onFatal,
      timers: new Set(),
      onProgress: opts.onProgress,
    };
    return token;
  }

  /**
   * What the runner starts the call from (see `isolate/entry-kind.ts`): the tool's module factory
   * when it has one, else a module compiled and to be evaluated for this call. `isolation: "isolate"`
   * reuses the factory's instance; a module without a factory (top-level `await`) always runs fresh.
   * Runs no tool code.
   */
  private entry(slot: Slot, pool: Pool, tool: ToolSource): { kind: EntryKind; ref(): ivm.Reference; evaluate?: ivm.Module; release(): void } {
    const factory = this.factoryIn(slot, pool, tool);
    if (factory) return { kind: tool.isolation === 'isolate' ? EntryKind.Reuse : EntryKind.Fresh, ref: () => factory, release: () => {} };
    const module = this.instantiate(slot, pool, tool);
    return { kind: EntryKind.Module, ref: () => module.namespace, evaluate: module, release: () => module.release() };
  }

  private convert(pool: Pool, code: string): Promise<void> {
    pool.converting ??= toModuleFactory(code).catch(() => undefined).then((factory) => {
      pool.factory = factory;
      pool.converted = true;
      pool.converting = undefined;
    });
    return pool.converting;
  }

  /** The tool's module factory in the slot's isolate, compiled there on first use; undefined for a module without one. */
  private factoryIn(slot: Slot, pool: Pool, tool: ToolSource): ivm.Reference | undefined {
    if (slot.factory) return slot.factory;
    const factory = pool.factory;
    if (!factory) return undefined;
    try {
      const script = slot.isolate.compileScriptSync(factory.code, { filename: `tool:${tool.key}` });
      try {
        // Evaluates the function expression only: no tool code runs here.
        const fn = script.runSync(slot.context, { reference: true, timeout: 1_000 }) as ivm.Reference;
        if (fn.typeof !== 'function') {
          fn.release();
          throw new Error('module factory is not a function');
        }
        slot.factory = fn;
        return fn;
      } finally {
        script.release();
      }
    } catch (err: unknown) {
      // Never expected; the per-call module path still runs the tool as written.
      this.log.warn({ tool: tool.key, err }, 'module factory did not compile, compiling the module per call');
      pool.factory = undefined;
      return undefined;
    }
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

  /**
   * A timer wait of the isolate's `setTimeout`: resolves after `ms` while the call runs. A wait that
   * cannot end before the deadline is not scheduled at all; every wait of a call is released
   * (resolved, then ignored by the runtime) when the call ends, so no timer outlives its call.
   */
  private bridgeTimer(slot: Slot, token: number, ms: number): Promise<void> {
    const call = slot.call;
    if (!call || call.token !== token || typeof ms !== 'number' || call.timers.size >= MAX_PENDING_TIMERS) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const wait: TimerWait = { handle: undefined, resolve };
      call.timers.add(wait);
      if (performance.now() + ms >= call.deadline) return;
      wait.handle = setTimeout(() => {
        call.timers.delete(wait);
        resolve();
      }, ms);
    });
  }

  /** `factoryMap`: the call ran from the module factory, whose stack positions go back to the tool's code first. */
  private decode(out: string, secrets: string[], started: number, sourceMap: string | undefined, factoryMap: string | undefined): RunResult {
    let parsed = JSON.parse(out) as Outcome;
    if (secrets.length > 0) parsed = redactSecrets(parsed, secrets);
    if (!parsed.ok) {
      if (parsed.stack && factoryMap) parsed.stack = mapStack(parsed.stack, factoryMap, true);
      const message = parsed.stack && sourceMap ? `${parsed.message}\n${mapStack(parsed.stack, sourceMap)}` : parsed.message;
      throw Object.assign(failWithReportedCode(parsed.code, message), { logs: parsed.logs, ...(parsed.stack ? { stack: parsed.stack } : {}) });
    }
    return { value: parsed.value, logs: parsed.logs, runMs: performance.now() - started };
  }
}

/** A report as the runtime sends it (`isolate/progress.ts`), checked again: only data of the expected shape passes. */
function parseProgress(json: unknown): ProgressReport | undefined {
  if (typeof json !== 'string') return undefined;
  try {
    const r = JSON.parse(json) as Partial<ProgressReport>;
    const { fraction, message, logs } = r;
    if (typeof fraction !== 'number' || !(fraction >= 0 && fraction <= 1) || typeof message !== 'string' || !Array.isArray(logs)) return undefined;
    return { fraction, message, logs: logs.filter((l): l is string => typeof l === 'string') };
  } catch {
    return undefined;
  }
}

function remaining(deadline: number): number {
  return Math.max(1, Math.ceil(deadline - performance.now()));
}

/** Ends every timer wait of a call: host timers cleared, the isolate's promises resolved (and ignored there). */
function releaseTimers(call: ActiveCall): void {
  for (const wait of call.timers) {
    if (wait.handle) clearTimeout(wait.handle);
    wait.resolve();
  }
  call.timers.clear();
}
