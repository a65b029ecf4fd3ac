import { isFinished, type CallRecord } from '@toolplane/core';
import type { PlannerDeps } from './deps.js';

/**
 * Resolves with the call once it has finished, or as it stands when `waitMs` passes or `signal`
 * aborts. The waiter is registered before the state is read, so a finish announced in between is
 * not missed.
 */
export async function waitForCallDone(
  deps: Pick<PlannerDeps, 'waiter' | 'queues'>,
  id: string,
  waitMs: number,
  signal: AbortSignal,
): Promise<CallRecord | undefined> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const w = deps.waiter.wait(id, Math.max(1, deadline - Date.now()), signal);
    const record = await deps.queues.get(id);
    if (!record || isFinished(record.status) || Date.now() >= deadline || signal.aborted) {
      w.cancel();
      return record;
    }
    if (!(await w.done)) return deps.queues.get(id);
  }
}
