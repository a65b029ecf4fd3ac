import { Agent, MCPServerStreamableHttp, OpenAIChatCompletionsModel, run, setTracingDisabled } from '@openai/agents';
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { ADD_TOOL, callToolThenAnswer, expectOneCall, startFrameworkStack, type FrameworkStack } from './stack.js';

// Traces would go to OpenAI's platform; these tests reach nothing but this machine.
setTracingDisabled(true);

describe('OpenAI Agents SDK with its tools from Toolplane /mcp', () => {
  let stack: FrameworkStack;
  let mcp: MCPServerStreamableHttp | undefined;

  beforeAll(async () => {
    stack = await startFrameworkStack('agents_add');
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

    // The recipe in the README, as a user writes it (chat completions: the scripted server's protocol).
    mcp = new MCPServerStreamableHttp({
      url: `${stack.url}/mcp`,
      name: 'toolplane',
      requestInit: { headers: { authorization: `Bearer ${stack.apiKey}` } },
    });
    await mcp.connect();
    const openai = new OpenAI({ baseURL: stack.llm.baseUrl, apiKey: 'unused' });
    const agent = new Agent({
      name: 'calculator',
      instructions: 'Use the tools to compute.',
      model: new OpenAIChatCompletionsModel(openai, 'agents-model'),
      mcpServers: [mcp],
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
    expect(second!.messages.at(-1)).toMatchObject({ role: 'tool', tool_call_id: 'call_add_1' });
    await expectOneCall(stack, args, 5555);
  });
});
