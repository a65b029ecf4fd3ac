import { EventEmitter } from 'node:events';
import CircuitBreaker from 'opossum';
import { toPublicFailure, type Logger, type Tool } from '@toolplane/core';
import type { RedisConnection } from './connection.js';
import type { Admission } from './gate.js';
import type { Keys } from './keys.js';
import { LuaScript } from './lua-script.js';

/*
 * A tool's circuit breaker, the one place that decides it: its states, what counts as a failure,
 * when it trips and what a half-open trial's outcome does. The state is fleet-wide, in Redis under
 * the tool's hash tag; the failure rate is measured per worker process with opossum.
 *
 *   closed ──(this process's rolling error rate passes the threshold)──▶ open
 *   open ──(resetTimeoutMs passed: the `open` key expired)──▶ half-open
 *   half-open ──(the fleet's one trial call)──▶ closed on success, open again on a failure that counts
 *
 * Keys: `open` (PX = rest of the open period) and `tripped` are both set while open; `tripped`
 * alone is half-open; `trial` is the token of the fleet's one trial call (PX = its longest run).
 */

/** Fleet-wide state of a tool's breaker. */
export type BreakerState = 'closed' | 'half_open' | 'open';

/** How the gate let a call through: `run` while the breaker is closed, `trial` as the fleet's one half-open trial. */
export type BreakerPass = 'run' | 'trial';

/**
 * The breaker's step of the gate's script (`gate.ts` runs it as part of its one script per batch,
 * which reads the `open` and `tripped` values in its one MGET). `breaker.wait()` comes before every
 * other check: an open breaker holds every call back. `breaker.pass(member)` comes after all of
 * them: while half-open, the first call of the fleet to get there takes the one trial.
 */
export const BREAKER_GATE_LUA = `
local breaker = {}
function breaker.load(openKey, trippedKey, trialKey, trialTtlMs, openValue, trippedValue)
  breaker.trialKey, breaker.trialTtlMs = trialKey, trialTtlMs
  breaker.openMs = 0
  if openValue then breaker.openMs = redis.call('PTTL', openKey) end
  breaker.tripped = trippedValue ~= false
  breaker.trialAsked = false
end
function breaker.wait()
  if breaker.openMs > 0 then return breaker.openMs end
  return 0
end
function breaker.pass(member)
  if not breaker.tripped then return 'run', 0 end
  local first = not breaker.trialAsked
  breaker.trialAsked = true
  if first and redis.call('SET', breaker.trialKey, member, 'NX', 'PX', breaker.trialTtlMs) then return 'trial', 0 end
  -- The trial usually ends long before its token expires: look again soon.
  return 'busy_trial', math.min(math.max(redis.call('PTTL', breaker.trialKey), 50), 250)
end
`;

/** The keys {@link BREAKER_GATE_LUA} loads, in its order: open, tripped, trial. */
export function breakerGateKeys(keys: Keys, tool: string): [string, string, string] {
  return [keys.breakerOpen(tool), keys.breakerTripped(tool), keys.breakerTrial(tool)];
}

/** How long a trial holds its token: past its longest run, so a trial whose worker died frees it. */
export function trialTokenTtlMs(tool: Tool): number {
  return tool.limits.timeoutMs + 5_000;
}

/**
 * Whether a failure counts against its tool's health: what is worth another attempt (a timeout, the
 * tool's own error, the platform failing) does, and so does a poison call (it brought down sandbox
 * hosts or workers), though it is never retried. Bad input, oversized results, cancellations and
 * deadlines say nothing about the tool. Retryability comes from the one table of `@toolplane/core`.
 */
export function countsAgainstTool(err: unknown): boolean {
  const { code, retryable } = toPublicFailure(err);
  return retryable || code === 'POISONED';
}

/** The breaker state a gate verdict shows, or `undefined` for a verdict that does not show it. */
export function stateShownBy(verdict: Admission['verdict']): BreakerState | undefined {
  switch (verdict) {
    case 'run':
      return 'closed';
    case 'trial':
    case 'busy_trial':
      return 'half_open';
    case 'open':
      return 'open';
    case 'cancelled':
    case 'hold':
    case 'tool_limit':
    case 'tenant_limit':
      return undefined;
  }
}

/**
 * Thrown by {@link ToolBreakers.run} when the call was the half-open trial and failed in a way worth
 * another attempt: the breaker is open again, and the call waits out the new open period
 * (`waitMs`) like every call held by it, without using up an attempt. `cause` is the run's failure.
 */
export class TrialFailedError extends Error {
  constructor(
    readonly waitMs: number,
    cause: unknown,
  ) {
    super('half-open trial failed, breaker open again', { cause });
    this.name = 'TrialFailedError';
  }
}

/** How long the `tripped` marker lasts: far past any open period, so half-open is never forgotten early. */
const TRIPPED_TTL_MS = 86_400_000;
/** Opossum's rolling window: 10 buckets of one second. */
const ROLLING_WINDOW_MS = 10_000;
const ROLLING_BUCKETS = 10;

/*
 * open-3: KEYS[1] open, KEYS[2] tripped, KEYS[3] trial; ARGV[1] open ms, ARGV[2] tripped ms,
 * ARGV[3] '1' = only from closed (a tripping error rate), '0' = in any state (a failed trial).
 * Returns 1 when it opened the breaker. A tripping error rate while already open or half-open (calls
 * that were running when it tripped, failing late) changes nothing: the trial decides.
 */
const OPEN = new LuaScript(`
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
redis.call('DEL', KEYS[3])
return 1
`);

/** The fleet-wide state of a tool's breaker (two reads; the API's and console's view). */
export async function readBreakerState(redis: RedisConnection, keys: Keys, tool: string): Promise<BreakerState> {
  const [open, tripped] = await Promise.all([redis.pttl(keys.breakerOpen(tool)), redis.exists(keys.breakerTripped(tool))]);
  if (open > 0) return 'open';
  return tripped ? 'half_open' : 'closed';
}

export type ToolBreakersOptions = {
  logger: Logger;
  /** Told the breaker state of a tool each time a call shows it (the `toolplane_circuit_state` gauge). */
  onState?: (tool: string, state: BreakerState) => void;
};

type Breaker = CircuitBreaker<[() => Promise<unknown>], unknown>;

/**
 * The circuit breakers of the tools a worker process runs. The processor asks the gate
 * (`CallGate.admit`, which runs {@link BREAKER_GATE_LUA}), tells this what the gate said
 * ({@link noteAdmission}), and runs the call through {@link run}, which counts its outcome and, for
 * a trial, settles the breaker fleet-wide.
 *
 * One opossum breaker per tool version measures this process's rolling error rate (a new version
 * starts afresh); when it passes the tool's threshold the breaker opens fleet-wide, and the opossum
 * breaker is closed again at once: admission is decided by the shared state, so every replica
 * agrees and only one trial call runs while half-open.
 */
export class ToolBreakers {
  private readonly breakers = new Map<string, Breaker>();
  /** Opens in flight, so the failure that tripped a breaker returns once the fleet sees it open. */
  private readonly opening = new Map<string, Promise<void>>();
  /** One timer turns every breaker's rolling window, instead of two timers per breaker. */
  private readonly rotation = new EventEmitter();
  private rotationTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: Keys,
    private readonly options: ToolBreakersOptions,
  ) {
    this.rotation.setMaxListeners(0);
  }

  /** Reports the breaker state a gate verdict shows (`run`, `trial`, `busy_trial`, `open`); other verdicts say nothing of it. */
  noteAdmission(tool: string, verdict: Admission['verdict']): void {
    const state = stateShownBy(verdict);
    if (state) this.options.onState?.(tool, state);
  }

  /**
   * Runs a call the gate let through. Its failure counts against the tool if
   * {@link countsAgainstTool}; a trial's outcome closes the breaker fleet-wide (success), opens it
   * again (a failure that counts) or gives the trial back (a failure that does not). Resolves or
   * rejects as `fn` does, except a failed trial worth another attempt: {@link TrialFailedError}.
   */
  async run<T>(tool: Tool, pass: BreakerPass, fn: () => Promise<T>): Promise<T> {
    let value: T;
    try {
      value = (await this.get(tool).fire(fn)) as T;
    } catch (err: unknown) {
      await this.opening.get(tool.name);
      if (pass === 'trial') await this.settleFailedTrial(tool, err);
      throw err;
    }
    if (pass === 'trial') await this.redis.del(...breakerGateKeys(this.keys, tool.name));
    return value;
  }

  /** The call was answered without running the tool (the result cache): a trial says nothing, and is given back. */
  async notRun(tool: Tool, pass: BreakerPass): Promise<void> {
    if (pass === 'trial') await this.redis.del(this.keys.breakerTrial(tool.name));
  }

  /** Counts a failure of a call that ended outside {@link run} (BullMQ failed it after it stalled twice: `POISONED`). */
  async recordFailure(tool: Tool, err: unknown): Promise<void> {
    await this.get(tool).fire(() => Promise.reject(err)).catch(() => {});
    await this.opening.get(tool.name);
  }

  /** Drops what this process measured of a deleted tool. */
  forget(tool: string): void {
    for (const [key, breaker] of this.breakers) {
      if (key.startsWith(`${tool}@`)) {
        breaker.shutdown();
        this.breakers.delete(key);
      }
    }
    if (this.breakers.size === 0) this.stopRotation();
  }

  shutdown(): void {
    for (const breaker of this.breakers.values()) breaker.shutdown();
    this.breakers.clear();
    this.stopRotation();
  }

  private async settleFailedTrial(tool: Tool, err: unknown): Promise<void> {
    if (!countsAgainstTool(err)) {
      await this.notRun(tool, 'trial');
      return;
    }
    await this.open(tool, false);
    this.options.logger.info({ tool: tool.name }, 'half-open trial failed, breaker open again');
    // A poison call is never run again: it fails as it is; any other waits for the next trial.
    if (toPublicFailure(err).retryable) throw new TrialFailedError(tool.breaker.resetTimeoutMs, err);
  }

  /** Opens the breaker fleet-wide for `resetTimeoutMs`; `fromClosedOnly` for a tripping error rate. */
  private async open(tool: Tool, fromClosedOnly: boolean): Promise<void> {
    const opened = await OPEN.run(this.redis, breakerGateKeys(this.keys, tool.name), [tool.breaker.resetTimeoutMs, TRIPPED_TTL_MS, fromClosedOnly ? '1' : '0']);
    if (opened === 1) this.options.onState?.(tool.name, 'open');
  }

  private trip(tool: Tool): void {
    this.options.logger.warn({ tool: tool.name }, 'circuit breaker tripped');
    const opening = this.open(tool, true)
      .catch((err: unknown) => this.options.logger.warn({ err, tool: tool.name }, 'could not open breaker fleet-wide'))
      .finally(() => {
        if (this.opening.get(tool.name) === opening) this.opening.delete(tool.name);
      });
    this.opening.set(tool.name, opening);
  }

  private get(tool: Tool): Breaker {
    const key = `${tool.name}@${tool.version}`;
    const existing = this.breakers.get(key);
    if (existing) return existing;
    // Another version's measurements say nothing of this one.
    this.forget(tool.name);
    const breaker: Breaker = new CircuitBreaker((fn: () => Promise<unknown>) => fn(), {
      timeout: false,
      errorThresholdPercentage: tool.breaker.errorThresholdPercentage,
      volumeThreshold: tool.breaker.volumeThreshold,
      resetTimeout: tool.breaker.resetTimeoutMs,
      rollingCountTimeout: ROLLING_WINDOW_MS,
      rollingCountBuckets: ROLLING_BUCKETS,
      // Only the counts are read: no latency percentiles sorted on every failure, no snapshots.
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
      rotateBucketController: this.startRotation(),
      errorFilter: (err: unknown) => !countsAgainstTool(err),
    });
    breaker.on('open', () => {
      this.trip(tool);
      breaker.close();
    });
    this.breakers.set(key, breaker);
    return breaker;
  }

  private startRotation(): EventEmitter {
    if (!this.rotationTimer) {
      this.rotationTimer = setInterval(() => this.rotation.emit('rotate'), ROLLING_WINDOW_MS / ROLLING_BUCKETS);
      this.rotationTimer.unref();
    }
    return this.rotation;
  }

  private stopRotation(): void {
    clearInterval(this.rotationTimer);
    this.rotationTimer = undefined;
  }
}
