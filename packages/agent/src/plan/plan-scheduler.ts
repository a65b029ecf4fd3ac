import type { PlanStep, RunPlan } from '../types.js';
import { fillRefs } from './plan-refs.js';

/** What the scheduler needs from the run loop: the same submit and follow code ReAct steps use. */
export type PlanSchedulerDeps = {
  /** Enqueues the step with `arguments` (references filled in); sets its `callId`, or `failed` with the refusal. */
  submit(step: PlanStep, args: unknown): Promise<void>;
  /** Follows the step's call until it finishes, saving as its state changes. */
  settle(step: PlanStep): Promise<void>;
  /** Saves the plan after a step changed state outside `submit`/`settle` (filled in, skipped, failed). */
  changed(step: PlanStep): Promise<void>;
};

/** True for states a plan step never leaves. */
export function isStepDone(step: PlanStep): boolean {
  return step.status === 'succeeded' || step.status === 'failed' || step.status === 'cancelled' || step.status === 'skipped';
}

/**
 * Runs a checked plan: each step is enqueued the moment every step it references has succeeded
 * (not level by level), with the references filled in; a step whose reference failed or was skipped
 * is skipped; independent steps go on. Resumable: steps already enqueued are only followed, steps
 * filled in but not sent are sent again (the run loop's idempotency key makes that one call).
 * Throws what `submit`/`settle` throw (lease lost, abort, Redis down) once nothing else is starting.
 */
export async function runPlan(plan: RunPlan, deps: PlanSchedulerDeps): Promise<void> {
  const byId = new Map(plan.steps.map((s) => [s.id, s]));
  const inflight = new Map<string, Promise<void>>();
  let failure: { err: unknown } | undefined;

  const start = (step: PlanStep) => {
    const work = async () => {
      if (step.status === 'waiting') {
        const filled = fillRefs(step.arguments, (id) => byId.get(id)?.result);
        if (!filled.ok) {
          step.status = 'failed';
          step.error = { code: 'INVALID_ARGUMENTS', message: filled.problem };
          step.finishedAt = Date.now();
          return deps.changed(step);
        }
        step.resolvedArguments = filled.value;
        step.status = 'pending';
      }
      if (step.status === 'pending') await deps.submit(step, step.resolvedArguments);
      if (step.callId && !isStepDone(step)) await deps.settle(step);
    };
    inflight.set(
      step.id,
      work()
        .catch((err: unknown) => void (failure ??= { err }))
        .finally(() => inflight.delete(step.id)),
    );
  };

  for (;;) {
    if (failure) break;
    let skipped = false;
    for (const step of plan.steps) {
      if (inflight.has(step.id) || isStepDone(step)) continue;
      if (step.status !== 'waiting') {
        start(step); // resumed mid-flight
        continue;
      }
      const refs = step.dependsOn.map((id) => byId.get(id));
      const blocked = refs.find((r) => !r || (isStepDone(r) && r.status !== 'succeeded'));
      if (blocked) {
        step.status = 'skipped';
        step.skippedBecause = blocked
          ? `step '${blocked.id}' ${blocked.status === 'skipped' ? 'was skipped' : blocked.status}`
          : 'it references a step that is not in the plan';
        await deps.changed(step);
        skipped = true;
      } else if (refs.every((r) => r!.status === 'succeeded')) {
        start(step);
      }
    }
    if (skipped) continue; // a skip may block steps listed before it
    if (inflight.size === 0) break;
    await Promise.race(inflight.values());
  }
  // Steps still out end by themselves (their saves fail once the lease is gone, their waits on abort).
  if (failure) throw failure.err;
  // Only a cycle (which the checker refuses) could leave a step waiting; never leave one hanging.
  for (const step of plan.steps.filter((s) => s.status === 'waiting')) {
    step.status = 'skipped';
    step.skippedBecause = 'its references could never all succeed';
    await deps.changed(step);
  }
}

/** Fills in `concurrentWith` of each step and the plan's `maxParallel`, from the steps' start and end times. */
export function markConcurrency(plan: RunPlan): void {
  const timed = plan.steps.filter((s) => s.startedAt !== undefined && s.finishedAt !== undefined);
  for (const s of timed) {
    const overlapping = timed.filter((o) => o !== s && o.startedAt! < s.finishedAt! && s.startedAt! < o.finishedAt!).map((o) => o.id);
    if (overlapping.length) s.concurrentWith = overlapping;
    else delete s.concurrentWith;
  }
  // Sweep over start (+1) and end (-1) marks; an end sorts before a start at the same instant.
  const marks = timed.flatMap((s) => [[s.startedAt!, 1] as const, [s.finishedAt!, -1] as const]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let running = 0;
  let max = 0;
  for (const [, d] of marks) max = Math.max(max, (running += d));
  plan.maxParallel = max;
}
