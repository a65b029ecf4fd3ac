import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { SpanStatusCode, context, trace, type Context } from '@opentelemetry/api';
import { RequestError, silentLogger, toPublicFailure, toToolExecError, type Logger, type ToolExecError } from '@toolplane/core';
import { fail } from '../errors.js';
import type { DisposalReason, RunOptions, RunResult, ToolSource } from '../sandbox.js';
import { mapStack } from '../source-map.js';
import type { HostOptions } from './host-main.js';
import { HEARTBEAT_MS, batchedWriter, lineReader, type HostReply, type HostRequest, type WireTool, type WireTrace } from './protocol.js';

/** Why a host was killed and replaced; bounded, so it can label a metric. */
export type HostFailure = 'stall' | 'deadline' | 'memory' | 'fatal' | 'crash';

export type SandboxFleetOptions = {
  /**
   * Host processes that share the calls. One more is kept started and idle, so a killed host is
   * replaced at once and a suspect call can be re-run alone.
   * @default 1
   */
  hosts?: number;
  /** Keep one more host started and idle, to replace a killed one at once. @default true */
  spare?: boolean;
  /** Start hosts on the first call instead of at construction (the planner's registration checks). @default false */
  lazy?: boolean;
  /** @default 8 */
  maxIsolatesPerTool?: number;
  /**
   * Heap limits of all live isolates of one host together; beyond it, idle isolates are evicted and
   * calls wait. A tool whose own limit exceeds it is refused.
   * @default 512
   */
  memoryBudgetMb?: number;
  /**
   * A host whose resident memory passes this is killed: isolated-vm's heap limit is soft, and one
   * native allocation can overshoot it by gigabytes.
   * @default memoryBudgetMb + 256
   */
  hostMemoryLimitMb?: number;
  /** @default 4 */
  syncBudgetMs?: number;
  /** @default 1 MiB */
  maxResponseBytes?: number;
  /** @default 50 */
  maxFetchesPerCall?: number;
  /** @default 60_000 */
  idleTtlMs?: number;
  /** CIDRs tools' `ctx.fetch` may reach although private (`TOOLPLANE_ALLOW_PRIVATE_NETWORKS`). @default '' */
  allowPrivateNetworks?: string;
  /** A call still unanswered this long after its deadline gets its host killed. @default 100 */
  graceMs?: number;
  /** A host whose event loop has not turned for this long while it holds calls is killed. @default 1000 */
  stallMs?: number;
  /** Registration checks get this long in all, then their host is killed. @default 1000 */
  checkTimeoutMs?: number;
  /** Tool code a host keeps, least recently used going first; a call of a tool it let go is sent again with it. @default 64 MiB */
  hostCodeBytes?: number;
  /** Variables the hosts get; nothing of the parent's environment is passed otherwise. @default {} */
  env?: Record<string, string>;
  onDispose?: (reason: DisposalReason) => void;
  /** A host was killed (or died) and replaced. */
  onHostFailure?: (reason: HostFailure) => void;
  logger?: Logger;
};

type Pending = {
  id: number;
  tool: ToolSource;
  args: string;
  opts: RunOptions;
  resolve: (r: RunResult) => void;
  reject: (e: ToolExecError) => void;
  host: Host | undefined;
  /** `performance.now()` when the call's time started: when sent, or at the host's `start` after a `wait` (0 between). */
  startedAt: number;
  /** Hosts that died under it while the culprit was unknown. */
  strikes: number;
  /** Runs alone in a host of its own: whatever kills that host is this call's doing. */
  solo: boolean;
  trace: Context;
  wireTrace: WireTrace | undefined;
  onAbort: (() => void) | undefined;
  /** Settled: a cancelled call may still sit in a queue; it is skipped there. */
  done: boolean;
};

type PendingCheck = { resolve: (r: { ok: true } | { ok: false; message: string }) => void; host: Host; deadline: number };

type Host = {
  proc: ChildProcess;
  send: (msg: HostRequest) => void;
  state: 'starting' | 'ready' | 'dead';
  role: 'shared' | 'spare' | 'solo';
  calls: Map<number, Pending>;
  checks: Map<number, PendingCheck>;
  known: Set<string>;
  lastBeat: number;
  startedAt: number;
  /** The call whose isolate V8 lost control of, as the host said just before it aborted. */
  fatal: { id: number; message: string } | undefined;
};

const HOST_MAIN = fileURLToPath(new URL('../../dist/host/host-main.js', import.meta.url));
const WATCHDOG_MS = 50;
const START_TIMEOUT_MS = 15_000;
const MAX_REPLY_LINE_BYTES = 256 * 1024 * 1024;
/** Suspects re-run alone at once, at most; the rest wait for a quarantine host. */
const MAX_SOLO_HOSTS = 2;
const PAGE_BYTES = 4096;

/**
 * Runs tool calls in sandbox host processes: child processes holding the isolates, which this
 * process (the worker) can SIGKILL and replace. Tool code then never runs on the worker's own
 * threads, so nothing it does (an uninterruptible native operation, a microtask chain isolated-vm
 * cannot stop, a heap far past its soft limit) can stop the worker answering health checks,
 * renewing locks or running other calls.
 *
 * A watchdog checks every host every 50 ms: a call unanswered {@link SandboxFleetOptions.graceMs}
 * past its deadline, a host whose event loop stalls, or one whose resident memory passes its limit
 * gets the host killed. The call at fault ends with `TIMEOUT` or `OUT_OF_MEMORY`; the calls that
 * shared the host run again. When the culprit is not known (a stall or crash with several calls),
 * each of them runs again alone in a host of its own, and a call that brings down a second host
 * ends `POISONED`.
 */
export class SandboxFleet {
  private readonly hosts: Host[] = [];
  private readonly waiting: Pending[] = [];
  private readonly quarantine: Pending[] = [];
  /**
   * Registration checks waiting for a host without one under way, by tenant, in turn order: the
   * tenant at the front sends one check and goes to the back (see {@link check}).
   */
  private readonly checkQueue = new Map<string, Array<() => void>>();
  private readonly opts: Required<Omit<SandboxFleetOptions, 'onDispose' | 'onHostFailure' | 'logger' | 'lazy'>>;
  private readonly log: Logger;
  private readonly watchdog: NodeJS.Timeout;
  private ids = 0;
  private closed = false;

  constructor(private readonly options: SandboxFleetOptions = {}) {
    const memoryBudgetMb = options.memoryBudgetMb ?? 512;
    this.opts = {
      hosts: options.hosts ?? 1,
      spare: options.spare ?? true,
      maxIsolatesPerTool: options.maxIsolatesPerTool ?? 8,
      memoryBudgetMb,
      hostMemoryLimitMb: options.hostMemoryLimitMb ?? memoryBudgetMb + 256,
      syncBudgetMs: options.syncBudgetMs ?? 4,
      maxResponseBytes: options.maxResponseBytes ?? 1024 * 1024,
      maxFetchesPerCall: options.maxFetchesPerCall ?? 50,
      idleTtlMs: options.idleTtlMs ?? 60_000,
      allowPrivateNetworks: options.allowPrivateNetworks ?? '',
      graceMs: options.graceMs ?? 100,
      stallMs: options.stallMs ?? 1_000,
      checkTimeoutMs: options.checkTimeoutMs ?? 1_000,
      hostCodeBytes: options.hostCodeBytes ?? 64 * 1024 * 1024,
      env: options.env ?? {},
    };
    this.log = options.logger ?? silentLogger();
    this.watchdog = setInterval(() => this.watch(), WATCHDOG_MS);
    this.watchdog.unref();
    if (!options.lazy) this.ensureHosts();
  }

  /** Resolves once every host has started (tests, and services that want to be warm before ready). */
  async ready(): Promise<void> {
    this.ensureHosts();
    while (!this.closed && this.hosts.some((h) => h.state === 'starting')) await new Promise((r) => setTimeout(r, 10));
  }

  /** Runs one call in a host. Resolves with the JSON result; rejects with a {@link ToolExecError}. */
  run(tool: ToolSource, args: unknown, opts: RunOptions = {}): Promise<RunResult> {
    return tracer.startActiveSpan('sandbox.run', { attributes: { 'toolplane.tool.key': tool.key } }, async (span) => {
      try {
        return await this.runCall(tool, args, opts, span.isRecording() ? span.spanContext() : undefined);
      } catch (err: unknown) {
        // The code only: a message can quote the tool's arguments.
        const { code } = toPublicFailure(err);
        span.setAttribute('toolplane.error.code', code);
        span.setStatus({ code: SpanStatusCode.ERROR, message: code });
        throw err;
      } finally {
        span.end();
      }
    });
  }

  /**
   * Checks tool code for registration in a host (see `checkToolCode`), bounded by
   * {@link SandboxFleetOptions.checkTimeoutMs}: top-level code that hangs its host is refused.
   * Checks run one per host at a time; the tenants with checks waiting take turns, so one tenant's
   * burst of registrations delays another's by one check per tenant waiting, not by the burst.
   */
  check(code: string, opts: { tenant?: string } = {}): Promise<{ ok: true } | { ok: false; message: string }> {
    const tenant = opts.tenant ?? '';
    if (this.closed) return Promise.resolve({ ok: false, message: 'sandbox is shut down' });
    this.ensureHosts();
    return new Promise((resolve, reject) => {
      const id = ++this.ids;
      // The check's own time starts when a host has it: a host still starting (a busy machine, a
      // replaced host) is not the code's fault. No host at all within the start timeout is ours.
      const waitUntil = performance.now() + START_TIMEOUT_MS;
      const dispatch = () => {
        if (!this.pickHost()) {
          if (this.closed) return resolve({ ok: false, message: 'sandbox is shut down' });
          if (performance.now() > waitUntil) return reject(new RequestError('UNAVAILABLE', 'no sandbox host is available to check the code; retry later'));
          return void setTimeout(dispatch, 10);
        }
        // One check per host at a time: checks sent together would share its CPU and each other's
        // time bound, so a burst of valid registrations failed as "blocked its checker" on a busy machine.
        const host = this.pickCheckHost();
        if (!host) return void this.queueCheck(tenant, dispatch);
        host.checks.set(id, { resolve, host, deadline: performance.now() + this.opts.checkTimeoutMs });
        host.send({ t: 'check', id, code });
      };
      dispatch();
    });
  }

  /** Stops every host: SIGTERM, then SIGKILL for any still there after `graceMs`. */
  async close(graceMs = 2_000): Promise<void> {
    this.closed = true;
    clearInterval(this.watchdog);
    for (const p of [...this.waiting.splice(0), ...this.quarantine.splice(0)]) this.settle(p, fail('SANDBOX_ERROR', 'sandbox is shut down'));
    await Promise.all(
      this.hosts.splice(0).map(async (host) => {
        for (const p of host.calls.values()) this.settle(p, fail('SANDBOX_ERROR', 'sandbox is shut down'));
        for (const c of host.checks.values()) c.resolve({ ok: false, message: 'sandbox is shut down' });
        host.state = 'dead';
        if (host.proc.exitCode !== null || host.proc.signalCode !== null) return;
        const exited = new Promise<void>((r) => host.proc.once('exit', () => r()));
        host.proc.kill('SIGTERM');
        const timer = setTimeout(() => host.proc.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }),
    );
    // Checks still waiting for a host learn that there is none now.
    const waiting = [...this.checkQueue.values()].flat();
    this.checkQueue.clear();
    for (const dispatch of waiting) dispatch();
  }

  /** Host processes alive now, by role. */
  stats(): { shared: number; spare: number; solo: number; pids: number[] } {
    const live = this.hosts.filter((h) => h.state !== 'dead');
    return {
      shared: live.filter((h) => h.role === 'shared').length,
      spare: live.filter((h) => h.role === 'spare').length,
      solo: live.filter((h) => h.role === 'solo').length,
      pids: live.map((h) => h.proc.pid ?? 0),
    };
  }

  private runCall(tool: ToolSource, args: unknown, opts: RunOptions, spanContext: WireTrace | undefined): Promise<RunResult> {
    if (this.closed) return Promise.reject(fail('SANDBOX_ERROR', 'sandbox is shut down'));
    if (opts.signal?.aborted) return Promise.reject(fail('CANCELLED', 'call was cancelled'));
    let argsJson: string;
    try {
      argsJson = JSON.stringify(args ?? null);
    } catch (err: unknown) {
      return Promise.reject(fail('REJECTED', 'arguments are not JSON', err));
    }
    this.ensureHosts();
    return new Promise<RunResult>((resolve, reject) => {
      const p: Pending = {
        id: ++this.ids,
        tool,
        args: argsJson,
        opts,
        resolve,
        reject,
        host: undefined,
        startedAt: 0,
        strikes: 0,
        solo: false,
        trace: context.active(),
        wireTrace: spanContext ? { traceId: spanContext.traceId, spanId: spanContext.spanId, traceFlags: spanContext.traceFlags } : undefined,
        onAbort: undefined,
        done: false,
      };
      if (opts.signal) {
        p.onAbort = () => {
          p.host?.send({ t: 'cancel', id: p.id });
          this.settle(p, fail('CANCELLED', 'call was cancelled'));
        };
        opts.signal.addEventListener('abort', p.onAbort, { once: true });
      }
      this.dispatch(p);
    });
  }

  private dispatch(p: Pending): void {
    if (p.done) return;
    if (p.solo) {
      this.quarantine.push(p);
      return this.drainQuarantine();
    }
    const host = this.pickHost();
    if (!host) return void this.waiting.push(p);
    this.send(host, p);
  }

  private send(host: Host, p: Pending): void {
    if (p.done) return;
    p.host = host;
    p.startedAt = performance.now();
    host.calls.set(p.id, p);
    const key = p.tool.key;
    let tool: WireTool | undefined;
    if (!host.known.has(key)) {
      host.known.add(key);
      const { sourceMap: _sourceMap, ...wire } = p.tool;
      tool = wire;
    }
    host.send({
      t: 'run',
      id: p.id,
      key,
      ...(tool ? { tool } : {}),
      args: p.args,
      ...(p.opts.secrets ? { secrets: p.opts.secrets } : {}),
      ...(p.opts.call ? { call: p.opts.call } : {}),
      ...(p.wireTrace ? { trace: p.wireTrace } : {}),
    });
  }

  /** A ready shared host with no registration check of its own under way. */
  private pickCheckHost(): Host | undefined {
    let best: Host | undefined;
    for (const h of this.hosts) {
      if (h.role !== 'shared' || h.state !== 'ready' || h.checks.size > 0) continue;
      if (!best || h.calls.size < best.calls.size) best = h;
    }
    return best;
  }

  /** Sends waiting registration checks to the hosts that are free for one, a tenant at a time. */
  private drainChecks(): void {
    while (this.checkQueue.size > 0 && (this.pickCheckHost() || !this.pickHost())) this.nextCheck()();
  }

  private queueCheck(tenant: string, dispatch: () => void): void {
    const queue = this.checkQueue.get(tenant);
    if (queue) queue.push(dispatch);
    else this.checkQueue.set(tenant, [dispatch]);
  }

  /** The first waiting check of the tenant at the front; that tenant goes to the back of the turn order. */
  private nextCheck(): () => void {
    const [tenant, queue] = this.checkQueue.entries().next().value!;
    this.checkQueue.delete(tenant);
    if (queue.length > 1) this.checkQueue.set(tenant, queue);
    return queue.shift()!;
  }

  private pickHost(): Host | undefined {
    let best: Host | undefined;
    for (const h of this.hosts) {
      if (h.role !== 'shared' || h.state !== 'ready') continue;
      if (!best || h.calls.size < best.calls.size) best = h;
    }
    return best;
  }

  private drainQuarantine(): void {
    for (;;) {
      while (this.quarantine[0]?.done) this.quarantine.shift();
      const soloHosts = this.hosts.filter((h) => h.role === 'solo' && h.state !== 'dead').length;
      if (this.quarantine.length === 0 || soloHosts >= MAX_SOLO_HOSTS) return;
      const p = this.quarantine.shift()!;
      const host = this.hosts.find((h) => h.role === 'spare' && h.state === 'ready') ?? this.startHost('solo');
      host.role = 'solo';
      if (host.state === 'ready') {
        this.send(host, p);
      } else {
        // Sent when the host is ready.
        p.host = host;
        host.calls.set(p.id, p);
      }
      this.ensureHosts();
    }
  }

  private ensureHosts(): void {
    if (this.closed) return;
    const live = (role: Host['role']) => this.hosts.filter((h) => h.role === role && h.state !== 'dead').length;
    while (live('shared') < this.opts.hosts) {
      // A started spare takes over at once; a new spare is started behind it.
      const spare = this.hosts.find((h) => h.role === 'spare' && h.state !== 'dead');
      if (spare) spare.role = 'shared';
      else this.startHost('shared');
    }
    if (this.opts.spare && live('spare') < 1) this.startHost('spare');
    // A spare that took over is ready already and says nothing more: hand it what waits.
    this.drainWaiting();
  }

  private startHost(role: Host['role']): Host {
    const hostOptions: HostOptions = {
      maxIsolatesPerTool: this.opts.maxIsolatesPerTool,
      memoryBudgetMb: this.opts.memoryBudgetMb,
      syncBudgetMs: this.opts.syncBudgetMs,
      maxResponseBytes: this.opts.maxResponseBytes,
      maxFetchesPerCall: this.opts.maxFetchesPerCall,
      idleTtlMs: this.opts.idleTtlMs,
      allowPrivateNetworks: this.opts.allowPrivateNetworks,
      maxCodeBytes: this.opts.hostCodeBytes,
    };
    const proc = spawn(process.execPath, ['--no-node-snapshot', HOST_MAIN, JSON.stringify(hostOptions)], {
      // fd 3: the batched channel; fd 4: the host's last words (which call's isolate went fatal).
      stdio: ['ignore', 'inherit', 'inherit', 'pipe', 'pipe'],
      env: this.opts.env,
    });
    const channel = proc.stdio[3] as Socket;
    const host: Host = {
      proc,
      send: batchedWriter((text) => {
        if (host.state !== 'dead') channel.write(text);
      }),
      state: 'starting',
      role,
      calls: new Map(),
      checks: new Map(),
      known: new Set(),
      lastBeat: performance.now(),
      startedAt: performance.now(),
      fatal: undefined,
    };
    const lastWords = proc.stdio[4] as Socket;
    lastWords.on(
      'data',
      lineReader((msg) => {
        const m = msg as { t?: string; id?: number; message?: string };
        if (m.t === 'fatal' && typeof m.id === 'number') host.fatal = { id: m.id, message: String(m.message) };
      }, 64 * 1024),
    );
    lastWords.on('error', () => {});
    const read = lineReader((msg) => this.onReply(host, msg as HostReply), MAX_REPLY_LINE_BYTES);
    channel.on('data', (chunk: Buffer) => {
      try {
        read(chunk);
      } catch (err: unknown) {
        this.log.error({ err }, 'sandbox host sent a malformed message');
        this.failHost(host, 'crash');
      }
    });
    channel.on('error', () => {});
    proc.on('error', (err) => {
      this.log.error({ err }, 'sandbox host could not start');
      this.failHost(host, 'crash');
    });
    proc.on('exit', (code, signal) => {
      if (host.state === 'dead') return;
      this.log.warn({ code, signal, calls: host.calls.size }, 'sandbox host exited');
      // Its last words may still be in the pipe: read them before deciding whose fault it was.
      const decide = () => {
        const culprit = host.fatal ? host.calls.get(host.fatal.id) : undefined;
        this.failHost(host, culprit ? 'fatal' : 'crash', culprit);
      };
      if (lastWords.readableEnded || lastWords.destroyed) return decide();
      const timer = setTimeout(decide, 200);
      lastWords.once('close', () => {
        clearTimeout(timer);
        decide();
      });
    });
    this.hosts.push(host);
    return host;
  }

  private onReply(host: Host, msg: HostReply): void {
    if (host.state === 'dead') return;
    host.lastBeat = performance.now();
    switch (msg.t) {
      case 'ready':
        host.state = 'ready';
        for (const p of host.calls.values()) this.send(host, p);
        if (host.role === 'shared') this.drainWaiting();
        if (host.role === 'spare') this.drainQuarantine();
        return;
      case 'beat':
        return;
      case 'wait': {
        const p = host.calls.get(msg.id);
        if (p) p.startedAt = 0;
        return;
      }
      case 'start': {
        const p = host.calls.get(msg.id);
        if (p) p.startedAt = performance.now();
        return;
      }
      case 'done': {
        const p = host.calls.get(msg.id);
        if (!p) return;
        if (msg.ok) {
          this.settle(p, undefined, { value: msg.value, logs: msg.logs, runMs: msg.runMs });
        } else {
          // The host never has the source map: a bundled tool's frames are mapped here, on failures only.
          const message = msg.stack && p.tool.sourceMap ? `${msg.message}\n${mapStack(msg.stack, p.tool.sourceMap)}` : msg.message;
          // A code from another process is checked like any other report (an unknown one is SANDBOX_ERROR).
          this.settle(p, Object.assign(toToolExecError({ code: msg.code, message }), { logs: msg.logs }));
        }
        if (host.role === 'solo') this.retireSolo(host);
        return;
      }
      case 'miss': {
        const p = host.calls.get(msg.id);
        if (!p) return;
        host.known.delete(p.tool.key);
        host.calls.delete(p.id);
        this.send(host, p);
        return;
      }
      case 'checked': {
        const c = host.checks.get(msg.id);
        if (!c) return;
        host.checks.delete(msg.id);
        c.resolve(msg.ok ? { ok: true } : { ok: false, message: msg.message });
        this.drainChecks();
        return;
      }
      case 'retryAfter':
        host.calls.get(msg.id)?.opts.onRetryAfter?.(msg.ms);
        return;
      case 'progress':
        host.calls.get(msg.id)?.opts.onProgress?.({ fraction: msg.fraction, message: msg.message, logs: msg.logs });
        return;
      case 'span': {
        const p = host.calls.get(msg.id);
        if (!p) return;
        // `p.trace` holds the call's `sandbox.run` span: the host's span becomes its child.
        const span = tracer.startSpan(msg.span.name, { kind: msg.span.kind, attributes: msg.span.attributes, startTime: msg.span.startTime }, p.trace);
        if (msg.span.status) span.setStatus(msg.span.status);
        span.end(msg.span.endTime);
        return;
      }
      case 'disposed':
        this.options.onDispose?.(msg.reason);
        return;
    }
  }

  /** A quarantine host that ended its call cleanly becomes the spare, or goes. */
  private retireSolo(host: Host): void {
    if (host.calls.size > 0) return;
    if (!this.closed && !this.hosts.some((h) => h.role === 'spare' && h.state !== 'dead')) {
      host.role = 'spare';
      this.drainQuarantine();
      return;
    }
    host.state = 'dead';
    this.hosts.splice(this.hosts.indexOf(host), 1);
    host.proc.kill('SIGTERM');
    this.drainQuarantine();
  }

  private drainWaiting(): void {
    while (this.waiting.length > 0) {
      const host = this.pickHost();
      if (!host) return;
      this.send(host, this.waiting.shift()!);
    }
  }

  private settle(p: Pending, err: ToolExecError | undefined, result?: RunResult): void {
    if (p.done) return;
    p.done = true;
    p.host?.calls.delete(p.id);
    p.host = undefined;
    if (p.onAbort) p.opts.signal?.removeEventListener('abort', p.onAbort);
    p.onAbort = undefined;
    if (err) p.reject(err);
    else p.resolve(result!);
  }

  private watch(): void {
    // A host replaced or started since: checks waiting for one go now.
    this.drainChecks();
    const now = performance.now();
    for (const host of [...this.hosts]) {
      if (host.state === 'dead') continue;
      if (host.state === 'starting') {
        if (now - host.startedAt > START_TIMEOUT_MS) this.failHost(host, 'crash');
        continue;
      }
      const late = [...host.calls.values()].find((p) => p.startedAt > 0 && now > p.startedAt + p.tool.timeoutMs + this.opts.graceMs);
      if (late) {
        this.failHost(host, 'deadline', late);
        continue;
      }
      if ([...host.checks.values()].some((c) => now > c.deadline)) {
        this.failHost(host, 'stall');
        continue;
      }
      // Idle or not: a host that stopped turning would hang the next call sent to it.
      if (now - host.lastBeat > this.opts.stallMs) {
        this.failHost(host, 'stall');
        continue;
      }
      if (this.residentMb(host) > this.opts.hostMemoryLimitMb) this.failHost(host, 'memory');
    }
  }

  private residentMb(host: Host): number {
    try {
      const statm = readFileSync(`/proc/${host.proc.pid}/statm`, 'latin1');
      return (Number(statm.split(' ')[1]) * PAGE_BYTES) / (1024 * 1024);
    } catch {
      return 0;
    }
  }

  /**
   * Kills a host and decides for each call it held: the culprit, when known, ends with the limit it
   * broke; the others run again, alone in a quarantine host when the culprit is not known.
   */
  private failHost(host: Host, reason: HostFailure, culprit?: Pending): void {
    if (host.state === 'dead') return;
    host.state = 'dead';
    this.hosts.splice(this.hosts.indexOf(host), 1);
    host.proc.kill('SIGKILL');
    this.options.onHostFailure?.(reason);
    const calls = [...host.calls.values()];
    host.calls.clear();
    this.log.warn({ reason, calls: calls.length, pid: host.proc.pid }, 'sandbox host killed');
    for (const c of host.checks.values()) {
      c.resolve({ ok: false, message: `tool code blocked its checker past ${this.opts.checkTimeoutMs}ms (top-level code must finish quickly)` });
    }
    const known = culprit ?? (calls.length === 1 && (host.role === 'solo' || reason !== 'crash') ? calls[0] : undefined);
    for (const p of calls) {
      p.host = undefined;
      if (p === known) {
        this.settle(p, this.blame(p, reason, host.fatal?.message));
      } else if (culprit) {
        this.dispatch(p);
      } else if (++p.strikes >= 2) {
        this.settle(p, fail('POISONED', `the call brought down ${p.strikes} sandbox hosts (${reason}); it is not run again`));
      } else {
        p.solo = true;
        this.dispatch(p);
      }
    }
    if (host.role === 'solo') this.drainQuarantine();
    this.ensureHosts();
  }

  private blame(p: Pending, reason: HostFailure, fatalMessage: string | undefined): ToolExecError {
    switch (reason) {
      case 'deadline':
        return fail('TIMEOUT', `tool exceeded ${p.tool.timeoutMs}ms and did not stop; its sandbox host was replaced`);
      case 'stall':
        return fail('TIMEOUT', `tool blocked its sandbox host for more than ${this.opts.stallMs}ms; the host was replaced`);
      case 'memory':
        return fail('OUT_OF_MEMORY', `tool took its sandbox host past ${this.opts.hostMemoryLimitMb} MB; the host was replaced`);
      case 'fatal':
        return /memory|heap|allocation/i.test(fatalMessage ?? '')
          ? fail('OUT_OF_MEMORY', 'the tool ran its isolate out of memory so far past its limit that the sandbox host went down; it was replaced')
          : fail('POISONED', 'the tool crashed its sandbox host; it is not run again');
      case 'crash':
        return p.strikes >= 1
          ? fail('POISONED', 'the call crashed its sandbox host twice; it is not run again')
          : fail('POISONED', 'the call crashed its sandbox host; it is not run again');
    }
  }
}

const tracer = trace.getTracer('@toolplane/sandbox');
