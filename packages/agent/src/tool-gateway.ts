import type { CallRecord, SerializedError } from '@toolplane/core';
import type { ToolDefinition } from './llm/llm-caller.js';

/**
 * How a run reaches Toolplane's tools: the same path as `POST /v1/calls` (registry look-up, schema
 * validation, enqueue on the tool's queue), implemented by the planner.
 */
export interface ToolGateway {
  /** Definitions of the named tools (all current tools without `names`), and the names not found. */
  describe(names: string[] | undefined, tenant: string): Promise<{ tools: ToolDefinition[]; missing: string[] }>;
  /**
   * Validates and enqueues a call. The same idempotency key gives the same call, so a resumed run
   * never executes a call twice. Refusals (unknown tool, bad arguments) come back as `error`.
   */
  submit(call: { tool: string; arguments: unknown; idempotencyKey: string; tenant: string }): Promise<{ callId: string } | { error: SerializedError }>;
  get(callId: string): Promise<CallRecord | undefined>;
  /** Resolves `true` when the call is announced finished, `false` after `timeoutMs` or on abort. */
  watch(callId: string, timeoutMs: number, signal: AbortSignal): { done: Promise<boolean>; cancel: () => void };
}
