import { isFinished, type CallRecord } from '@toolplane/core';
import { CallWaiter, type Wait } from '@toolplane/queue';
import type { PlannerDeps } from './deps.js';

/**
 * Resolves with the call once it has finished, or as it stands when `waitMs` passes or `signal`
 * aborts. The waiter is registered before the state is read, so a finish announced in between is
 * not missed.
 */
export async function waitForCallDone(
  deps: Pick<PlannerDeps, 'waiter' | 'calls'>,
  id: string,
  waitMs: number,
  signal: AbortSignal,
  /**
   * A wait registered before the call was enqueued: it cannot miss the finish, so the first read of
   * the call's state is skipped (one round trip less for `wait` requests).
   */
  registeredEarly?: Wait,
  /** The call's tool when the caller enqueued it itself: saves looking it up by id on each read. */
  tool?: string,
): Promise<CallRecord | undefined> {
  const deadline = Date.now() + waitMs;
  if (registeredEarly) {
    if (!(await registeredEarly.done)) return deps.calls.reads.get(id, tool);
    // The worker announced the finished call with its record: nothing left to read.
    const told = CallWaiter.recordOf(registeredEarly);
    if (told) return told;
  }
  for (;;) {
    const w = deps.waiter.wait(id, Math.max(1, deadline - Date.now()), signal);
    const record = await deps.calls.reads.get(id, tool);
    if (!record || isFinished(record.status) || Date.now() >= deadline || signal.aborted) {
      w.cancel();
      return record;
    }
    if (!(await w.done)) return deps.calls.reads.get(id, tool);
    const told = CallWaiter.recordOf(w);
    if (told) return told;
  }
}
