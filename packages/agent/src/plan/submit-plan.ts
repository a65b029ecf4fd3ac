import type { ToolDefinition } from '../llm/llm-caller.js';
import type { RunPlan } from '../types.js';

/** The one function a plan-mode run offers the model. */
export const SUBMIT_PLAN = 'submit_plan';

/** Added to the protocol's system prompt in plan mode. */
export const PLAN_MODE_PROMPT =
  'Work in plan mode: first call submit_plan once with every tool call the task needs, as steps. ' +
  'A step can use the result of another step: put {"$ref": "<step id>"} where the value goes, or ' +
  '{"$ref": "<step id>", "path": "a.b"} for a part of it. Steps that do not reference each other run in parallel. ' +
  'You get every step\'s result (or error) back in one message; then give the final answer, ' +
  'or call submit_plan again with a new plan for what is still missing.';

function toolList(tools: ToolDefinition[]): string {
  if (tools.length === 0) return '(none available now)';
  return tools.map((t) => `- ${t.name}: ${t.description}\n  arguments JSON Schema: ${JSON.stringify(t.parameters)}`).join('\n');
}

/**
 * `submit_plan` with the tools the plan may use in its description (they are not offered as
 * functions of their own), built afresh each turn from the tools available then.
 */
export function submitPlanTool(tools: ToolDefinition[]): ToolDefinition {
  return {
    name: SUBMIT_PLAN,
    description:
      'Submit a plan: tool calls as steps, run as soon as the steps they reference have succeeded. ' +
      `Tools a step can call:\n${toolList(tools)}`,
    parameters: {
      type: 'object',
      properties: {
        steps: {
          type: 'array',
          minItems: 1,
          items: {
            type: 'object',
            properties: {
              id: { type: 'string', description: 'unique within the plan, e.g. s1' },
              // An empty enum is refused by some providers' schema checks.
              tool: tools.length ? { type: 'string', enum: tools.map((t) => t.name) } : { type: 'string' },
              arguments: {
                type: 'object',
                description: 'the tool arguments; {"$ref": "s1"} or {"$ref": "s1", "path": "a.b"} stands for (part of) step s1\'s result',
              },
            },
            required: ['id', 'tool', 'arguments'],
          },
        },
      },
      required: ['steps'],
    },
  };
}

/** What the model reads after a plan ran: every step's outcome, and what it may do next. */
export function planObservation(plan: RunPlan, plansLeft: number, maxChars: number): string {
  const steps = plan.steps.map((s) => {
    if (s.status === 'succeeded') return { id: s.id, tool: s.tool, status: s.status, result: s.result ?? null };
    if (s.status === 'skipped') return { id: s.id, tool: s.tool, status: s.status, reason: s.skippedBecause };
    return { id: s.id, tool: s.tool, status: s.status, error: s.error ?? { code: 'TOOL_ERROR', message: 'unknown failure' } };
  });
  const next =
    plansLeft > 0
      ? `Answer with the final answer, or call submit_plan with a new plan (${plansLeft} left) for what is still missing.`
      : 'No plans are left: answer with the final answer now.';
  const text = JSON.stringify({ plan: plan.revision, steps, next });
  return text.length > maxChars ? `${text.slice(0, maxChars)}… (truncated)` : text;
}

/** What the model reads when its plan is refused: every problem, and that nothing ran. */
export function planRejection(problems: string[]): string {
  return `PLAN REJECTED, nothing ran. Fix every problem and call submit_plan again:\n${problems.map((p) => `- ${p}`).join('\n')}`;
}
