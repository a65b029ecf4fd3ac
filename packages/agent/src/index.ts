/**
 * Agent runs: the ReAct loop and plan mode (submit_plan, plan checker, dependency scheduler), model callers (native tool calls and the text protocol), session
 * memory, budgets and the price table. Runs live in Redis and their tool calls go through a
 * {@link ToolGateway} that the planner implements over Toolplane's queues.
 *
 * @example
 * ```ts
 * const runs = new RunManager({ redis, keys: createAgentKeys('toolplane'), tools: gateway,
 *   llm: new ChatCompletionsCaller({ baseUrl, apiKey }), defaultModel: 'gpt-4o-mini', prices: DEFAULT_PRICES });
 * await runs.start();
 * const run = await runs.create(RunRequest.parse({ input: 'What is 2 + 3?' }));
 * ```
 */
export {
  RunRequest,
  RunBudget,
  RunProtocol,
  RunMode,
  RunStatus,
  RunErrorCode,
  MAX_ITERATIONS_LIMIT,
  DEFAULT_MAX_ITERATIONS,
  DEFAULT_MAX_PLANS,
  DEFAULT_MAX_PLAN_STEPS,
  isRunFinished,
  toRunView,
} from './types.js';
export type {
  RunRequestInput,
  RunRecord,
  RunView,
  RunStep,
  StepToolCall,
  PlanStep,
  PlanStepStatus,
  RunPlan,
  RunUsage,
  RunEvent,
  BudgetKind,
  ChatMessage,
  ChatToolCall,
} from './types.js';
export { createAgentKeys } from './keys.js';
export type { AgentKeys } from './keys.js';
export { countTokens, countMessageTokens } from './tokens.js';
export { ModelPrice, PriceTable, DEFAULT_PRICES, priceOf, costUsd } from './prices.js';
export { LlmError } from './llm/llm-caller.js';
export type { LlmCaller, ChatRequest, ChatReply, ToolDefinition } from './llm/llm-caller.js';
export { ChatCompletionsCaller } from './llm/chat-completions.js';
export type { ChatCompletionsOptions } from './llm/chat-completions.js';
export { nativeToolsProtocol } from './protocols/native-tools.js';
export { textProtocol, parseTextReply, parseActionInput } from './protocols/text-protocol.js';
export type { Protocol, Decision, RequestedCall, Observation } from './protocols/protocol.js';
export { AgentMemory } from './memory.js';
export type { MemoryEntry, AgentMemoryOptions } from './memory.js';
export type { ToolGateway, ToolAvailability, UnavailableTool, ArgumentIssue } from './tool-gateway.js';
export { checkPlan, SubmitPlanArguments } from './plan/plan-checker.js';
export type { PlanCheck, PlanCheckContext } from './plan/plan-checker.js';
export { runPlan, markConcurrency, isStepDone } from './plan/plan-scheduler.js';
export type { PlanSchedulerDeps } from './plan/plan-scheduler.js';
export { findRefs, fillRefs, readPath, blankRefs } from './plan/plan-refs.js';
export type { PlanRef } from './plan/plan-refs.js';
export { SUBMIT_PLAN, submitPlanTool } from './plan/submit-plan.js';
export { RunStore } from './run-store.js';
export type { StoredRunEvent, FinishedRun } from './run-store.js';
export { RunEventFeed, EVENT_ID_PATTERN } from './run-events.js';
export { RunLoop, LeaseLostError } from './run-loop.js';
export type { RunHooks, RunLoopDeps } from './run-loop.js';
export { RunManager } from './run-manager.js';
export type { RunManagerOptions } from './run-manager.js';
