import type { ChatMessage, ChatToolCall } from '../types.js';

/** A tool as the model sees it (the `function` of a Chat Completions tool). */
export type ToolDefinition = { name: string; description: string; parameters: Record<string, unknown> };

export type ChatRequest = {
  model: string;
  messages: ChatMessage[];
  /** Offered as native `tools`; left out for the text protocol. */
  tools?: ToolDefinition[];
};

export type ChatReply = {
  content: string | null;
  toolCalls: ChatToolCall[];
  usage: { promptTokens: number; completionTokens: number };
  finishReason: string | null;
};

/** One interface for every model endpoint, so the run loop never knows which one it talks to. */
export interface LlmCaller {
  chat(request: ChatRequest, signal: AbortSignal): Promise<ChatReply>;
}

/** The model endpoint failed for good (after retries) or answered something unusable. */
export class LlmError extends Error {
  override readonly name = 'LlmError';
  readonly code = 'LLM_ERROR';
  constructor(
    message: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
