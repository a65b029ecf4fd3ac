import { z } from 'zod';
import type { ToolDefinition } from '../llm/llm-caller.js';
import type { ArgumentIssue, UnavailableTool } from '../tool-gateway.js';
import type { PlanStep } from '../types.js';
import { blankRefs, findRefs, type PlanRef } from './plan-refs.js';

/** The arguments of `submit_plan`, as far as their shape goes; references are checked after. */
export const SubmitPlanArguments = z.object({
  steps: z
    .array(
      z.object({
        id: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'letters, digits, _ and - only, at most 64'),
        tool: z.string().min(1).max(200),
        arguments: z.record(z.string(), z.unknown()).default({}),
      }),
    )
    .min(1, 'a plan needs at least one step'),
});
export type SubmitPlanArguments = z.infer<typeof SubmitPlanArguments>;

export type PlanCheckContext = {
  /** Tools the run may call now. */
  tools: ToolDefinition[];
  /** Tools of the run that exist but are not available now. */
  unavailable: UnavailableTool[];
  /** Steps this plan may have: what is left of the run's step budget, or the per-plan default. */
  maxSteps: number;
  /** Schema issues of arguments (references blanked); absent: checked when each step is enqueued. */
  checkArguments?: (tool: string, args: unknown) => Promise<ArgumentIssue[]>;
};

export type PlanCheck = { ok: true; steps: PlanStep[] } | { ok: false; steps: PlanStep[]; problems: string[] };

/**
 * Keywords that may fail at an object or array *around* a reference only because the reference's
 * value is not known yet (the placeholder stands in for it); `required`, `additionalProperties`,
 * `type` and the like at those places are real problems.
 */
const VALUE_DEPENDENT_KEYWORDS = new Set([
  'anyOf', 'oneOf', 'not', 'if', 'then', 'else', 'const', 'enum', 'uniqueItems', 'contains',
  'dependentSchemas', 'dependencies', 'false schema', '$ref',
]);

/**
 * Checks a plan before anything of it runs: its shape, unique step ids, known and available tools,
 * references to existing steps, no cycles, the step budget, and each step's arguments against its
 * tool's schema with references left open. Every problem found is listed, for one corrective
 * message to the model.
 */
export async function checkPlan(raw: unknown, ctx: PlanCheckContext): Promise<PlanCheck> {
  const parsed = SubmitPlanArguments.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.length ? i.path.join('.') : 'the arguments'}: ${i.message}`);
    return { ok: false, steps: [], problems };
  }
  const problems: string[] = [];
  const ids = new Set<string>();
  const refsOf = new Map<string, PlanRef[]>();
  const steps: PlanStep[] = parsed.data.steps.map((s) => {
    if (ids.has(s.id)) problems.push(`step id '${s.id}' is used twice`);
    ids.add(s.id);
    const found = findRefs(s.arguments);
    for (const p of found.problems) problems.push(`step '${s.id}': ${p}`);
    refsOf.set(s.id, found.refs);
    return { id: s.id, tool: s.tool, arguments: s.arguments, dependsOn: [...new Set(found.refs.map((r) => r.step))], status: 'waiting' };
  });

  if (steps.length > ctx.maxSteps) {
    problems.push(`the plan has ${steps.length} steps, but the run's budget allows at most ${ctx.maxSteps} more`);
  }
  const known = new Map(ctx.tools.map((t) => [t.name, t]));
  const unavailable = new Map(ctx.unavailable.map((u) => [u.name, u]));
  for (const s of steps) {
    const u = unavailable.get(s.tool);
    if (u) problems.push(`step '${s.id}': tool '${s.tool}' is not available now (${u.availability.toLowerCase()}: ${u.reason}); plan without it`);
    else if (!known.has(s.tool)) problems.push(`step '${s.id}': there is no tool named '${s.tool}' in this run`);
    for (const dep of s.dependsOn) {
      if (dep === s.id) problems.push(`step '${s.id}' references itself`);
      else if (!ids.has(dep)) problems.push(`step '${s.id}' references step '${dep}', which is not in the plan`);
    }
  }
  const cycle = findCycle(steps, ids);
  if (cycle) problems.push(`steps ${cycle.map((id) => `'${id}'`).join(' → ')} form a cycle: no step of a cycle can ever start`);

  if (ctx.checkArguments) {
    const check = ctx.checkArguments;
    const issues = await Promise.all(
      steps.map(async (s) => (known.has(s.tool) ? { s, issues: await check(s.tool, blankRefs(s.arguments)) } : { s, issues: [] })),
    );
    for (const { s, issues: all } of issues) {
      const open = (refsOf.get(s.id) ?? []).map((r) => r.pointer);
      const real = all.filter((i) => !dependsOnRefValue(normalizePointer(i.path), i.keyword, open));
      if (real.length) {
        const list = real.map((i) => `${i.path === '' || i.path === '/' ? 'arguments' : i.path} ${i.message}`).join('; ');
        problems.push(`step '${s.id}': arguments cannot match the schema of '${s.tool}': ${list}`);
      }
    }
  }
  return problems.length ? { ok: false, steps, problems } : { ok: true, steps };
}

function normalizePointer(path: string): string {
  return path === '/' ? '' : path;
}

/** True when an issue may vanish once the references are filled in: it sits at or inside one, or around one on a value keyword. */
function dependsOnRefValue(path: string, keyword: string, refPointers: string[]): boolean {
  return refPointers.some((ref) => {
    if (path === ref || path.startsWith(`${ref}/`)) return true;
    const around = ref.startsWith(`${path}/`) || path === '';
    return around && VALUE_DEPENDENT_KEYWORDS.has(keyword);
  });
}

/** One cycle of the reference graph as a path that returns to its start, or undefined. */
function findCycle(steps: PlanStep[], ids: Set<string>): string[] | undefined {
  const deps = new Map(steps.map((s) => [s.id, s.dependsOn.filter((d) => ids.has(d) && d !== s.id)]));
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (id: string): string[] | undefined => {
    state.set(id, 'open');
    stack.push(id);
    for (const d of deps.get(id) ?? []) {
      if (state.get(d) === 'open') return [...stack.slice(stack.indexOf(d)), d];
      if (!state.has(d)) {
        const found = visit(d);
        if (found) return found;
      }
    }
    stack.pop();
    state.set(id, 'done');
    return undefined;
  };
  for (const s of steps) {
    if (state.has(s.id)) continue;
    const found = visit(s.id);
    if (found) return found;
  }
  return undefined;
}
