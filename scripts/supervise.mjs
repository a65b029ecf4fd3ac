// Supervision of `make up`'s workers, as Kubernetes' liveness probe does it in a cluster: probe each
// worker's /healthz every second, SIGKILL one that has not answered 200 for 5 s (its event loop is
// blocked or keeps lagging: see createLagMonitor in packages/core), and start a new one whenever one
// exits without being asked to. The calls a killed worker held are not lost: another worker takes
// them over when their locks expire.

/** Timings of {@link Supervisor}; tests shorten them. */
export const SUPERVISE_DEFAULTS = Object.freeze({
  /** How often /healthz is asked. */
  probeEveryMs: 1_000,
  /** A probe not answered within this counts as no answer. */
  probeTimeoutMs: 1_000,
  /** No 200 from /healthz for this long: SIGKILL. */
  unresponsiveMs: 5_000,
  /** A new process gets this long to answer 200 for the first time (loading code, connecting to Redis). */
  startupGraceMs: 30_000,
  /** Longest wait before restarting a process that keeps dying before it ever gets healthy. */
  maxBackoffMs: 30_000,
});

/**
 * Wait before restarting after the `crashes`-th exit in a row without a healthy answer in between:
 * at once the first time, then 1 s, 2 s, 4 s … up to `maxBackoffMs`, so a worker that cannot start
 * (a bad config exits with 2) does not spin.
 */
export function respawnDelayMs(crashes, opts = SUPERVISE_DEFAULTS) {
  return crashes <= 1 ? 0 : Math.min(opts.maxBackoffMs, 1_000 * 2 ** (crashes - 2));
}

/**
 * What to do about one supervised process now: `'wait'`, `'kill'` (SIGKILL it; its exit leads to a
 * respawn) or `'respawn'` (it exited and its backoff is over).
 *
 * @param {{ now: number, startedAt: number, lastHealthyAt?: number, killedAt?: number, exitedAt?: number, crashes: number }} s
 *   times in ms of one clock; `lastHealthyAt` is the last 200 from /healthz of this process,
 *   `crashes` the exits in a row without a healthy answer in between (this one included).
 * @returns {'wait' | 'kill' | 'respawn'}
 */
export function decide(s, opts = SUPERVISE_DEFAULTS) {
  if (s.exitedAt !== undefined) return s.now - s.exitedAt >= respawnDelayMs(s.crashes, opts) ? 'respawn' : 'wait';
  if (s.killedAt !== undefined) return 'wait';
  if (s.lastHealthyAt === undefined) return s.now - s.startedAt > opts.startupGraceMs ? 'kill' : 'wait';
  return s.now - s.lastHealthyAt > opts.unresponsiveMs ? 'kill' : 'wait';
}

/**
 * Keeps one process alive and responsive. `spawn()` starts it and returns its ChildProcess;
 * `onSpawn(child)` is told of every new one (to record its pid); `log(message)` says what was done.
 */
export class Supervisor {
  #stopped = false;
  #timer;
  #probing = false;
  #state;
  child;

  constructor({ name, spawn, healthUrl, log, onSpawn = () => {}, now = () => performance.now(), ...timings }) {
    this.name = name;
    this.spawn = spawn;
    this.healthUrl = healthUrl;
    this.log = log;
    this.onSpawn = onSpawn;
    this.now = now;
    this.opts = { ...SUPERVISE_DEFAULTS, ...timings };
  }

  /** Starts the process and the probes. */
  start() {
    this.#launch(0);
    this.#timer = setInterval(() => this.#tick(), this.opts.probeEveryMs);
    return this;
  }

  /** Stops supervising: exits from now on are expected. The caller stops the process itself. */
  stop() {
    this.#stopped = true;
    clearInterval(this.#timer);
  }

  #launch(crashes) {
    const child = this.spawn();
    const state = { startedAt: this.now(), crashes };
    this.child = child;
    this.#state = state;
    child.once('exit', (code, signal) => {
      if (this.#stopped || this.#state !== state) return;
      state.exitedAt = this.now();
      state.crashes = (state.lastHealthyAt === undefined ? crashes : 0) + 1;
      const delay = respawnDelayMs(state.crashes, this.opts);
      this.log(`${this.name} (pid ${child.pid}) exited (${code ?? signal}): starting a new one${delay ? ` in ${delay / 1000} s` : ''}`);
      this.#tick();
    });
    this.onSpawn(child);
  }

  #tick() {
    if (this.#stopped) return;
    const state = this.#state;
    switch (decide({ ...state, now: this.now() }, this.opts)) {
      case 'respawn':
        this.#launch(state.crashes);
        this.log(`${this.name} restarted (pid ${this.child.pid})`);
        return;
      case 'kill': {
        state.killedAt = this.now();
        const silentMs = Math.round(state.killedAt - (state.lastHealthyAt ?? state.startedAt));
        this.log(`${this.name} (pid ${this.child.pid}) has not answered /healthz for ${(silentMs / 1000).toFixed(1)} s: SIGKILL`);
        this.child.kill('SIGKILL');
        return;
      }
      case 'wait':
        if (state.exitedAt === undefined && state.killedAt === undefined) void this.#probe(state);
    }
  }

  async #probe(state) {
    if (this.#probing) return;
    this.#probing = true;
    try {
      const res = await fetch(this.healthUrl, { signal: AbortSignal.timeout(this.opts.probeTimeoutMs) });
      await res.body?.cancel();
      if (res.ok) state.lastHealthyAt = this.now();
    } catch {
      // not listening, refused, or too slow: no answer
    } finally {
      this.#probing = false;
    }
  }
}
