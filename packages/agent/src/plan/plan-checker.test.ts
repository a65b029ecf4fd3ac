import { describe, expect, test } from 'vitest';
import type { ArgumentIssue } from '../tool-gateway.js';
import { checkPlan, type PlanCheckContext } from './plan-checker.js';
import { fillRefs, findRefs } from './plan-refs.js';

const NUM = { type: 'object', properties: { a: { type: 'number' }, b: { type: 'number' } }, required: ['a', 'b'], additionalProperties: false };
/** A tiny stand-in for Ajv: type and required checks of the NUM schema. */
async function checkNum(_tool: string, args: unknown): Promise<ArgumentIssue[]> {
  const issues: ArgumentIssue[] = [];
  const o = args as Record<string, unknown>;
  for (const k of ['a', 'b']) {
    if (!(k in o)) issues.push({ path: '', keyword: 'required', message: `must have required property '${k}'` });
    else if (typeof o[k] !== 'number') issues.push({ path: `/${k}`, keyword: 'type', message: 'must be number' });
  }
  for (const k of Object.keys(o)) if (k !== 'a' && k !== 'b') issues.push({ path: '', keyword: 'additionalProperties', message: 'must NOT have additional properties' });
  return issues;
}
const ctx: PlanCheckContext = {
  tools: [{ name: 'add', description: 'adds', parameters: NUM }],
  unavailable: [{ name: 'mul', availability: 'UNAVAILABLE', reason: 'its circuit breaker is open' }],
  maxSteps: 5,
  checkArguments: checkNum,
};
const step = (id: string, args: Record<string, unknown>, tool = 'add') => ({ id, tool, arguments: args });

describe('plan checker', () => {
  test('accepts a graph and records each step dependencies', async () => {
    const r = await checkPlan({ steps: [step('s1', { a: 1, b: 2 }), step('s2', { a: 3, b: 4 }), step('s3', { a: { $ref: 's1' }, b: { $ref: 's2', path: 'x' } })] }, ctx);
    expect(r.ok).toBe(true);
    expect(r.steps.map((s) => s.dependsOn)).toEqual([[], [], ['s1', 's2']]);
  });

  test.each([
    ['a cycle', [step('s1', { a: { $ref: 's2' }, b: 1 }), step('s2', { a: { $ref: 's1' }, b: 1 })], /'s1' → 's2' → 's1' form a cycle/],
    ['a self reference', [step('s1', { a: { $ref: 's1' }, b: 1 })], /references itself/],
    ['a missing step', [step('s1', { a: { $ref: 's9' }, b: 1 })], /references step 's9', which is not in the plan/],
    ['an unknown tool', [step('s1', { a: 1, b: 2 }, 'pow')], /no tool named 'pow'/],
    ['an unavailable tool', [step('s1', { a: 1, b: 2 }, 'mul')], /'mul' is not available now \(unavailable: its circuit breaker is open\)/],
    ['duplicate ids', [step('s1', { a: 1, b: 2 }), step('s1', { a: 1, b: 2 })], /used twice/],
    ['too many steps', Array.from({ length: 6 }, (_, i) => step(`s${i}`, { a: 1, b: 2 })), /6 steps, but the run's budget allows at most 5/],
    ['a malformed reference', [step('s0', { a: 1, b: 2 }), step('s1', { a: { $ref: 's0', extra: 1 }, b: 2 })], /reference at '\/a' is malformed/],
    ['arguments that cannot match', [step('s1', { a: 'x', b: 2 })], /cannot match the schema of 'add': \/a must be number/],
    ['a missing argument next to a reference', [step('s0', { a: 1, b: 2 }), step('s1', { a: { $ref: 's0' } })], /must have required property 'b'/],
    ['an extra argument holding a reference', [step('s0', { a: 1, b: 2 }), step('s1', { a: 1, b: 2, c: { $ref: 's0' } })], /additional properties/],
  ])('refuses %s', async (_name, steps, problem) => {
    const r = await checkPlan({ steps }, ctx);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.problems.join('\n')).toMatch(problem);
  });

  test('a reference stands in for any value: type errors at it are not problems', async () => {
    const r = await checkPlan({ steps: [step('s0', { a: 1, b: 2 }), step('s1', { a: { $ref: 's0' }, b: { $ref: 's0', path: 'n' } })] }, ctx);
    expect(r).toMatchObject({ ok: true });
  });

  test('refuses arguments that are not a plan at all', async () => {
    const r = await checkPlan({ plan: [] }, ctx);
    expect(r).toMatchObject({ ok: false, problems: [expect.stringMatching(/steps/)] });
  });
});

describe('references', () => {
  test('are found at any depth and filled with results or parts of them', () => {
    const args = { list: [{ $ref: 's1' }, { deep: { $ref: 's2', path: 'rows.1.v' } }], plain: 3 };
    expect(findRefs(args).refs.map((r) => [r.step, r.pointer])).toEqual([['s1', '/list/0'], ['s2', '/list/1/deep']]);
    const results: Record<string, unknown> = { s1: 5, s2: { rows: [{ v: 1 }, { v: 7 }] } };
    expect(fillRefs(args, (id) => results[id])).toEqual({ ok: true, value: { list: [5, { deep: 7 }], plain: 3 } });
  });

  test('a path that is not in the result is a problem, and inherited keys are not read', () => {
    expect(fillRefs({ a: { $ref: 's1', path: 'x.y' } }, () => ({ x: {} }))).toMatchObject({ ok: false, problem: expect.stringMatching(/nothing at path 'x.y'/) });
    expect(fillRefs({ a: { $ref: 's1', path: 'constructor' } }, () => ({}))).toMatchObject({ ok: false });
  });
});
