import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startScriptedModelServer, type ScriptedModelServer } from '../testing/index.js';
import { ChatCompletionsCaller } from './chat-completions.js';
import { LlmError } from './llm-caller.js';

describe('ChatCompletionsCaller against a real HTTP server', () => {
  let llm: ScriptedModelServer;
  const messages = [{ role: 'user' as const, content: 'hi' }];

  beforeAll(async () => {
    llm = await startScriptedModelServer();
  });
  afterAll(() => llm.close());

  test('decodes native tool calls and the reported usage', async () => {
    llm.script('tools', [{ toolCalls: [{ id: 't1', name: 'add', arguments: { a: 1 } }], usage: { promptTokens: 7, completionTokens: 3 } }]);
    const caller = new ChatCompletionsCaller({ baseUrl: llm.baseUrl, apiKey: 'sk-test' });
    const reply = await caller.chat({ model: 'tools', messages, tools: [{ name: 'add', description: 'adds', parameters: { type: 'object' } }] }, new AbortController().signal);
    expect(reply).toEqual({
      content: null,
      toolCalls: [{ id: 't1', type: 'function', function: { name: 'add', arguments: '{"a":1}' } }],
      usage: { promptTokens: 7, completionTokens: 3 },
      finishReason: 'tool_calls',
    });
    expect(llm.requests('tools')[0]!.tools).toEqual([{ type: 'function', function: { name: 'add', description: 'adds', parameters: { type: 'object' } } }]);
  });

  test('an attempt that takes longer than the timeout is retried, then fails with LLM_ERROR', async () => {
    llm.script('slow', [{ delayMs: 2_000, content: 'late' }]);
    const caller = new ChatCompletionsCaller({ baseUrl: llm.baseUrl, timeoutMs: 150, maxRetries: 1, retryBaseMs: 10 });
    const startedAt = Date.now();
    const err = await caller.chat({ model: 'slow', messages }, new AbortController().signal).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LlmError);
    expect((err as LlmError).code).toBe('LLM_ERROR');
    expect(Date.now() - startedAt).toBeLessThan(1_500);
    expect(llm.requests('slow')).toHaveLength(2);
  });

  test('4xx other than 429 is not retried', async () => {
    const caller = new ChatCompletionsCaller({ baseUrl: llm.baseUrl, retryBaseMs: 10 });
    const err = await caller.chat({ model: 'unknown-model', messages }, new AbortController().signal).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'LlmError', status: 404 });
  });
});
