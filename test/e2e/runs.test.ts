import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { startScriptedModelServer, type ScriptedModelServer } from '@toolplane/agent/testing';
import { ADD_TOOL, api, startPlanner, startWorker, uniquePrefix, type ServiceProcess } from '../support/services.js';
import { pollUntil, waitReady } from '../support/poll.js';
import { readSse } from '../support/sse.js';

const MUL_TOOL = {
  ...ADD_TOOL,
  description: 'Multiplies two numbers',
  code: 'export default async function (args) { return args.a * args.b }',
};

const finished = (run: any): boolean => ['succeeded', 'failed', 'budget_exceeded'].includes(run.status);

async function metricValue(url: string, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = pattern.exec(text);
  return m ? Number(m[1]) : 0;
}

describe('agent runs end to end', () => {
  let llm: ScriptedModelServer;
  let planner: ServiceProcess;
  let worker: ServiceProcess;
  let redis: Redis;
  const prefix = uniquePrefix();
  const env = { REDIS_URL: inject('redisUrl'), TOOLPLANE_PREFIX: prefix };

  const startRun = async (body: Record<string, unknown>) => {
    const res = await api(planner.url, 'POST', '/v1/runs', body);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.id as string;
  };
  const finishedRun = (id: string, base = planner.url) =>
    pollUntil(async () => (await api(base, 'GET', `/v1/runs/${id}`)).body, finished);

  beforeAll(async () => {
    llm = await startScriptedModelServer();
    redis = new Redis(env.REDIS_URL);
    [planner, worker] = await Promise.all([
      startPlanner({
        ...env,
        OPENAI_BASE_URL: llm.baseUrl,
        TOOLPLANE_MODEL: 'no-such-default',
        TOOLPLANE_MODEL_PRICES: JSON.stringify({ priced: { inputUsdPerMTok: 1000, outputUsdPerMTok: 1000 } }),
        LLM_MAX_RETRIES: '2',
      }),
      startWorker(env),
    ]);
    await Promise.all([waitReady(planner.url), waitReady(worker.url)]);
    expect((await api(planner.url, 'PUT', '/v1/tools/add', ADD_TOOL)).status).toBe(201);
    expect((await api(planner.url, 'PUT', '/v1/tools/mul', MUL_TOOL)).status).toBe(201);
  });
  afterAll(async () => {
    await Promise.all([planner?.kill(), worker?.kill()]);
    await llm?.close();
    await redis?.quit();
  });

  test('a 3-step run with 2 parallel tool calls: jobs, metrics, steps, answer and the SSE stream agree', async () => {
    llm.script('three-steps', [
      {
        content: 'I need both products first.',
        toolCalls: [
          { id: 'c1', name: 'add', arguments: { a: 2, b: 3 } },
          { id: 'c2', name: 'mul', arguments: { a: 4, b: 5 } },
        ],
      },
      { toolCalls: [{ id: 'c3', name: 'add', arguments: { a: 5, b: 20 } }] },
      { content: 'The answer is 25.' },
    ]);
    const addBefore = await metricValue(worker.url, /toolplane_tool_calls_total\{tool="add",outcome="success"\} (\d+)/);
    const mulBefore = await metricValue(worker.url, /toolplane_tool_calls_total\{tool="mul",outcome="success"\} (\d+)/);

    const id = await startRun({ input: 'What is (2+3) + 4*5?', model: 'three-steps', tools: ['add', 'mul'] });
    const live = readSse(`${planner.url}/v1/runs/${id}/events`, { until: 'finished' });
    const run = await finishedRun(id);

    expect(run).toMatchObject({ id, status: 'succeeded', finalAnswer: 'The answer is 25.', model: 'three-steps' });
    expect(run.steps).toHaveLength(3);
    const [first, second, third] = run.steps;
    expect(first).toMatchObject({ index: 0, thought: 'I need both products first.' });
    expect(first.toolCalls).toMatchObject([
      { id: 'c1', tool: 'add', arguments: { a: 2, b: 3 }, status: 'succeeded', result: 5 },
      { id: 'c2', tool: 'mul', arguments: { a: 4, b: 5 }, status: 'succeeded', result: 20 },
    ]);
    expect(second.toolCalls).toMatchObject([{ id: 'c3', tool: 'add', status: 'succeeded', result: 25 }]);
    expect(third).toMatchObject({ index: 2, finalAnswer: 'The answer is 25.', toolCalls: [] });
    expect(run.usage.modelCalls).toBe(3);
    expect(run.usage.totalTokens).toBe(run.usage.promptTokens + run.usage.completionTokens);
    expect(run.usage.promptTokens).toBeGreaterThan(0);

    // Every tool call is a BullMQ job on its tool's queue, visible through the calls API too.
    const callIds = [...first.toolCalls, ...second.toolCalls].map((c: { callId: string }) => c.callId);
    expect(new Set(callIds).size).toBe(3);
    const queues = { add: new Queue('{add}', { connection: redis, prefix }), mul: new Queue('{mul}', { connection: redis, prefix }) };
    const tools = ['add', 'mul', 'add'] as const;
    for (const [i, callId] of callIds.entries()) {
      const job = await queues[tools[i]!].getJob(callId);
      expect(job?.returnvalue).toMatchObject({ result: [5, 20, 25][i] });
      expect((await api(planner.url, 'GET', `/v1/calls/${callId}`)).body).toMatchObject({ status: 'succeeded' });
    }
    await Promise.all(Object.values(queues).map((q) => q.close()));
    expect(await metricValue(worker.url, /toolplane_tool_calls_total\{tool="add",outcome="success"\} (\d+)/)).toBe(addBefore + 2);
    expect(await metricValue(worker.url, /toolplane_tool_calls_total\{tool="mul",outcome="success"\} (\d+)/)).toBe(mulBefore + 1);

    // Each result went back to the model as its own tool message.
    const secondRequest = llm.requests('three-steps')[1]!;
    expect(secondRequest.messages.filter((m) => m.role === 'tool')).toEqual([
      { role: 'tool', tool_call_id: 'c1', content: '5' },
      { role: 'tool', tool_call_id: 'c2', content: '20' },
    ]);
    expect(secondRequest.tools).toHaveLength(2);

    // The live stream and a replay after the end deliver the same steps in order.
    for (const events of [await live, await readSse(`${planner.url}/v1/runs/${id}/events`, { until: 'finished' })]) {
      expect(events.filter((e) => e.event === 'step').map((e) => e.data.step)).toEqual(run.steps);
      expect(events.at(-1)).toMatchObject({ event: 'finished', data: { run: { status: 'succeeded', finalAnswer: 'The answer is 25.' } } });
      const ids = events.map((e) => e.id!);
      expect([...ids].sort((a, b) => Number(a.split('-')[0]) - Number(b.split('-')[0]) || Number(a.split('-')[1]) - Number(b.split('-')[1]))).toEqual(ids);
    }
  });

  test('arguments that break the schema go back to the model as an error, not a crash', async () => {
    llm.script('bad-args', [
      { toolCalls: [{ id: 'x', name: 'add', arguments: { a: 'two' } }, { id: 'y', name: 'add', arguments: '{not json' }] },
      { content: 'Sorry, I could not add.' },
    ]);
    const run = await finishedRun(await startRun({ input: 'add', model: 'bad-args' }));
    expect(run.status).toBe('succeeded');
    expect(run.steps[0].toolCalls).toMatchObject([
      { id: 'x', status: 'failed', error: { code: 'INVALID_ARGUMENTS' } },
      { id: 'y', status: 'failed', error: { code: 'INVALID_ARGUMENTS', message: 'arguments are not valid JSON' } },
    ]);
    expect(run.steps[0].toolCalls[0].callId).toBeUndefined();
    const toolMessages = llm.requests('bad-args')[1]!.messages.filter((m) => m.role === 'tool');
    expect(toolMessages.map((m) => m.content)).toEqual([expect.stringMatching(/^ERROR INVALID_ARGUMENTS: .*must be number/), expect.stringMatching(/^ERROR INVALID_ARGUMENTS/)]);
  });

  test('a text-protocol model reaches a final answer, with one malformed reply corrected', async () => {
    llm.script('text-model', [
      { content: 'Hmm, let me see. Probably I should use a tool?' },
      { content: 'Thought: I will add the numbers\nAction: add\nInput: {\n  "a": 2,\n  "b": 2\n}' },
      { content: 'Thought: I know it now\nFinal Answer: 2 + 2 = 4' },
    ]);
    const run = await finishedRun(await startRun({ input: 'What is 2 + 2?', model: 'text-model', protocol: 'text' }));
    expect(run).toMatchObject({ status: 'succeeded', finalAnswer: '2 + 2 = 4' });
    expect(run.steps[0].correction).toMatch(/could not be used/);
    expect(run.steps[1]).toMatchObject({ thought: 'I will add the numbers', toolCalls: [{ tool: 'add', result: 4, status: 'succeeded' }] });
    const requests = llm.requests('text-model');
    expect(requests[0]!.tools).toBeUndefined();
    expect(requests[0]!.messages[0]!.content).toContain('Final Answer:');
    expect(requests[1]!.messages.at(-1)).toMatchObject({ role: 'user', content: expect.stringMatching(/could not be used/) });
    expect(requests[2]!.messages.at(-1)).toMatchObject({ role: 'user', content: 'Observation (call_1, add): 4' });
  });

  test('429 and 5xx answers of the model endpoint are retried; a 400 fails the run with LLM_ERROR', async () => {
    llm.script('flaky', [{ failWith: [429, 503], content: 'fine after all' }]);
    const ok = await finishedRun(await startRun({ input: 'hi', model: 'flaky' }));
    expect(ok).toMatchObject({ status: 'succeeded', finalAnswer: 'fine after all' });
    expect(llm.requests('flaky')).toHaveLength(3);

    llm.script('broken', [{ failWith: [400], content: 'never' }]);
    const bad = await finishedRun(await startRun({ input: 'hi', model: 'broken' }));
    expect(bad).toMatchObject({ status: 'failed', error: { code: 'LLM_ERROR' } });
  });

  describe('budgets end a run with budget_exceeded and keep what it had', () => {
    const looping = Array.from({ length: 5 }, (_, i) => ({ toolCalls: [{ name: 'add', arguments: { a: i, b: 1 } }] }));

    test('max iterations', async () => {
      llm.script('loop', looping);
      const run = await finishedRun(await startRun({ input: 'loop', model: 'loop', maxIterations: 2 }));
      expect(run).toMatchObject({ status: 'budget_exceeded', budgetExceeded: { kind: 'iterations', limit: 2, used: 2 } });
      expect(run.steps.map((s: any) => s.toolCalls[0].result)).toEqual([1, 2]);
    });

    test('tokens', async () => {
      llm.script('hungry', [{ ...looping[0]!, usage: { promptTokens: 800, completionTokens: 10 } }, { content: 'never' }]);
      const run = await finishedRun(await startRun({ input: 'x', model: 'hungry', budget: { maxTokens: 500 } }));
      expect(run).toMatchObject({ status: 'budget_exceeded', budgetExceeded: { kind: 'tokens', limit: 500, used: 810 } });
      expect(run.steps).toHaveLength(1);
      expect(run.usage.totalTokens).toBe(810);
    });

    test('cost, by the configured price table', async () => {
      llm.script('priced', [{ ...looping[0]!, usage: { promptTokens: 1000, completionTokens: 0 } }, { content: 'never' }]);
      const run = await finishedRun(await startRun({ input: 'x', model: 'priced', budget: { maxCostUsd: 0.5 } }));
      expect(run).toMatchObject({ status: 'budget_exceeded', budgetExceeded: { kind: 'cost', limit: 0.5, used: 1 } });
      expect(run.usage.costUsd).toBe(1);
      const unpriced = await api(planner.url, 'POST', '/v1/runs', { input: 'x', model: 'loop', budget: { maxCostUsd: 1 } });
      expect([unpriced.status, unpriced.body.error.code]).toEqual([400, 'INVALID_REQUEST']);
    });

    test('wall-clock deadline, even while the model is still thinking', async () => {
      llm.script('slow', [looping[0]!, { delayMs: 10_000, content: 'too late' }]);
      const startedAt = Date.now();
      const run = await finishedRun(await startRun({ input: 'x', model: 'slow', budget: { deadlineMs: 1_000 } }));
      expect(Date.now() - startedAt).toBeLessThan(8_000);
      expect(run).toMatchObject({ status: 'budget_exceeded', budgetExceeded: { kind: 'deadline', limit: 1_000 } });
      expect(run.steps).toHaveLength(1);
      expect(run.steps[0].toolCalls[0]).toMatchObject({ status: 'succeeded', result: 1 });
    });
  });

  test('runs of one session remember each other through session memory', async () => {
    llm.script('memory-1', [{ content: 'Noted: your favourite number is 7.' }]);
    llm.script('memory-2', [{ content: 'It is 7.' }]);
    const session = `s-${Date.now()}`;
    expect((await finishedRun(await startRun({ input: 'My favourite number is 7.', model: 'memory-1', sessionId: session }))).status).toBe('succeeded');
    expect((await finishedRun(await startRun({ input: 'What is my favourite number?', model: 'memory-2', sessionId: session }))).status).toBe('succeeded');
    const context = llm.requests('memory-2')[0]!.messages.find((m) => m.role === 'system' && m.content?.includes('remember'));
    expect(context?.content).toContain('- user: My favourite number is 7.');
    expect(context?.content).toContain('- assistant: Noted: your favourite number is 7.');
    expect(llm.requests('memory-1')[0]!.messages.filter((m) => m.role === 'system')).toHaveLength(1);
  });

  test('bad run requests get stable codes', async () => {
    const cases: Array<[unknown, number, string]> = [
      [{}, 400, 'INVALID_REQUEST'],
      [{ input: 'x', bogus: 1 }, 400, 'INVALID_REQUEST'],
      [{ input: 'x', maxIterations: 0 }, 400, 'INVALID_REQUEST'],
      [{ input: 'x', budget: { deadlineMs: -1 } }, 400, 'INVALID_REQUEST'],
      [{ input: 'x', tools: ['nope'] }, 404, 'TOOL_NOT_FOUND'],
      ['{"input":', 400, 'INVALID_JSON'],
    ];
    for (const [body, status, code] of cases) {
      const res = await api(planner.url, 'POST', '/v1/runs', body);
      expect([res.status, res.body.error.code], JSON.stringify(body)).toEqual([status, code]);
    }
    for (const path of ['/v1/runs/01m8h8bdenf6x3nad0cg33tk8p', '/v1/runs/nope', '/v1/runs/01m8h8bdenf6x3nad0cg33tk8p/events']) {
      const res = await api(planner.url, 'GET', path);
      expect([res.status, res.body.error.code]).toEqual([404, 'NOT_FOUND']);
    }
    expect((await api(planner.url, 'GET', '/healthz')).status).toBe(200);
  });
});
