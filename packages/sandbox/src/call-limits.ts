import type ivm from 'isolated-vm';
import type { ToolExecError } from '@toolplane/core';
import { fail } from './errors.js';
import type { DisposalReason } from './isolate-pool.js';

/** The limits of one running call, armed on its isolate. */
export type CallLimits = {
  /** Rejects with the limit's error when one trips; the isolate is disposed by then. */
  readonly limit: Promise<never>;
  /** The error of the limit that tripped, if one did: whatever failed after it, it is the reason. */
  readonly tripped: ToolExecError | undefined;
  /** Why the isolate was disposed, if a limit did it. */
  readonly disposal: DisposalReason | undefined;
  disarm(): void;
};

/** A call's limits and what it had used of them before they were armed. */
export type CallBudget = {
  timeoutMs: number;
  cpuMs: number;
  /** When the call started (`performance.now()`): the wall limit counts from here. */
  startedAt: number;
  /** The isolate's CPU time when the call started; needed only when `cpuMs < timeoutMs`. */
  cpuStart: bigint | undefined;
};

/**
 * Wall time, CPU time and cancellation for the rest of one call, enforced by the host: isolated-vm's
 * own timeout covers synchronous entries only, not awaited promises. Armed once a call outlives its
 * synchronous attempt, counting what it used since it started. When one trips, the isolate is
 * disposed, which ends whatever the call still runs there.
 */
export function armCallLimits(isolate: ivm.Isolate, budget: CallBudget, signal: AbortSignal | undefined): CallLimits {
  const { timeoutMs, cpuMs } = budget;
  const timers: NodeJS.Timeout[] = [];
  let tripped: ToolExecError | undefined;
  let disposal: DisposalReason | undefined;
  let onAbort: (() => void) | undefined;
  const limit = new Promise<never>((_, reject) => {
    const stop = (reason: DisposalReason, error: ToolExecError) => {
      if (disposal) return;
      disposal = reason;
      tripped = error;
      isolate.dispose();
      reject(error);
    };
    const wallLeft = Math.max(0, budget.startedAt + timeoutMs - performance.now());
    timers.push(setTimeout(() => stop('timeout', fail('TIMEOUT', `tool exceeded ${timeoutMs}ms`)), wallLeft));
    if (cpuMs < timeoutMs) {
      const cpuStart = budget.cpuStart ?? isolate.cpuTime;
      // CPU time never runs ahead of wall time, so the budget cannot be spent before `left` ms pass.
      const check = (): void => {
        if (isolate.isDisposed) return;
        const usedMs = Number(isolate.cpuTime - cpuStart) / 1e6;
        if (usedMs >= cpuMs) stop('timeout', fail('TIMEOUT', `tool exceeded its CPU time limit of ${cpuMs}ms`));
        else timers.push(setTimeout(check, Math.max(1, cpuMs - usedMs)));
      };
      check();
    }
    onAbort = () => stop('cancelled', fail('CANCELLED', 'call was cancelled'));
    signal?.addEventListener('abort', onAbort, { once: true });
    // Aborted while the call waited for an isolate: the event has fired already.
    if (signal?.aborted) onAbort();
  });
  // Nobody may be racing it when it trips after the call ended another way.
  limit.catch(() => {});
  return {
    limit,
    get tripped() {
      return tripped;
    },
    get disposal() {
      return disposal;
    },
    disarm() {
      for (const t of timers) clearTimeout(t);
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    },
  };
}
