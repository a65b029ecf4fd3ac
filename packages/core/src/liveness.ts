/**
 * Liveness from event-loop lag: how late a repeating timer fires. A process whose loop was blocked
 * (a runaway synchronous loop, a huge `JSON.parse`, a native call that never yields) answers nothing
 * while it is blocked, and one that keeps getting blocked answers only in the gaps; both should fail
 * their liveness probe so the orchestrator (Kubernetes, `make up`) kills and replaces them.
 */

/** Lag above which a process counts as unresponsive: DESIGN.md's "no process stops answering for more than a second". */
export const DEFAULT_MAX_LAG_MS = 1_000;
/**
 * How long one lag above the limit keeps the process unhealthy. Shorter than a probe period times
 * its failure threshold (Kubernetes: 2 s × 3), so a single hiccup never restarts a process, while one
 * that is blocked again and again stays unhealthy between the blocks.
 */
export const DEFAULT_LAG_WINDOW_MS = 2_000;

/** Options of {@link createLagMonitor}. */
export type LagMonitorOptions = {
  /**
   * Lag (ms a timer fires late) above which the process is unhealthy.
   * @default {@link DEFAULT_MAX_LAG_MS}
   */
  maxLagMs?: number;
  /**
   * How long the process stays unhealthy after such a lag.
   * @default {@link DEFAULT_LAG_WINDOW_MS}
   */
  windowMs?: number;
  /**
   * How often the timer ticks; the lag is measured to about this precision.
   * @default 100
   */
  intervalMs?: number;
  /**
   * A monotonic clock in ms, for tests.
   * @default performance.now
   */
  now?: () => number;
};

/** What {@link LagMonitor.check} reports. */
export type LagStatus = {
  healthy: boolean;
  /** The largest lag seen within the window (or the current one, while the timer is overdue), in ms. */
  lagMs: number;
};

/** Watches the event loop of the process it runs in; see {@link createLagMonitor}. */
export type LagMonitor = {
  check(): LagStatus;
  /** Stops the timer (it never keeps a process alive anyway). */
  stop(): void;
  /** Takes one measurement now; the timer calls it, tests may too. */
  tick(): void;
};

/**
 * Starts measuring event-loop lag with an unref'd interval timer. `check()` is unhealthy while a lag
 * above `maxLagMs` was seen within the last `windowMs`, or while the timer is overdue by more than
 * `maxLagMs` right now (the request that asks came in just after a block, before the timer ran).
 *
 * @example
 * ```ts
 * const liveness = createLagMonitor();
 * app.get('/healthz', (_req, res) => res.status(liveness.check().healthy ? 200 : 503).end());
 * ```
 */
export function createLagMonitor(opts: LagMonitorOptions = {}): LagMonitor {
  const maxLagMs = opts.maxLagMs ?? DEFAULT_MAX_LAG_MS;
  const windowMs = opts.windowMs ?? DEFAULT_LAG_WINDOW_MS;
  const intervalMs = opts.intervalMs ?? 100;
  const now = opts.now ?? (() => performance.now());
  let last = now();
  /** Recent lags above the limit: [when measured, lag]. */
  let bad: Array<[number, number]> = [];

  const tick = () => {
    const t = now();
    const lag = Math.max(0, t - last - intervalMs);
    last = t;
    bad = bad.filter(([at]) => t - at <= windowMs);
    if (lag > maxLagMs) bad.push([t, lag]);
  };
  const timer = setInterval(tick, intervalMs);
  timer.unref();

  return {
    check() {
      const t = now();
      const overdue = Math.max(0, t - last - intervalMs);
      const recent = bad.filter(([at]) => t - at <= windowMs).map(([, lag]) => lag);
      const lagMs = Math.round(Math.max(overdue, ...recent, 0));
      return { healthy: overdue <= maxLagMs && recent.length === 0, lagMs };
    },
    stop: () => clearInterval(timer),
    tick,
  };
}
