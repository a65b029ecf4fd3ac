import { z } from 'zod';
import { CallbackUrl, ToolName, type CallStatus, type SerializedError } from '@toolplane/core';

/** Limits a run must stay within; the first one hit ends it with status `budget_exceeded`. */
export const RunBudget = z
  .object({
    /** Prompt plus completion tokens over every model turn of the run. */
    maxTokens: z.number().int().min(1).optional(),
    /** Cost of those tokens by the price table; needs a price for the run's model. */
    maxCostUsd: z.number().positive().optional(),
    /** Wall-clock time from the run's start, restarts of the planner included. */
    deadlineMs: z.number().int().min(1).max(86_400_000).optional(),
    /** Tool calls over the whole run: a turn's calls in react mode, a plan's steps in plan mode. */
    maxSteps: z.number().int().min(1).max(1_000).optional(),
  })
  .strict();
export type RunBudget = z.infer<typeof RunBudget>;

/**
 * How the model is asked for tool calls: `tools` uses Chat Completions' native `tools`/`tool_calls`;
 * `text` the `Thought / Action / Input / Final Answer` protocol for models without tool calling.
 */
export const RunProtocol = z.enum(['tools', 'text']);
export type RunProtocol = z.infer<typeof RunProtocol>;

/**
 * `react`: one model turn per round of tool calls. `plan`: the model submits the whole graph of calls
 * once (`submit_plan`), a scheduler runs it on the queues, and the model answers from the results.
 */
export const RunMode = z.enum(['react', 'plan']);
export type RunMode = z.infer<typeof RunMode>;

export const MAX_ITERATIONS_LIMIT = 100;
export const DEFAULT_MAX_PLANS = 3;
/** Steps one plan may have when the run has no `maxSteps` budget. */
export const DEFAULT_MAX_PLAN_STEPS = 50;
export const DEFAULT_MAX_ITERATIONS = 10;

/** The body of `POST /v1/runs`. */
export const RunRequest = z
  .object({
    input: z.string().min(1).max(100_000),
    /** A subset of the registered tools; all of them when absent. */
    tools: z.array(ToolName).max(128).optional(),
    model: z.string().min(1).max(200).optional(),
    protocol: RunProtocol.default('tools'),
    mode: RunMode.default('react'),
    /** Plans a `plan` run may execute (the first one and replans). */
    maxPlans: z.number().int().min(1).max(10).default(DEFAULT_MAX_PLANS),
    maxIterations: z.number().int().min(1).max(MAX_ITERATIONS_LIMIT).default(DEFAULT_MAX_ITERATIONS),
    budget: RunBudget.default({}),
    /** Runs with the same session share {@link AgentMemory}. */
    sessionId: z.string().regex(/^[a-zA-Z0-9_.:-]{1,128}$/).optional(),
    /** Receives the run's final record when it finishes, as a signed webhook (as a call's `callbackUrl`). */
    callbackUrl: CallbackUrl.optional(),
  })
  .strict();
export type RunRequest = z.infer<typeof RunRequest>;
export type RunRequestInput = z.input<typeof RunRequest>;

/**
 * - `running`: the loop is talking to the model or waiting for tool calls.
 * - `waiting_approval`: a tool call waits for a human; the run goes on once it is decided.
 * - `succeeded`: the model gave a final answer.
 * - `budget_exceeded`: a budget ran out; steps so far are kept.
 * - `failed`: the model endpoint failed for good, or the run could not be resumed.
 */
export const RunStatus = {
  RUNNING: 'running',
  WAITING_APPROVAL: 'waiting_approval',
  SUCCEEDED: 'succeeded',
  BUDGET_EXCEEDED: 'budget_exceeded',
  FAILED: 'failed',
} as const;
export type RunStatus = (typeof RunStatus)[keyof typeof RunStatus];

/** True for the statuses a run never leaves. */
export function isRunFinished(status: RunStatus): boolean {
  return status === 'succeeded' || status === 'budget_exceeded' || status === 'failed';
}

/** Codes a failed run ends with. Stable: clients switch on them. */
export const RunErrorCode = z.enum(['LLM_ERROR', 'RESUME_FAILED', 'INTERNAL']);
export type RunErrorCode = z.infer<typeof RunErrorCode>;

export type BudgetKind = 'iterations' | 'tokens' | 'cost' | 'deadline' | 'steps';

/** One tool call the model asked for in a step, and how it ended. */
export type StepToolCall = {
  /** The model's id for the call (`tool_call_id`), or `call_<n>` in the text protocol. */
  id: string;
  tool: string;
  arguments: unknown;
  /** The Toolplane call id, once enqueued. */
  callId?: string;
  /** `pending` until enqueued, then the call's own status. */
  status: 'pending' | CallStatus;
  result?: unknown;
  error?: SerializedError;
  /** Epoch ms: enqueued; started on a worker and finished (from the call record, once it ended). */
  enqueuedAt?: number;
  startedAt?: number;
  finishedAt?: number;
};

/**
 * A plan step's state: `waiting` for the steps it references, `pending` once its arguments are
 * filled in and it is being enqueued, then its call's own status; `skipped` when a step it
 * references did not succeed (or its filled-in arguments were refused).
 */
export type PlanStepStatus = 'waiting' | 'pending' | CallStatus | 'skipped';

/** One node of a plan: a tool call whose arguments may reference other steps' results. */
export type PlanStep = {
  id: string;
  tool: string;
  /** As the model wrote them, `{"$ref": …}` placeholders included. */
  arguments: unknown;
  /** The steps it references, in order of first reference. */
  dependsOn: string[];
  status: PlanStepStatus;
  /** The arguments with every reference filled in, as enqueued. */
  resolvedArguments?: unknown;
  callId?: string;
  result?: unknown;
  error?: SerializedError;
  /** Why it was skipped. */
  skippedBecause?: string;
  /** Epoch ms: enqueued, started on a worker (when the call record says), finished. */
  enqueuedAt?: number;
  startedAt?: number;
  finishedAt?: number;
  /** Steps whose run time overlapped this one's, filled in when the plan ends. */
  concurrentWith?: string[];
};

/** A plan the model submitted, as checked and as run. */
export type RunPlan = {
  /** 1 for the first plan, 2 for the first replan, …; rejected plans get none. */
  revision?: number;
  /** `rejected`: the checker sent it back (see `problems`); never executed. */
  status: 'rejected' | 'running' | 'finished';
  steps: PlanStep[];
  problems?: string[];
  startedAt?: number;
  finishedAt?: number;
  /** Most steps running at the same moment. */
  maxParallel?: number;
};

/** One model turn and what came of it. */
export type RunStep = {
  index: number;
  /** The model's reasoning text, if it gave any. */
  thought?: string;
  toolCalls: StepToolCall[];
  finalAnswer?: string;
  /** Plan mode: the plan this turn submitted (its single `toolCalls` entry is the `submit_plan` call). */
  plan?: RunPlan;
  /** Set when the reply could not be used; this message was sent back to the model instead. */
  correction?: string;
  usage: { promptTokens: number; completionTokens: number };
};

export type RunUsage = { promptTokens: number; completionTokens: number; totalTokens: number; costUsd: number; modelCalls: number };

/** Chat Completions messages, as sent to the model. */
export type ChatToolCall = { id: string; type: 'function'; function: { name: string; arguments: string } };
export type ChatMessage =
  | { role: 'system' | 'user'; content: string }
  | { role: 'assistant'; content: string | null; tool_calls?: ChatToolCall[] }
  | { role: 'tool'; tool_call_id: string; content: string };

/** A run as stored in Redis; {@link toRunView} is what the API shows. */
export type RunRecord = {
  id: string;
  /** Owner of the run; its tool calls are made as this tenant. Absent on runs from before tenants. */
  tenant?: string;
  status: RunStatus;
  input: string;
  model: string;
  protocol: RunProtocol;
  /** Absent on runs from before plan mode: `react`. */
  mode?: RunMode;
  maxPlans?: number;
  tools?: string[];
  maxIterations: number;
  budget: RunBudget;
  sessionId?: string;
  /** Where the final record is POSTed when the run finishes. */
  callbackUrl?: string;
  createdAt: string;
  updatedAt: string;
  finishedAt?: string;
  /** Absolute epoch ms of the deadline, fixed at start so a resumed run keeps it. */
  deadlineAt?: number;
  steps: RunStep[];
  /** The step in progress: its tool calls are enqueued or awaited. */
  current?: RunStep;
  finalAnswer?: string;
  error?: SerializedError;
  budgetExceeded?: { kind: BudgetKind; limit: number; used: number };
  usage: RunUsage;
  /** The conversation so far; internal, the API leaves it out. */
  messages: ChatMessage[];
};

/** What `GET /v1/runs/{id}` returns. */
export type RunView = Omit<RunRecord, 'messages' | 'deadlineAt'>;

/** The run as the API shows it: without the raw conversation and internal fields. */
export function toRunView(run: RunRecord): RunView {
  const { messages: _m, deadlineAt: _d, ...view } = run;
  return view;
}

/** What `GET /v1/runs/{id}/events` streams, in order. */
export type RunEvent =
  | { type: 'status'; status: RunStatus; waitingFor?: string[] }
  | { type: 'step'; step: RunStep }
  /** Plan mode: a plan was accepted, rejected or finished (`step` is the index of the turn that submitted it). */
  | { type: 'plan'; step: number; plan: RunPlan }
  /** Plan mode: one plan step changed state (enqueued, started, finished, skipped). */
  | { type: 'plan_step'; step: number; revision: number; planStep: PlanStep }
  | { type: 'finished'; run: RunView };
