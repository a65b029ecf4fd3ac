/**
 * Watches `/healthz` of several services while something hostile runs: each is asked every
 * `everyMs`, and any answer slower than `limitMs` (or missing, or not 200) is recorded.
 */
export type HealthWatch = {
  /** Stops watching; resolves with every slow or failed probe, `[]` when all answered in time. */
  stop(): Promise<string[]>;
};

export function watchHealth(urls: string[], limitMs = 1_000, everyMs = 100): HealthWatch {
  const problems: string[] = [];
  let running = true;
  const probe = async (url: string) => {
    while (running) {
      const started = performance.now();
      try {
        const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(limitMs) });
        await res.arrayBuffer();
        const tookMs = performance.now() - started;
        if (res.status !== 200) problems.push(`${url}/healthz answered ${res.status}`);
        else if (tookMs > limitMs) problems.push(`${url}/healthz took ${Math.round(tookMs)} ms`);
      } catch (err: unknown) {
        problems.push(`${url}/healthz failed after ${Math.round(performance.now() - started)} ms: ${(err as Error).name}`);
      }
      await new Promise((r) => setTimeout(r, everyMs));
    }
  };
  const loops = urls.map((u) => probe(u));
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      return problems;
    },
  };
}
