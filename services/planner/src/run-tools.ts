import { isRequestError, type CallRecord, type Principal, type SerializedError } from '@toolplane/core';
import type { ArgumentIssue, ToolDefinition, ToolGateway, UnavailableTool } from '@toolplane/agent';
import type { Calls, CallWaiter, ToolRegistry } from '@toolplane/queue';
import type { HttpMetrics } from '@toolplane/metrics';
import type { ToolAvailabilityReader } from './tool-availability.js';
import { submitCall } from './submit-call.js';
import type { ArgumentValidator } from './validation.js';

/**
 * Who a run's calls act as: its own tenant, never an admin, so a run reaches only its tenant's tools
 * whoever started it (the same wall {@link PlannerToolGateway.describe} draws).
 */
function runPrincipal(tenant: string): Principal {
  return { keyId: `run:${tenant}`, tenant, scopes: ['calls:write'] };
}

/**
 * Agent runs' way to the tools: {@link submitCall}, the path of `POST /v1/calls`, with refusals
 * handed back as data for the model instead of HTTP errors.
 */
export class PlannerToolGateway implements ToolGateway {
  constructor(
    private readonly deps: {
      registry: ToolRegistry;
      calls: Calls;
      waiter: CallWaiter;
      validator: ArgumentValidator;
      httpMetrics: HttpMetrics;
      /** Without it every enabled tool counts as available. */
      availability?: ToolAvailabilityReader;
    },
  ) {}

  async describe(
    names: string[] | undefined,
    tenant: string,
  ): Promise<{ tools: ToolDefinition[]; missing: string[]; unavailable: UnavailableTool[] }> {
    // A run sees the tools of its own tenant only, like the API key that started it.
    const all = (await this.deps.registry.list()).filter((t) => t.tenant === tenant);
    const wanted = names ? all.filter((t) => names.includes(t.name)) : all;
    const found = new Set(wanted.map((t) => t.name));
    // The model is offered only what it can call now; the rest is named, for plan checks and refusals.
    const rated = this.deps.availability
      ? await this.deps.availability.all(wanted)
      : wanted.map((tool) => (tool.enabled === false ? { tool, availability: 'UNAVAILABLE' as const, reason: 'disabled by an operator' } : { tool, availability: 'AVAILABLE' as const }));
    const unavailable: UnavailableTool[] = [];
    const tools: ToolDefinition[] = [];
    for (const r of rated) {
      if (r.availability === 'AVAILABLE') tools.push({ name: r.tool.name, description: r.tool.description, parameters: r.tool.parameters });
      else unavailable.push({ name: r.tool.name, availability: r.availability, reason: r.reason ?? 'not available now' });
    }
    return { tools, missing: (names ?? []).filter((n) => !found.has(n)), unavailable };
  }

  async checkArguments(call: { tool: string; arguments: unknown; tenant: string }): Promise<ArgumentIssue[]> {
    const tool = await this.deps.registry.get(call.tool);
    if (!tool || tool.tenant !== call.tenant) return [{ path: '', keyword: 'tool', message: `no tool named '${call.tool}'` }];
    try {
      this.deps.validator.validate(tool, call.arguments);
      return [];
    } catch (err: unknown) {
      if (!isRequestError(err)) throw err;
      const errors = (err.details as { errors?: Array<{ path: string; keyword: string; message: string }> } | undefined)?.errors;
      if (!errors) return [{ path: '', keyword: 'schema', message: err.message }];
      return errors.map((e) => ({ path: e.path === '/' ? '' : e.path, keyword: e.keyword, message: e.message }));
    }
  }

  async submit(call: {
    tool: string;
    arguments: unknown;
    idempotencyKey: string;
    tenant: string;
  }): Promise<{ callId: string } | { error: SerializedError }> {
    try {
      // The run step's span is current here: the worker's `tool.call` joins the run's trace.
      const { id } = await submitCall(this.deps, runPrincipal(call.tenant), call.tool, call.arguments, { idempotencyKey: call.idempotencyKey });
      return { callId: id };
    } catch (err: unknown) {
      // A refusal is the call's outcome, for the model to read; anything else fails the step.
      if (!isRequestError(err)) throw err;
      return { error: { code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) } };
    }
  }

  get(callId: string): Promise<CallRecord | undefined> {
    return this.deps.calls.reads.get(callId);
  }

  watch(callId: string, timeoutMs: number, signal: AbortSignal): { done: Promise<boolean>; cancel: () => void } {
    return this.deps.waiter.wait(callId, timeoutMs, signal);
  }
}
