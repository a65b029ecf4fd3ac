/** Runs `draw` every `everyMs` until `signal` aborts (the user left the page); one at a time, never overlapping. */
export function every(everyMs: number, draw: () => Promise<void>, signal: AbortSignal): void {
  const tick = async () => {
    if (signal.aborted) return;
    try {
      await draw();
    } catch {
      // The next tick tries again; a page shows its own errors on first load.
    }
    if (!signal.aborted) setTimeout(() => void tick(), everyMs);
  };
  setTimeout(() => void tick(), everyMs);
}
