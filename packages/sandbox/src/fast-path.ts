/**
 * A tool that overran the sync budget twice in a row tries the fast path again after 1 s, then 2 s,
 * 4 s… up to a minute while it keeps overrunning: a truly slow tool wastes at most one budget per
 * minute.
 */
const SLOW_BASE_MS = 1_000;
const SLOW_MAX_MS = 60_000;

/**
 * Decides per tool version whether a call starts on the synchronous fast path (entries into a
 * locked isolate on the host thread, no thread hops) or on isolated-vm's threads.
 *
 * A tool that overran the budget goes to threads for a while, not for good: the budget is wall
 * time, so a process that was merely descheduled or paused for GC on a busy machine overruns too,
 * and a fast tool stuck on threads costs several times the CPU per call (measured by `make bench`).
 * Only an overrun the tool burned itself (thread CPU at least half the budget) counts.
 */
export class FastPath {
  /** Until this `performance.now()` time, calls go to threads straight away. */
  private slowUntil = 0;
  /**
   * Overruns in a row. The first changes nothing: one call among fast ones that overran was a pause
   * (the isolate's own garbage collection, a cold isolate), not a slow tool, and holding a fast tool
   * on threads for a second cost it several times the CPU per call (`make bench` saw a trivial tool
   * spend two thirds of its calls on threads, one isolate GC every ~2,000 calls). From the second on,
   * each doubles how long the tool stays on threads, up to {@link SLOW_MAX_MS}.
   */
  private overruns = 0;

  constructor(private readonly budgetMs: number) {}

  /** Whether the next call should try the synchronous path. */
  useSync(): boolean {
    return this.budgetMs > 0 && performance.now() >= this.slowUntil;
  }

  /** The synchronous attempt ran out of budget after burning `cpuMs` of this thread; the hold, if any. */
  overran(cpuMs: number): number | undefined {
    if (cpuMs < this.budgetMs / 2) return undefined;
    this.overruns++;
    if (this.overruns < 2) return undefined;
    const holdMs = Math.min(SLOW_MAX_MS, SLOW_BASE_MS * 2 ** (this.overruns - 2));
    this.slowUntil = performance.now() + holdMs;
    return holdMs;
  }

  succeeded(): void {
    this.overruns = 0;
  }
}
