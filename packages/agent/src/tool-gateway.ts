import type { CallRecord, SerializedError } from '@toolplane/core';
import type { ToolDefinition } from './llm/llm-caller.js';

/**
 * Whether a tool can be called now, as the seed's registry has it: `UNAVAILABLE` when an operator
 * disabled it or its breaker is open, `RATE_LIMITED` while a rate-limit or Retry-After hold lasts.
 */
export type ToolAvailability = 'AVAILABLE' | 'UNAVAILABLE' | 'RATE_LIMITED';

/** A tool that exists but is not offered to the model now, and why. */
export type UnavailableTool = { name: string; availability: Exclude<ToolAvailability, 'AVAILABLE'>; reason: string };

/** One way arguments break a tool's schema; `path` is a JSON pointer (`""` for the whole value). */
export type ArgumentIssue = { path: string; keyword: string; message: string };

/**
 * How a run reaches Toolplane's tools: the same path as `POST /v1/calls` (registry look-up, schema
 * validation, enqueue on the tool's queue), implemented by the planner.
 */
export interface ToolGateway {
  /**
   * Definitions of the named tools (all current tools without `names`) that can be called now, the
   * names not found, and the ones found but not available now (they are not in `tools`).
   */
  describe(
    names: string[] | undefined,
    tenant: string,
  ): Promise<{ tools: ToolDefinition[]; missing: string[]; unavailable?: UnavailableTool[] }>;
  /**
   * Validates and enqueues a call. The same idempotency key gives the same call, so a resumed run
   * never executes a call twice. Refusals (unknown tool, bad arguments) come back as `error`.
   */
  submit(call: { tool: string; arguments: unknown; idempotencyKey: string; tenant: string }): Promise<{ callId: string } | { error: SerializedError }>;
  /**
   * How `arguments` break the tool's schema (empty when they match), without enqueueing anything.
   * Plan checks use it; without it a plan's arguments are checked only when each step is enqueued.
   */
  checkArguments?(call: { tool: string; arguments: unknown; tenant: string }): Promise<ArgumentIssue[]>;
  get(callId: string): Promise<CallRecord | undefined>;
  /** Resolves `true` when the call is announced finished, `false` after `timeoutMs` or on abort. */
  watch(callId: string, timeoutMs: number, signal: AbortSignal): { done: Promise<boolean>; cancel: () => void };
}
