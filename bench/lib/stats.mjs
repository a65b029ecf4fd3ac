// Small numeric helpers shared by the bench phases.

/** Rounds to `digits` decimals (results are read by people, not fed to more arithmetic). */
export function round(x, digits = 2) {
  if (x === null || x === undefined || !Number.isFinite(x)) return null;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** `{median, min, max, samples}` of repeat results; the median of an even count is the lower middle. */
export function summarize(samples, digits = 2) {
  const s = samples.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return { median: null, min: null, max: null, samples: [] };
  return {
    median: round(s[Math.floor((s.length - 1) / 2)], digits),
    min: round(s[0], digits),
    max: round(s.at(-1), digits),
    samples: samples.map((x) => round(x, digits)),
  };
}

/** Nearest-rank percentile of unsorted values. */
export function percentile(values, p) {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return null;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

/** `{median, min, max}` of each of `keys` across per-repeat objects, e.g. p50/p95/p99. */
export function summarizeKeys(perRepeat, keys, digits = 2) {
  return Object.fromEntries(keys.map((k) => [k, summarize(perRepeat.map((r) => r[k]), digits)]));
}
