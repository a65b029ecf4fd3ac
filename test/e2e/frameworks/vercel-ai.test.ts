import { createMCPClient, type MCPClient } from '@ai-sdk/mcp';
import { createOpenAI } from '@ai-sdk/openai';
import { generateText, isStepCount } from 'ai';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { ADD_TOOL, DIVIDE_TOOL, callToolThenAnswer, expectOneCall, startFrameworkStack, type FrameworkStack } from './stack.js';

describe('Vercel AI SDK with its tools from Toolplane /mcp', () => {
  let stack: FrameworkStack;
  let mcp: MCPClient | undefined;
  // `.chat`: the scripted server speaks Chat Completions (the provider's default is the Responses API).
  const model = (name: string) => createOpenAI({ baseURL: stack.llm.baseUrl, apiKey: 'unused' }).chat(name);

  beforeAll(async () => {
    stack = await startFrameworkStack('vercel_add');
    // The recipe in the README, as a user writes it.
    mcp = await createMCPClient({
      transport: { type: 'http', url: `${stack.url}/mcp`, headers: { authorization: `Bearer ${stack.apiKey}` } },
    });
  });
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') stack.dumpOutput();
  });
  afterAll(async () => {
    await mcp?.close();
    await stack?.close();
  });

  test('generateText gets the tool from the MCP client, calls it through the queue and answers with its result', async () => {
    const args = { a: 2718, b: 3141 };
    stack.llm.script('vercel-model', callToolThenAnswer(stack.tool, args));

    const { text, steps } = await generateText({
      model: model('vercel-model'),
      tools: await mcp!.tools(),
      stopWhen: isStepCount(5),
      prompt: 'What is 2718 + 3141?',
    });

    // The AI SDK hands the model the MCP content parts as JSON: the result is inside, not alone.
    expect(text).toMatch(/^The tool said: .*\b5859\b/);
    expect(steps.flatMap((s) => s.toolCalls.map((c) => [c.toolName, c.input]))).toEqual([[stack.tool, args]]);
    // The model was offered the tool as Toolplane describes it, and was sent back its result.
    const [first, second] = stack.llm.requests('vercel-model');
    expect(first!.tools).toContainEqual({
      type: 'function',
      function: expect.objectContaining({ name: stack.tool, description: ADD_TOOL.description }),
    });
    expect(second!.messages.at(-1)).toMatchObject({ role: 'tool', tool_call_id: 'call_1' });
    await expectOneCall(stack, args, { result: 5859 });
  });

  test('a failed call reaches the model as a tool error with its code, and generateText goes on', async () => {
    const divide = `${stack.tool}_div`;
    expect((await stack.call('PUT', `/v1/tools/${divide}`, DIVIDE_TOOL)).status).toBe(201);
    stack.llm.script('vercel-fail', callToolThenAnswer(divide, { a: 1, b: 0 }));
    const { text } = await generateText({
      model: model('vercel-fail'),
      tools: await mcp!.tools(),
      stopWhen: isStepCount(5),
      prompt: 'What is 1 / 0?',
    });

    expect(text).toMatch(/^The tool said: .*TOOL_ERROR: .*division by zero/);
    await expectOneCall(stack, { a: 1, b: 0 }, { status: 'failed', error: { code: 'TOOL_ERROR' } }, divide);
  });
});
