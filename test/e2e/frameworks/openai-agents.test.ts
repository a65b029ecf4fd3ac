import { Agent, MCPServerStreamableHttp, OpenAIChatCompletionsModel, run, setTracingDisabled } from '@openai/agents';
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { ADD_TOOL, DIVIDE_TOOL, callToolThenAnswer, expectOneCall, startFrameworkStack, type FrameworkStack } from './stack.js';

// Traces would go to OpenAI's platform; these tests reach nothing but this machine.
setTracingDisabled(true);

describe('OpenAI Agents SDK with its tools from Toolplane /mcp', () => {
  let stack: FrameworkStack;
  let mcp: MCPServerStreamableHttp | undefined;
  const model = (name: string) => new OpenAIChatCompletionsModel(new OpenAI({ baseURL: stack.llm.baseUrl, apiKey: 'unused' }), name);

  beforeAll(async () => {
    stack = await startFrameworkStack('agents_add');
    // The recipe in the README, as a user writes it.
    mcp = new MCPServerStreamableHttp({
      url: `${stack.url}/mcp`,
      name: 'toolplane',
      requestInit: { headers: { authorization: `Bearer ${stack.apiKey}` } },
    });
    await mcp.connect();
  });
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') stack.dumpOutput();
  });
  afterAll(async () => {
    await mcp?.close();
    await stack?.close();
  });

  test('an agent lists the tool over MCP, calls it through the queue and answers with its result', async () => {
    const args = { a: 1234, b: 4321 };
    stack.llm.script('agents-model', callToolThenAnswer(stack.tool, args));

    // Chat Completions: the scripted server's protocol (the SDK's default is the Responses API).
    const agent = new Agent({
      name: 'calculator',
      instructions: 'Use the tools to compute.',
      model: model('agents-model'),
      mcpServers: [mcp!],
    });
    const result = await run(agent, 'What is 1234 + 4321?');

    expect(result.finalOutput).toBe('The tool said: 5555');
    // The model was offered the tool as Toolplane describes it.
    const [first, second] = stack.llm.requests('agents-model');
    expect(first!.tools).toContainEqual({
      type: 'function',
      function: expect.objectContaining({ name: stack.tool, description: ADD_TOOL.description }),
    });
    // … and was sent back the result of the one call Toolplane ran.
    expect(second!.messages.at(-1)).toMatchObject({ role: 'tool', tool_call_id: 'call_1' });
    await expectOneCall(stack, args, { result: 5555 });
  });

  test('a failed call reaches the agent as a tool error with its code, and the agent goes on', async () => {
    const divide = `${stack.tool}_div`;
    expect((await stack.call('PUT', `/v1/tools/${divide}`, DIVIDE_TOOL)).status).toBe(201);
    stack.llm.script('agents-fail', callToolThenAnswer(divide, { a: 1, b: 0 }));
    const agent = new Agent({ name: 'calculator', model: model('agents-fail'), mcpServers: [mcp!] });
    const result = await run(agent, 'What is 1 / 0?');

    expect(result.finalOutput).toMatch(/^The tool said: .*TOOL_ERROR: .*division by zero/);
    await expectOneCall(stack, { a: 1, b: 0 }, { status: 'failed', error: { code: 'TOOL_ERROR' } }, divide);
  });
});
