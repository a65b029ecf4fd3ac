import { describe, expect, test } from 'vitest';
import type { PlanStep, RunPlan } from '../types.js';
import { markConcurrency, runPlan } from './plan-scheduler.js';

const step = (id: string, dependsOn: string[], args: unknown = {}): PlanStep => ({ id, tool: 't', arguments: args, dependsOn, status: 'waiting' });

/** Runs a plan against fake calls: each step takes `ms[id]` and fails when listed in `failing`. */
async function simulate(plan: RunPlan, ms: Record<string, number>, failing: string[] = []) {
  const log: string[] = [];
  await runPlan(plan, {
    submit: async (s, args) => {
      log.push(`start ${s.id} ${JSON.stringify(args)}`);
      s.callId = `call-${s.id}`;
      s.status = 'queued';
      s.startedAt = Date.now();
    },
    settle: async (s) => {
      await new Promise((r) => setTimeout(r, ms[s.id] ?? 10));
      s.finishedAt = Date.now();
      if (failing.includes(s.id)) {
        s.status = 'failed';
        s.error = { code: 'TOOL_ERROR', message: 'boom' };
      } else {
        s.status = 'succeeded';
        s.result = { v: s.id };
      }
    },
    changed: async () => {},
  });
  return log;
}

describe('plan scheduler', () => {
  test('starts a step as soon as its own references succeeded, not when its level finished', async () => {
    // s1 (fast) → s3; s2 (slow) is independent. s3 must start long before s2 ends.
    const plan: RunPlan = { status: 'running', steps: [step('s1', []), step('s2', []), step('s3', ['s1'], { x: { $ref: 's1', path: 'v' } })] };
    const log = await simulate(plan, { s1: 50, s2: 400, s3: 50 });
    expect(log).toEqual(['start s1 {}', 'start s2 {}', 'start s3 {"x":"s1"}']);
    expect(plan.steps.map((s) => s.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    const [s1, s2, s3] = plan.steps;
    expect(s3!.startedAt).toBeGreaterThanOrEqual(s1!.finishedAt!);
    expect(s3!.startedAt).toBeLessThan(s2!.finishedAt!);
    markConcurrency(plan);
    expect(plan.maxParallel).toBe(2);
    expect(plan.steps[1]!.concurrentWith).toEqual(['s1', 's3']);
  });

  test('a failed step skips what depends on it, transitively, and independent steps finish', async () => {
    const plan: RunPlan = {
      status: 'running',
      // Listed before what they depend on, so a skip must unblock an earlier step in a later pass.
      steps: [step('s4', ['s3']), step('s3', ['s2']), step('s2', []), step('s1', [])],
    };
    await simulate(plan, {}, ['s2']);
    expect(Object.fromEntries(plan.steps.map((s) => [s.id, [s.status, s.skippedBecause]]))).toEqual({
      s1: ['succeeded', undefined],
      s2: ['failed', undefined],
      s3: ['skipped', "step 's2' failed"],
      s4: ['skipped', "step 's3' was skipped"],
    });
  });

  test('a resumed plan follows calls already out and sends nothing twice', async () => {
    const s1: PlanStep = { ...step('s1', []), status: 'running', callId: 'call-s1' };
    const plan: RunPlan = { status: 'running', steps: [s1, step('s2', ['s1'])] };
    const log = await simulate(plan, {});
    expect(log).toEqual(['start s2 {}']);
    expect(plan.steps.every((s) => s.status === 'succeeded')).toBe(true);
  });
});
