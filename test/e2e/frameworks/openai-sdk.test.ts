import OpenAI from 'openai';
import type { ChatCompletionMessageParam, ChatCompletionTool } from 'openai/resources/chat/completions';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { ADD_TOOL, callToolThenAnswer, expectOneCall, startFrameworkStack, type FrameworkStack } from './stack.js';

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

  test('the listed tools go to chat.completions as they are; its tool calls run through POST /v1/calls', async () => {
    const args = { a: 1618, b: 1414 };
    stack.llm.script('openai-model', callToolThenAnswer(stack.tool, args));

    // The recipe in the README, as a user writes it.
    const toolplane = (path: string, init: RequestInit = {}): Promise<any> =>
      fetch(`${stack.url}${path}`, {
        ...init,
        headers: { authorization: `Bearer ${stack.apiKey}`, 'content-type': 'application/json' },
      }).then((r) => r.json());
    const openai = new OpenAI({ baseURL: stack.llm.baseUrl, apiKey: 'unused' });
    const tools: ChatCompletionTool[] = await toolplane('/v1/tools?format=openai');
    const messages: ChatCompletionMessageParam[] = [{ role: 'user', content: 'What is 1618 + 1414?' }];
    for (;;) {
      const { message } = (await openai.chat.completions.create({ model: 'openai-model', messages, tools })).choices[0]!;
      messages.push(message);
      if (!message.tool_calls?.length) break;
      for (const tc of message.tool_calls) {
        if (tc.type !== 'function') continue;
        const done = await toolplane('/v1/calls', {
          method: 'POST',
          body: JSON.stringify({ tool: tc.function.name, arguments: JSON.parse(tc.function.arguments), wait: true }),
        });
        const content = JSON.stringify(done.status === 'succeeded' ? done.result : done.error);
        messages.push({ role: 'tool', tool_call_id: tc.id, content });
      }
    }

    expect(messages.at(-1)).toMatchObject({ role: 'assistant', content: 'The tool said: 3032' });
    // The model got Toolplane's list unchanged, as its `tools`.
    const [first] = stack.llm.requests('openai-model');
    expect(first!.tools).toEqual([
      { type: 'function', function: { name: stack.tool, description: ADD_TOOL.description, parameters: ADD_TOOL.parameters } },
    ]);
    expect(first!.tools).toEqual(tools);
    await expectOneCall(stack, args, 3032);
  });
});
