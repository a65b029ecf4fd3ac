import type { ChatReply, ToolDefinition } from '../llm/llm-caller.js';
import type { ChatMessage } from '../types.js';

/** A tool call the model asked for; `invalid` says why it can't run (e.g. arguments that are not JSON). */
export type RequestedCall = { id: string; tool: string; arguments: unknown; invalid?: string };

/** What the run loop does next with a model reply. */
export type Decision =
  | { kind: 'final'; thought?: string; answer: string }
  | { kind: 'tools'; thought?: string; calls: RequestedCall[] }
  | { kind: 'invalid'; thought?: string; correction: string };

/** A tool call's outcome, as text for the model. */
export type Observation = { id: string; tool: string; content: string };

/**
 * How tools are offered to a model and how its replies are read: the native Chat Completions
 * `tool_calls`, or the text protocol for models without tool calling.
 */
export interface Protocol {
  /** Whether tools go in the request's `tools` field. */
  readonly nativeTools: boolean;
  systemPrompt(tools: ToolDefinition[]): string;
  decide(reply: ChatReply): Decision;
  /** The reply as it goes into the conversation. */
  assistantMessage(reply: ChatReply): ChatMessage;
  /** One message per tool call, in the order the model asked for them. */
  observationMessages(observations: Observation[]): ChatMessage[];
  correctionMessage(correction: string): ChatMessage;
}
