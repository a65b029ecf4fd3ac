import { setTimeout as sleep } from 'node:timers/promises';
import { countMessageTokens, countTokens } from '../tokens.js';
import type { ChatToolCall } from '../types.js';
import { LlmError, type ChatReply, type ChatRequest, type LlmCaller } from './llm-caller.js';

export type ChatCompletionsOptions = {
  /** e.g. `https://api.openai.com/v1`; `/chat/completions` is appended. */
  baseUrl: string;
  apiKey?: string;
  /**
   * Per attempt; a model that streams nothing for this long is retried.
   * @default 60_000
   */
  timeoutMs?: number;
  /**
   * Attempts after the first on 429, 5xx, timeouts and network errors.
   * @default 3
   */
  maxRetries?: number;
  /**
   * First backoff; doubles each retry, with jitter. A `Retry-After` header wins, up to 30 s.
   * @default 500
   */
  retryBaseMs?: number;
};

const MAX_RETRY_AFTER_MS = 30_000;

type WireReply = {
  choices?: Array<{
    message?: { content?: string | null; tool_calls?: Array<{ id?: string; function?: { name?: string; arguments?: string } }> };
    finish_reason?: string | null;
  }>;
  usage?: { prompt_tokens?: number; completion_tokens?: number };
};

/** Any OpenAI-compatible Chat Completions endpoint, with retries on 429/5xx and a timeout per attempt. */
export class ChatCompletionsCaller implements LlmCaller {
  private readonly url: string;
  private readonly timeoutMs: number;
  private readonly maxRetries: number;
  private readonly retryBaseMs: number;

  constructor(private readonly opts: ChatCompletionsOptions) {
    this.url = `${opts.baseUrl.replace(/\/+$/, '')}/chat/completions`;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.maxRetries = opts.maxRetries ?? 3;
    this.retryBaseMs = opts.retryBaseMs ?? 500;
  }

  async chat(request: ChatRequest, signal: AbortSignal): Promise<ChatReply> {
    const body = JSON.stringify({
      model: request.model,
      messages: request.messages,
      ...(request.tools?.length
        ? { tools: request.tools.map((t) => ({ type: 'function', function: t })), parallel_tool_calls: true }
        : {}),
    });
    for (let attempt = 0; ; attempt++) {
      signal.throwIfAborted();
      let retryAfterMs: number | undefined;
      let failure: LlmError;
      try {
        const res = await fetch(this.url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            ...(this.opts.apiKey ? { authorization: `Bearer ${this.opts.apiKey}` } : {}),
          },
          body,
          signal: AbortSignal.any([signal, AbortSignal.timeout(this.timeoutMs)]),
        });
        const text = await res.text();
        if (res.ok) return this.decode(text, request);
        failure = new LlmError(`model endpoint answered ${res.status}: ${text.slice(0, 300)}`, res.status);
        if (!(res.status === 429 || res.status >= 500)) throw failure;
        retryAfterMs = parseRetryAfter(res.headers.get('retry-after'));
      } catch (err: unknown) {
        if (signal.aborted) throw signal.reason;
        if (err instanceof LlmError && (err.status === undefined || !(err.status === 429 || err.status >= 500))) throw err;
        failure =
          err instanceof LlmError
            ? err
            : new LlmError(`model endpoint unreachable: ${(err as Error).message}`, undefined, { cause: err });
      }
      if (attempt >= this.maxRetries) throw failure;
      const backoff = retryAfterMs ?? this.retryBaseMs * 2 ** attempt * (0.5 + Math.random() / 2);
      await sleep(Math.min(backoff, MAX_RETRY_AFTER_MS), undefined, { signal });
    }
  }

  private decode(text: string, request: ChatRequest): ChatReply {
    let wire: WireReply;
    try {
      wire = JSON.parse(text) as WireReply;
    } catch (err: unknown) {
      throw new LlmError('model endpoint answered something that is not JSON', undefined, { cause: err });
    }
    const choice = wire.choices?.[0];
    if (!choice?.message) throw new LlmError('model reply has no choices[0].message');
    const toolCalls: ChatToolCall[] = (choice.message.tool_calls ?? []).map((c, i) => ({
      id: c.id || `call_${i}`,
      type: 'function',
      function: { name: c.function?.name ?? '', arguments: c.function?.arguments ?? '' },
    }));
    const content = choice.message.content ?? null;
    // Endpoints that leave out `usage` still count against token budgets: measure what was sent.
    const usage = {
      promptTokens: wire.usage?.prompt_tokens ?? countMessageTokens(request.messages),
      completionTokens:
        wire.usage?.completion_tokens ??
        countTokens(content ?? '') + toolCalls.reduce((n, c) => n + countTokens(c.function.arguments), 0),
    };
    return { content, toolCalls, usage, finishReason: choice.finish_reason ?? null };
  }
}

function parseRetryAfter(header: string | null): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}
