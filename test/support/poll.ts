/** Polls `read` until `done` says so, or throws after `timeoutMs` with the last value. */
export async function pollUntil<T>(read: () => Promise<T>, done: (v: T) => boolean, timeoutMs = 20_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = await read();
  while (!done(last)) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs}ms; last value: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, everyMs));
    last = await read();
  }
  return last;
}

/**
 * Waits until the service answers `/readyz` with 200: `/healthz` only says the process listens,
 * and the planner's first requests get 503 while its Redis connection is still coming up.
 */
export async function waitReady(baseUrl: string, timeoutMs = 10_000): Promise<void> {
  await pollUntil(
    async () => (await fetch(`${baseUrl}/readyz`).catch(() => undefined))?.status,
    (status) => status === 200,
    timeoutMs,
  );
}
