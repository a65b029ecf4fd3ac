import OpenAI from 'openai';
import type { ChatCompletionMessageParam, ChatCompletionTool } from 'openai/resources/chat/completions';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { ADD_TOOL, DIVIDE_TOOL, callToolThenAnswer, expectOneCall, startFrameworkStack, type FrameworkStack } from './stack.js';

describe('OpenAI Node SDK tool calling fed by GET /v1/tools?format=openai', () => {
  let stack: FrameworkStack;

  beforeAll(async () => {
    stack = await startFrameworkStack('openai_add');
  });
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') stack.dumpOutput();
  });
  afterAll(async () => {
    await stack?.close();
  });

  /**
   * The recipe in the README, as a user writes it: Toolplane's list as `tools`, each tool call run by
   * POST /v1/calls and its result (or error: a refused request's or a failed call's) sent back.
   */
  async function chatWithToolplane(model: string, prompt: string) {
    const toolplane = (path: string, init: RequestInit = {}): Promise<any> =>
      fetch(`${stack.url}${path}`, {
        ...init,
        headers: { authorization: `Bearer ${stack.apiKey}`, 'content-type': 'application/json' },
      }).then((r) => r.json());
    const openai = new OpenAI({ baseURL: stack.llm.baseUrl, apiKey: 'unused' });
    const tools: ChatCompletionTool[] = await toolplane('/v1/tools?format=openai');
    const messages: ChatCompletionMessageParam[] = [{ role: 'user', content: prompt }];
    for (;;) {
      const { message } = (await openai.chat.completions.create({ model, messages, tools })).choices[0]!;
      messages.push(message);
      if (!message.tool_calls?.length) break;
      for (const tc of message.tool_calls) {
        if (tc.type !== 'function') continue;
        const call = await toolplane('/v1/calls', {
          method: 'POST',
          body: JSON.stringify({ tool: tc.function.name, arguments: JSON.parse(tc.function.arguments), wait: true }),
        });
        const content = JSON.stringify(call.status === 'succeeded' ? call.result : call.error);
        messages.push({ role: 'tool', tool_call_id: tc.id, content });
      }
    }
    return { tools, messages };
  }

  test('the listed tools go to chat.completions as they are; its tool calls run through POST /v1/calls', async () => {
    const args = { a: 1618, b: 1414 };
    stack.llm.script('openai-model', callToolThenAnswer(stack.tool, args));
    const { tools, messages } = await chatWithToolplane('openai-model', 'What is 1618 + 1414?');

    expect(messages.at(-1)).toMatchObject({ role: 'assistant', content: 'The tool said: 3032' });
    // The model got Toolplane's list unchanged, as its `tools`.
    const [first] = stack.llm.requests('openai-model');
    expect(tools).toContainEqual({
      type: 'function',
      function: { name: stack.tool, description: ADD_TOOL.description, parameters: ADD_TOOL.parameters },
    });
    expect(first!.tools).toEqual(tools);
    await expectOneCall(stack, args, { result: 3032 });
  });

  test('arguments Toolplane refuses and a failed call both reach the model as errors with their codes', async () => {
    const divide = `${stack.tool}_div`;
    expect((await stack.call('PUT', `/v1/tools/${divide}`, DIVIDE_TOOL)).status).toBe(201);
    stack.llm.script('openai-errors', [
      { toolCalls: [{ id: 'call_1', name: stack.tool, arguments: { a: 'two', b: 1 } }] },
      { toolCalls: [{ id: 'call_2', name: divide, arguments: { a: 1, b: 0 } }] },
      { content: 'I could not compute it.' },
    ]);
    const { messages } = await chatWithToolplane('openai-errors', 'What is two + 1, and 1 / 0?');

    const results = messages.filter((m) => m.role === 'tool').map((m) => JSON.parse(m.content as string));
    expect(results).toEqual([
      expect.objectContaining({ code: 'INVALID_ARGUMENTS' }),
      expect.objectContaining({ code: 'TOOL_ERROR', message: expect.stringContaining('division by zero') }),
    ]);
    // Refused arguments never became a call; the failed one is in the audit trail.
    expect((await stack.call('GET', `/v1/calls?tool=${stack.tool}&status=failed`)).body.calls).toEqual([]);
    await expectOneCall(stack, { a: 1, b: 0 }, { status: 'failed', error: { code: 'TOOL_ERROR' } }, divide);
  });
});
