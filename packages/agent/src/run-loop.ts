import { SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import { DEFAULT_TENANT, isFinished, type CallRecord, type Logger, type SerializedError } from '@toolplane/core';
import { isRedisUnavailable } from '@toolplane/queue';
import type { AgentMemory } from './memory.js';
import type { LlmCaller } from './llm/llm-caller.js';
import { LlmError } from './llm/llm-caller.js';
import { nativeToolsProtocol } from './protocols/native-tools.js';
import type { Observation, Protocol, RequestedCall } from './protocols/protocol.js';
import { textProtocol } from './protocols/text-protocol.js';
import { costUsd, type PriceTable } from './prices.js';
import type { RunStore } from './run-store.js';
import { checkPlan } from './plan/plan-checker.js';
import { markConcurrency, runPlan } from './plan/plan-scheduler.js';
import { SUBMIT_PLAN, planObservation, planRejection, submitPlanTool } from './plan/submit-plan.js';
import type { ToolDefinition } from './llm/llm-caller.js';
import type { ToolGateway, UnavailableTool } from './tool-gateway.js';
import {
  DEFAULT_MAX_PLANS,
  DEFAULT_MAX_PLAN_STEPS,
  toRunView,
  type BudgetKind,
  type PlanStep,
  type PlanStepStatus,
  type RunPlan,
  type RunEvent,
  type RunProtocol,
  type RunRecord,
  type RunStatus,
  type RunStep,
  type StepToolCall,
} from './types.js';

/** Hooks for metrics; the agent package itself never imports prom-client. */
export type RunHooks = {
  /** A run ended (also when a budget ran out). */
  onRunFinished?(status: RunStatus, run: RunRecord): void;
  /** A model call came back with this usage. */
  onUsage?(model: string, promptTokens: number, completionTokens: number): void;
};

export type RunLoopDeps = {
  store: RunStore;
  llm: LlmCaller;
  tools: ToolGateway;
  prices: PriceTable;
  memory?: AgentMemory;
  hooks: RunHooks;
  logger: Logger;
  owner: string;
  /** How often a call's state is read while no finish is announced (approval decisions are not). */
  pollMs: number;
};

/** Thrown when another planner took the run over: this one stops quietly. */
export class LeaseLostError extends Error {
  override readonly name = 'LeaseLostError';
}

class BudgetExceeded extends Error {
  override readonly name = 'BudgetExceeded';
  constructor(
    readonly kind: BudgetKind,
    readonly limit: number,
    readonly used: number,
  ) {
    super(`${kind} budget exceeded`);
  }
}

const PROTOCOLS: Record<RunProtocol, Protocol> = { tools: nativeToolsProtocol, text: textProtocol };

/** Tool results longer than this are cut before they go back to the model. */
const MAX_OBSERVATION_CHARS = 16_000;
/** A plan's results go back in one message, so it may be longer than one call's. */
const MAX_PLAN_OBSERVATION_CHARS = 4 * MAX_OBSERVATION_CHARS;

/** A ReAct call or a plan step: what {@link RunLoop} submits and follows the same way. */
type TrackedCall = {
  tool: string;
  callId?: string;
  status: StepToolCall['status'] | PlanStepStatus;
  result?: unknown;
  error?: SerializedError;
  enqueuedAt?: number;
  startedAt?: number;
  finishedAt?: number;
};

/**
 * Drives one run to its end: model turn, tool calls through the queues (all calls of a turn
 * enqueued together and awaited together), results back to the model, until a final answer or a
 * budget runs out. The state is saved after every change, so another planner can pick it up at the
 * step it reached; `stop` (shutdown) leaves the run as it is for that.
 */
export class RunLoop {
  private readonly protocol: Protocol;
  private readonly log: Logger;

  constructor(
    private readonly deps: RunLoopDeps,
    private readonly run: RunRecord,
  ) {
    this.protocol = PROTOCOLS[run.protocol];
    this.log = deps.logger.child({ runId: run.id });
  }

  /** Runs until the run finishes, the lease is lost or `stop` aborts. */
  async drive(stop: AbortSignal): Promise<void> {
    // No-op spans unless the planner started the OpenTelemetry SDK.
    return traced('agent.run', { 'toolplane.run_id': this.run.id }, async (span) => {
      await this.driveSteps(stop);
      span.setAttribute('toolplane.run.status', this.run.status);
    });
  }

  private async driveSteps(stop: AbortSignal): Promise<void> {
    const run = this.run;
    const remainingMs = run.deadlineAt === undefined ? undefined : run.deadlineAt - Date.now();
    const deadline = remainingMs === undefined ? undefined : AbortSignal.timeout(Math.max(0, remainingMs));
    const signal = deadline ? AbortSignal.any([stop, deadline]) : stop;
    try {
      for (;;) {
        if (deadline?.aborted) throw this.deadlineExceeded();
        if (!run.current && run.steps.length >= run.maxIterations) {
          throw new BudgetExceeded('iterations', run.maxIterations, run.steps.length);
        }
        if (await this.step(signal)) return;
      }
    } catch (err: unknown) {
      if (err instanceof LeaseLostError || (stop.aborted && !(err instanceof BudgetExceeded))) {
        this.log.info('run handed over');
        return;
      }
      if (isRedisUnavailable(err)) {
        // Not the run's fault: leave it as stored; once Redis is back and the lease lapses, a scan resumes it.
        this.log.warn({ err: (err as Error).message }, 'redis unreachable; run paused until it is taken over');
        return;
      }
      if (deadline?.aborted) err = this.deadlineExceeded();
      if (err instanceof BudgetExceeded) {
        run.budgetExceeded = { kind: err.kind, limit: err.limit, used: err.used };
        this.log.info({ kind: err.kind }, 'run budget exceeded');
        return void (await this.finish('budget_exceeded'));
      }
      const error: SerializedError =
        err instanceof LlmError
          ? { code: 'LLM_ERROR', message: err.message }
          : { code: 'INTERNAL', message: err instanceof Error ? err.message : String(err) };
      this.log.warn({ err }, 'run failed');
      run.error = error;
      await this.finish('failed');
    }
  }

  /**
   * One step: the model call (unless a resumed run is in the middle of its tool calls) and the tool
   * calls it asked for, under one `agent.step` span that parents the worker's `tool.call` spans.
   * True when the run is finished.
   */
  private step(signal: AbortSignal): Promise<boolean> {
    const run = this.run;
    return traced('agent.step', { 'toolplane.run_id': run.id, 'toolplane.step': run.steps.length }, async (span) => {
      if (!run.current && (await this.modelTurn(signal))) return true;
      if (run.current?.plan) {
        span.setAttribute('toolplane.plan_steps', run.current.plan.steps.length);
        await this.runPlanStep(run.current, run.current.plan, signal);
      } else if (run.current) {
        span.setAttribute('toolplane.tool_calls', run.current.toolCalls.length);
        await this.runToolCalls(run.current, signal);
      }
      return false;
    });
  }

  /** One model call and what follows from it; true when the run is finished. */
  private async modelTurn(signal: AbortSignal): Promise<boolean> {
    const run = this.run;
    // Described afresh each turn: a tool replaced mid-run is offered with its current schema.
    // Only tools that can be called now (enabled, breaker not open, not held back) are offered.
    const described = await this.deps.tools.describe(run.tools, run.tenant ?? DEFAULT_TENANT);
    const planMode = run.mode === 'plan';
    const tools = planMode ? [submitPlanTool(described.tools)] : described.tools;
    // GenAI semantic conventions: model and token counts, never the messages.
    const reply = await traced(
      `chat ${run.model}`,
      { 'gen_ai.operation.name': 'chat', 'gen_ai.request.model': run.model },
      async (span) => {
        const r = await this.deps.llm.chat(
          { model: run.model, messages: run.messages, ...(this.protocol.nativeTools ? { tools } : {}) },
          signal,
        );
        span.setAttributes({ 'gen_ai.usage.input_tokens': r.usage.promptTokens, 'gen_ai.usage.output_tokens': r.usage.completionTokens });
        return r;
      },
      SpanKind.CLIENT,
    );
    const { promptTokens, completionTokens } = reply.usage;
    run.usage.promptTokens += promptTokens;
    run.usage.completionTokens += completionTokens;
    run.usage.totalTokens += promptTokens + completionTokens;
    run.usage.costUsd += costUsd(this.deps.prices, run.model, promptTokens, completionTokens);
    run.usage.modelCalls += 1;
    this.deps.hooks.onUsage?.(run.model, promptTokens, completionTokens);

    const decision = this.protocol.decide(reply);
    const step: RunStep = {
      index: run.steps.length,
      toolCalls: [],
      usage: { promptTokens, completionTokens },
      ...(decision.thought ? { thought: decision.thought } : {}),
    };
    run.messages.push(this.protocol.assistantMessage(reply));

    if (decision.kind === 'final') {
      // The tokens are spent either way: an answer that arrives over budget is still the answer.
      step.finalAnswer = decision.answer;
      run.finalAnswer = decision.answer;
      run.steps.push(step);
      await this.finish('succeeded', [{ type: 'step', step }]);
      return true;
    }
    const overBudget = this.spentBudget();
    if (overBudget) {
      run.steps.push(step);
      await this.save([{ type: 'step', step }]);
      throw overBudget;
    }
    if (decision.kind === 'invalid') {
      step.correction = decision.correction;
      run.messages.push(this.protocol.correctionMessage(decision.correction));
      run.steps.push(step);
      await this.save([{ type: 'step', step }]);
      return false;
    }
    if (planMode) return this.acceptPlan(step, decision.calls, described.tools, described.unavailable ?? []);
    const allowed = run.tools ? new Set(run.tools) : undefined;
    const unavailable = new Map((described.unavailable ?? []).map((u) => [u.name, u]));
    step.toolCalls = decision.calls.map((c) => this.plannedCall(c, allowed, unavailable));
    const maxSteps = run.budget.maxSteps;
    if (maxSteps !== undefined && this.stepsUsed() + step.toolCalls.length > maxSteps) {
      run.steps.push(step);
      await this.save([{ type: 'step', step }]);
      throw new BudgetExceeded('steps', maxSteps, this.stepsUsed());
    }
    run.current = step;
    await this.save([]);
    return false;
  }

  private plannedCall(c: RequestedCall, allowed: Set<string> | undefined, unavailable: Map<string, UnavailableTool>): StepToolCall {
    const call: StepToolCall = { id: c.id, tool: c.tool, arguments: c.arguments, status: 'pending' };
    if (c.invalid) return { ...call, status: 'failed', error: { code: 'INVALID_ARGUMENTS', message: c.invalid } };
    if (allowed && !allowed.has(c.tool)) {
      return { ...call, status: 'failed', error: { code: 'TOOL_NOT_FOUND', message: `tool '${c.tool}' is not available in this run` } };
    }
    const u = unavailable.get(c.tool);
    if (u) return { ...call, status: 'failed', error: { code: 'UNAVAILABLE', message: `tool '${c.tool}' is not available now: ${u.reason}` } };
    return call;
  }

  /**
   * Plan mode: the turn must be one `submit_plan` call whose plan passes {@link checkPlan}; then it
   * becomes the current step and the scheduler runs it. Anything else goes back to the model as the
   * calls' results (a tool call needs its answer), counted as a turn like any correction.
   */
  private async acceptPlan(step: RunStep, calls: RequestedCall[], tools: ToolDefinition[], unavailable: UnavailableTool[]): Promise<boolean> {
    const run = this.run;
    const tenant = run.tenant ?? DEFAULT_TENANT;
    const reject = async (problems: string[], plan?: RunPlan): Promise<boolean> => {
      const correction = planRejection(problems);
      step.correction = correction;
      step.toolCalls = calls.map((c) => ({ id: c.id, tool: c.tool, arguments: c.arguments, status: 'failed', error: { code: 'INVALID_PLAN', message: problems.join('; ') } }));
      if (plan) step.plan = plan;
      run.messages.push(...this.protocol.observationMessages(calls.map((c) => ({ id: c.id, tool: c.tool, content: correction }))));
      run.steps.push(step);
      await this.save([...(plan ? [{ type: 'plan' as const, step: step.index, plan }] : []), { type: 'step', step }]);
      this.log.info({ step: step.index, problems: problems.length }, 'plan rejected');
      return false;
    };
    const call = calls[0];
    if (!call || calls.length !== 1 || call.tool !== SUBMIT_PLAN) {
      return reject([`in plan mode call only ${SUBMIT_PLAN}, once per turn, with every step of the plan (this turn called ${calls.map((c) => c.tool).join(', ')})`]);
    }
    if (call.invalid) return reject([`the ${SUBMIT_PLAN} arguments: ${call.invalid}`]);
    const executed = this.plansRun();
    const maxPlans = run.maxPlans ?? DEFAULT_MAX_PLANS;
    if (executed >= maxPlans) return reject([`this run may execute ${maxPlans} plans and did; answer with the final answer now`]);
    const budgetLeft = run.budget.maxSteps === undefined ? Infinity : run.budget.maxSteps - this.stepsUsed();
    const { checkArguments } = this.deps.tools;
    const check = await checkPlan(call.arguments, {
      tools,
      unavailable,
      maxSteps: Math.max(0, Math.min(DEFAULT_MAX_PLAN_STEPS, budgetLeft)),
      ...(checkArguments ? { checkArguments: (tool: string, args: unknown) => checkArguments.call(this.deps.tools, { tool, arguments: args, tenant }) } : {}),
    });
    if (!check.ok) return reject(check.problems, { status: 'rejected', steps: check.steps, problems: check.problems });
    const plan: RunPlan = { revision: executed + 1, status: 'running', steps: check.steps, startedAt: Date.now() };
    step.plan = plan;
    step.toolCalls = [{ id: call.id, tool: SUBMIT_PLAN, arguments: call.arguments, status: 'running' }];
    run.current = step;
    await this.save([{ type: 'plan', step: step.index, plan }]);
    this.log.info({ step: step.index, revision: plan.revision, steps: plan.steps.length }, 'plan accepted');
    return false;
  }

  /** Runs the current step's plan with the scheduler, then hands every step's outcome to the model in one message. */
  private async runPlanStep(step: RunStep, plan: RunPlan, signal: AbortSignal): Promise<void> {
    const run = this.run;
    const revision = plan.revision ?? 1;
    const stepEvent = (s: PlanStep): RunEvent[] => [{ type: 'plan_step', step: step.index, revision, planStep: s }];
    await runPlan(plan, {
      // One idempotency key per run, plan revision and step: a resumed run resubmits the same call.
      submit: async (s, args) => {
        await this.submitCall(s, args, `run:${run.id}:p${revision}:${s.id}`);
        await this.save(stepEvent(s));
      },
      settle: (s) => this.settle(s, signal, stepEvent),
      changed: (s) => this.save(stepEvent(s)),
    });
    plan.status = 'finished';
    plan.finishedAt = Date.now();
    markConcurrency(plan);
    const submitCall = step.toolCalls[0]!;
    submitCall.status = 'succeeded';
    await this.setWaiting();
    const plansLeft = (run.maxPlans ?? DEFAULT_MAX_PLANS) - this.plansRun();
    const content = planObservation(plan, plansLeft, MAX_PLAN_OBSERVATION_CHARS);
    run.messages.push(...this.protocol.observationMessages([{ id: submitCall.id, tool: SUBMIT_PLAN, content }]));
    run.steps.push(step);
    delete run.current;
    await this.save([{ type: 'plan', step: step.index, plan }, { type: 'step', step }]);
  }

  /** Plans executed (or executing) so far; rejected ones don't count. */
  private plansRun(): number {
    const all = [...this.run.steps, ...(this.run.current ? [this.run.current] : [])];
    return all.filter((s) => s.plan && s.plan.status !== 'rejected').length;
  }

  /** Tool calls made so far, for the `maxSteps` budget: ReAct calls and plan steps that were not skipped. */
  private stepsUsed(): number {
    const all = [...this.run.steps, ...(this.run.current ? [this.run.current] : [])];
    return all.reduce((n, s) => {
      if (!s.plan) return n + s.toolCalls.length;
      if (s.plan.status === 'rejected') return n;
      return n + s.plan.steps.filter((p) => p.status !== 'skipped' && p.status !== 'waiting').length;
    }, 0);
  }

  /** Enqueues every call of the step together, awaits them together, then hands the results to the model. */
  private async runToolCalls(step: RunStep, signal: AbortSignal): Promise<void> {
    const run = this.run;
    const unsent = step.toolCalls.filter((c) => c.status === 'pending');
    // runId + step + the model's call id: a resumed run submits the same key and gets the same call.
    await Promise.all(unsent.map((c) => this.submitCall(c, c.arguments, `run:${run.id}:${step.index}:${c.id}`)));
    if (unsent.length) await this.save([]);

    await Promise.all(step.toolCalls.filter((c) => c.callId && !isDone(c)).map((c) => this.settle(c, signal)));
    await this.setWaiting();

    const observations: Observation[] = step.toolCalls.map((c) => ({ id: c.id, tool: c.tool, content: observe(c) }));
    run.messages.push(...this.protocol.observationMessages(observations));
    run.steps.push(step);
    delete run.current;
    await this.save([{ type: 'step', step }]);
  }

  /** Validates and enqueues one call through the gateway; a refusal becomes the call's outcome. */
  private async submitCall(c: TrackedCall, args: unknown, idempotencyKey: string): Promise<void> {
    const submitted = await this.deps.tools.submit({ tenant: this.run.tenant ?? DEFAULT_TENANT, tool: c.tool, arguments: args, idempotencyKey });
    c.enqueuedAt = Date.now();
    if ('error' in submitted) {
      c.status = 'failed';
      c.error = submitted.error;
      c.finishedAt = c.enqueuedAt;
    } else {
      c.callId = submitted.callId;
      c.status = 'queued';
    }
  }

  /**
   * Follows one call until it finishes; a wait for approval pauses the run meanwhile. `events` are
   * saved with each change of the call's state (plan steps announce theirs).
   */
  private async settle<T extends TrackedCall>(c: T, signal: AbortSignal, events: (c: T) => RunEvent[] = () => []): Promise<void> {
    const changed = (): RunEvent[] => events(c);
    for (;;) {
      signal.throwIfAborted();
      const watch = this.deps.tools.watch(c.callId!, this.deps.pollMs, signal);
      let record: CallRecord | undefined;
      try {
        record = await this.deps.tools.get(c.callId!);
      } catch (err: unknown) {
        watch.cancel();
        throw err;
      }
      if (!record) {
        watch.cancel();
        c.status = 'failed';
        c.error = { code: 'NOT_FOUND', message: 'the call expired or was removed' };
        return;
      }
      if (record.status !== c.status) {
        const wasAwaiting = c.status === 'awaiting_approval';
        c.status = record.status;
        if (isFinished(record.status)) {
          watch.cancel();
          if (record.status === 'succeeded') c.result = record.result;
          else c.error = record.error ?? { code: 'CANCELLED', message: 'the call was cancelled' };
          recordTimes(c, record);
          // Saved as each call ends, so `GET /v1/runs/{id}` shows progress within a step.
          if (wasAwaiting) await this.setWaiting(changed());
          else await this.save(changed());
          return;
        }
        if (record.status === 'running') c.startedAt ??= Date.now();
        if (wasAwaiting || c.status === 'awaiting_approval') await this.setWaiting(changed());
        else {
          const e = changed();
          if (e.length) await this.save(e);
        }
      }
      await watch.done;
    }
  }

  /** `waiting_approval` while any call of the current step waits for a human, else `running`. */
  private async setWaiting(events: RunEvent[] = []): Promise<void> {
    const run = this.run;
    const calls: TrackedCall[] = [...(run.current?.toolCalls ?? []), ...(run.current?.plan?.steps ?? [])];
    const waitingFor = calls.filter((c) => c.status === 'awaiting_approval').map((c) => c.callId!);
    const status: RunStatus = waitingFor.length ? 'waiting_approval' : 'running';
    if (status === run.status && status === 'running') {
      if (events.length) await this.save(events);
      return;
    }
    run.status = status;
    await this.save([...events, { type: 'status', status, ...(waitingFor.length ? { waitingFor } : {}) }]);
  }

  private spentBudget(): BudgetExceeded | undefined {
    const { budget, usage } = this.run;
    if (budget.maxTokens !== undefined && usage.totalTokens >= budget.maxTokens) {
      return new BudgetExceeded('tokens', budget.maxTokens, usage.totalTokens);
    }
    if (budget.maxCostUsd !== undefined && usage.costUsd >= budget.maxCostUsd) {
      return new BudgetExceeded('cost', budget.maxCostUsd, usage.costUsd);
    }
    return undefined;
  }

  private deadlineExceeded(): BudgetExceeded {
    return new BudgetExceeded('deadline', this.run.budget.deadlineMs ?? 0, Date.now() - Date.parse(this.run.createdAt));
  }

  private async save(events: RunEvent[], finished = false): Promise<void> {
    this.run.updatedAt = new Date().toISOString();
    if (!(await this.deps.store.save(this.run, this.deps.owner, events, finished))) throw new LeaseLostError('lease lost');
  }

  private async finish(status: RunStatus, events: RunEvent[] = []): Promise<void> {
    const run = this.run;
    run.status = status;
    run.finishedAt = new Date().toISOString();
    // Calls still out when a budget ran out stay in the step as they were: the run shows what it had.
    if (run.current) {
      run.steps.push(run.current);
      events.push({ type: 'step', step: run.current });
      delete run.current;
    }
    await this.save([...events, { type: 'status', status }, { type: 'finished', run: toRunView(run) }], true);
    this.log.info({ status, steps: run.steps.length }, 'run finished');
    this.deps.hooks.onRunFinished?.(status, run);
    if (run.sessionId && this.deps.memory) {
      try {
        // The run's own tenant: its session id names that tenant's memory, never another's.
        const tenant = run.tenant ?? DEFAULT_TENANT;
        await this.deps.memory.remember(tenant, run.sessionId, { role: 'user', content: run.input, importance: 0.5 });
        if (run.finalAnswer) {
          await this.deps.memory.remember(tenant, run.sessionId, { role: 'assistant', content: run.finalAnswer, importance: 0.7 });
        }
      } catch (err: unknown) {
        this.log.warn({ err }, 'could not update memory');
      }
    }
  }
}

const tracer = trace.getTracer('@toolplane/agent');

/**
 * Runs `fn` in a new active span. A failure marks the span with the error's name only: messages of
 * model endpoints and tools can quote prompts or arguments.
 */
function traced<T>(name: string, attributes: Record<string, string | number>, fn: (span: Span) => Promise<T>, kind = SpanKind.INTERNAL): Promise<T> {
  return tracer.startActiveSpan(name, { kind, attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (err: unknown) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.name : 'error' });
      throw err;
    } finally {
      span.end();
    }
  });
}

/**
 * When the call ran, from its record: the worker's start (enqueue + queue time) and end (+ run
 * time); without them, when this loop saw it finish.
 */
function recordTimes(c: TrackedCall, record: CallRecord): void {
  const { queuedMs, runMs } = record.timings;
  if (queuedMs !== null && runMs !== null) {
    c.startedAt = Date.parse(record.createdAt) + queuedMs;
    c.finishedAt = c.startedAt + runMs;
  } else {
    c.finishedAt = Date.now();
  }
}

function isDone(c: StepToolCall): boolean {
  return c.status === 'succeeded' || c.status === 'failed' || c.status === 'cancelled';
}

/** A call's outcome as the text the model reads. A human's refusal says so plainly. */
function observe(c: StepToolCall): string {
  if (c.status === 'succeeded') {
    const text = c.result === undefined ? 'null' : JSON.stringify(c.result);
    return text.length > MAX_OBSERVATION_CHARS ? `${text.slice(0, MAX_OBSERVATION_CHARS)}… (truncated)` : text;
  }
  const error = c.error ?? { code: 'TOOL_ERROR', message: 'unknown failure' };
  if (error.code === 'REJECTED') {
    return `REFUSED: a human reviewer rejected this call (${error.message}). Do not retry it; continue without it.`;
  }
  const details = error.details === undefined ? '' : ` ${JSON.stringify(error.details)}`;
  return `ERROR ${error.code}: ${error.message}${details}`;
}
