import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { Redis } from 'ioredis';
import { startScriptedModelServer, type ReceivedRequest, type ScriptedModelServer, type ScriptedTurn } from '@toolplane/agent/testing';
import { ADD_TOOL, api, startPlanner, startWorker, uniquePrefix, type ServiceProcess } from '../support/services.js';
import { pollUntil, waitReady } from '../support/poll.js';
import { readSse } from '../support/sse.js';

/** How long `slow_add` takes: the latency the plan must overlap. */
const LATENCY_MS = 300;

const finished = (run: any): boolean => ['succeeded', 'failed', 'budget_exceeded'].includes(run.status);

/** The JSON the planner sent back for the last `submit_plan` (plan mode) or the tool messages (react). */
function lastPlanResults(req: ReceivedRequest): Record<string, any> {
  const msg = req.messages.filter((m) => m.role === 'tool').at(-1) as { content: string };
  const out = JSON.parse(msg.content) as { steps: Array<{ id: string; result?: unknown }> };
  return Object.fromEntries(out.steps.map((s) => [s.id, s.result]));
}
const toolResults = (req: ReceivedRequest) => req.messages.filter((m) => m.role === 'tool').map((m) => JSON.parse((m as { content: string }).content) as number);

describe('plan-mode runs end to end', () => {
  let llm: ScriptedModelServer;
  let planner: ServiceProcess;
  let workers: ServiceProcess[];
  let redis: Redis;
  let delay: Server;
  const prefix = uniquePrefix();
  const env = { REDIS_URL: inject('redisUrl'), TOOLPLANE_PREFIX: prefix };

  const startRun = async (body: Record<string, unknown>) => {
    const res = await api(planner.url, 'POST', '/v1/runs', body);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.id as string;
  };
  const finishedRun = (id: string) => pollUntil(async () => (await api(planner.url, 'GET', `/v1/runs/${id}`)).body, finished, 30_000);

  beforeAll(async () => {
    // The downstream that makes slow_add slow: answers after ?ms=.
    delay = createServer((req, res) => {
      const ms = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('ms') ?? 0);
      setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'), ms);
    }).listen(0, '127.0.0.1');
    await new Promise((r) => delay.once('listening', r));
    const port = (delay.address() as AddressInfo).port;
    llm = await startScriptedModelServer();
    redis = new Redis(env.REDIS_URL);
    const [p, ...w] = await Promise.all([
      startPlanner({ ...env, OPENAI_BASE_URL: llm.baseUrl, TOOLPLANE_MODEL: 'no-such-default' }),
      startWorker(env),
      startWorker(env),
    ]);
    planner = p!;
    workers = w;
    await Promise.all([planner, ...workers].map((s) => waitReady(s.url)));
    const put = (name: string, body: unknown) => api(planner.url, 'PUT', `/v1/tools/${name}`, body);
    const results = await Promise.all([
      put('add', ADD_TOOL),
      put('slow_add', {
        ...ADD_TOOL,
        description: `Adds two numbers, slowly (${LATENCY_MS} ms)`,
        code: `export default async function (args, ctx) { await ctx.fetch('http://127.0.0.1:${port}/?ms=${LATENCY_MS}'); return args.a + args.b }`,
        egress: [`127.0.0.1:${port}`],
      }),
      put('fail', { ...ADD_TOOL, description: 'Always fails', code: 'export default async function () { throw new Error("broken on purpose") }', retries: { attempts: 1, backoffMs: 0 } }),
      put('off_tool', { ...ADD_TOOL, description: 'Disabled by an operator', enabled: false }),
      put('tripped', { ...ADD_TOOL, description: 'Its breaker is open' }),
      put('held', { ...ADD_TOOL, description: 'A downstream asked it to wait' }),
    ]);
    expect(results.map((r) => r.status)).toEqual([201, 201, 201, 201, 201, 201]);
    // An open breaker and a Retry-After hold, as the workers set them fleet-wide.
    await redis.set(`${prefix}:{tripped}:breaker:open`, '1', 'PX', 60_000);
    await redis.set(`${prefix}:{held}:rl:hold`, '1', 'PX', 60_000);
  });
  afterAll(async () => {
    await Promise.all([planner?.kill(), ...(workers ?? []).map((w) => w.kill())]);
    await llm?.close();
    await redis?.quit();
    await new Promise((r) => delay?.close(r));
  });

  test('two slow calls overlap and a third adds them: about two tool latencies and 2 model calls; react needs 3', async () => {
    llm.script('plan-fan', [
      {
        toolCalls: [
          {
            id: 'p1',
            name: 'submit_plan',
            arguments: {
              steps: [
                { id: 's1', tool: 'slow_add', arguments: { a: 2, b: 3 } },
                { id: 's2', tool: 'slow_add', arguments: { a: 4, b: 5 } },
                { id: 's3', tool: 'slow_add', arguments: { a: { $ref: 's1' }, b: { $ref: 's2' } } },
              ],
            },
          },
        ],
      },
      (req) => ({ content: `The answer is ${lastPlanResults(req).s3}.` }),
    ]);
    llm.script('react-fan', [
      { toolCalls: [{ id: 'c1', name: 'slow_add', arguments: { a: 2, b: 3 } }, { id: 'c2', name: 'slow_add', arguments: { a: 4, b: 5 } }] },
      (req): ScriptedTurn => {
        const [x, y] = toolResults(req);
        return { toolCalls: [{ id: 'c3', name: 'slow_add', arguments: { a: x, b: y } }] };
      },
      (req) => ({ content: `The answer is ${toolResults(req).at(-1)}.` }),
    ]);
    // Warm both workers' sandbox hosts, so the timings below measure the schedule, not cold starts.
    const warm = await Promise.all(Array.from({ length: 6 }, () => api(planner.url, 'POST', '/v1/calls', { tool: 'slow_add', arguments: { a: 0, b: 0 }, wait: true })));
    expect(warm.map((r) => r.body.status)).toEqual(Array(6).fill('succeeded'));
    const input = 'What is (2+3) + (4+5)?';
    const planId = await startRun({ input, model: 'plan-fan', mode: 'plan', tools: ['slow_add', 'off_tool', 'tripped'] });
    const live = readSse(`${planner.url}/v1/runs/${planId}/events`, { until: 'finished' });
    const run = await finishedRun(planId);
    const react = await finishedRun(await startRun({ input, model: 'react-fan', tools: ['slow_add', 'off_tool', 'tripped'] }));

    expect(run).toMatchObject({ status: 'succeeded', mode: 'plan', finalAnswer: 'The answer is 14.', usage: { modelCalls: 2 } });
    expect(react).toMatchObject({ status: 'succeeded', mode: 'react', finalAnswer: 'The answer is 14.', usage: { modelCalls: 3 } });

    const plan = run.steps[0].plan;
    expect(plan).toMatchObject({ revision: 1, status: 'finished', maxParallel: 2 });
    expect(plan.steps).toMatchObject([
      { id: 's1', status: 'succeeded', result: 5, dependsOn: [] },
      { id: 's2', status: 'succeeded', result: 9, dependsOn: [] },
      { id: 's3', status: 'succeeded', result: 14, dependsOn: ['s1', 's2'], resolvedArguments: { a: 5, b: 9 } },
    ]);
    const [s1, s2, s3] = plan.steps;
    // s1 and s2 ran at the same time; s3 started only after both ended.
    expect(s1.concurrentWith).toContain('s2');
    expect(s3.concurrentWith ?? []).toEqual([]);
    expect(s3.startedAt).toBeGreaterThanOrEqual(Math.max(s1.finishedAt, s2.finishedAt) - 5);
    for (const s of plan.steps) expect(s.finishedAt - s.startedAt).toBeGreaterThanOrEqual(LATENCY_MS - 5);
    // s1 and s2 really ran at once (their intervals intersect), so the plan took about two tool
    // latencies, not three. Checked on the steps' own times: a wall-clock bound on the whole plan
    // failed on a loaded machine (908 ms against 900) while the steps still overlapped.
    expect(Math.max(s1.startedAt, s2.startedAt)).toBeLessThan(Math.min(s1.finishedAt, s2.finishedAt));
    expect(plan.finishedAt - plan.startedAt).toBeGreaterThanOrEqual(2 * LATENCY_MS);

    // The model was offered submit_plan only, listing just the tools it can call now.
    const first = llm.requests('plan-fan')[0]!;
    expect((first.tools as any[]).map((t) => t.function.name)).toEqual(['submit_plan']);
    const described = (first.tools as any[])[0].function.description as string;
    expect(described).toContain('slow_add');
    expect(described).not.toContain('off_tool');
    expect(described).not.toContain('tripped');
    expect((llm.requests('react-fan')[0]!.tools as any[]).map((t) => t.function.name)).toEqual(['slow_add']);

    const events = await live;
    expect(events.filter((e) => e.event === 'plan').map((e) => e.data.plan.status)).toEqual(['running', 'finished']);
    const stepEvents = events.filter((e) => e.event === 'plan_step').map((e) => `${e.data.planStep.id}:${e.data.planStep.status}`);
    expect(stepEvents).toEqual(expect.arrayContaining(['s1:queued', 's2:queued', 's3:queued', 's1:succeeded', 's2:succeeded', 's3:succeeded']));
    expect(stepEvents.indexOf('s3:queued')).toBeGreaterThan(Math.max(stepEvents.indexOf('s1:succeeded'), stepEvents.indexOf('s2:succeeded')));
  });

  const good = { steps: [{ id: 'a', tool: 'add', arguments: { a: 1, b: 2 } }, { id: 'b', tool: 'add', arguments: { a: { $ref: 'a' }, b: 10 } }] };
  test.each([
    ['a cyclic plan', [{ id: 'x', tool: 'add', arguments: { a: { $ref: 'y' }, b: 1 } }, { id: 'y', tool: 'add', arguments: { a: { $ref: 'x' }, b: 1 } }], /'x' → 'y' → 'x' form a cycle/],
    ['a reference to a missing step', [{ id: 'x', tool: 'add', arguments: { a: { $ref: 'nope' }, b: 1 } }], /references step 'nope', which is not in the plan/],
    ['an unknown tool', [{ id: 'x', tool: 'pow', arguments: { a: 1, b: 1 } }], /no tool named 'pow'/],
    ['a disabled tool', [{ id: 'x', tool: 'off_tool', arguments: { a: 1, b: 1 } }], /'off_tool' is not available now \(unavailable: disabled/],
    ['a tool whose breaker is open', [{ id: 'x', tool: 'tripped', arguments: { a: 1, b: 1 } }], /'tripped' is not available now \(unavailable: its circuit breaker is open/],
    ['a tool held back by Retry-After', [{ id: 'x', tool: 'held', arguments: { a: 1, b: 1 } }], /'held' is not available now \(rate_limited: a downstream asked to wait/],
    ['arguments that cannot match', [{ id: 'x', tool: 'add', arguments: { a: 'one', b: { $ref: 'x2' } } }, { id: 'x2', tool: 'add', arguments: { a: 1, b: 1 } }], /cannot match the schema of 'add': \/a must be number/],
  ])('%s is sent back to the model once, nothing runs, and the corrected plan runs', async (name, badSteps, problem) => {
    const model = `reject-${name.replace(/\W+/g, '-')}`;
    llm.script(model, [
      { toolCalls: [{ id: 'bad', name: 'submit_plan', arguments: { steps: badSteps } }] },
      { toolCalls: [{ id: 'good', name: 'submit_plan', arguments: good }] },
      (req) => ({ content: `It is ${lastPlanResults(req).b}.` }),
    ]);
    const run = await finishedRun(await startRun({ input: 'compute', model, mode: 'plan' }));
    expect(run).toMatchObject({ status: 'succeeded', finalAnswer: 'It is 13.', usage: { modelCalls: 3 } });
    const [rejected, accepted] = run.steps;
    expect(rejected.plan).toMatchObject({ status: 'rejected' });
    expect(rejected.plan.revision).toBeUndefined();
    expect(rejected.plan.problems.join('\n')).toMatch(problem);
    expect(rejected.plan.steps.every((s: any) => s.status === 'waiting' && !s.callId)).toBe(true);
    expect(accepted.plan).toMatchObject({ revision: 1, status: 'finished' });
    // The refusal went back as the answer to the submit_plan call.
    const second = llm.requests(model)[1]!;
    expect(second.messages.at(-1)).toMatchObject({ role: 'tool', tool_call_id: 'bad', content: expect.stringMatching(/^PLAN REJECTED/) });
    expect((second.messages.at(-1) as any).content).toMatch(problem);
  });

  test('a plan longer than what is left of the step budget is sent back; the shorter one runs', async () => {
    const three = { steps: [...good.steps, { id: 'c', tool: 'add', arguments: { a: 0, b: 0 } }] };
    llm.script('step-budget', [
      { toolCalls: [{ id: 'long', name: 'submit_plan', arguments: three }] },
      { toolCalls: [{ id: 'short', name: 'submit_plan', arguments: good }] },
      (req) => ({ content: `It is ${lastPlanResults(req).b}.` }),
    ]);
    const run = await finishedRun(await startRun({ input: 'compute', model: 'step-budget', mode: 'plan', budget: { maxSteps: 2 } }));
    expect(run).toMatchObject({ status: 'succeeded', finalAnswer: 'It is 13.' });
    expect(run.steps[0].plan.problems).toEqual([expect.stringMatching(/3 steps, but the run's budget allows at most 2 more/)]);
  });

  test('the text protocol plans too: Action submit_plan, results back as an Observation', async () => {
    llm.script('text-plan', [
      { content: `Thought: two sums, one after the other\nAction: submit_plan\nInput: ${JSON.stringify(good)}` },
      (req) => {
        const obs = (req.messages.at(-1) as { content: string }).content;
        const b = JSON.parse(obs.slice(obs.indexOf('{'))).steps.find((s: { id: string }) => s.id === 'b').result;
        return { content: `Thought: done\nFinal Answer: ${b}` };
      },
    ]);
    const run = await finishedRun(await startRun({ input: 'compute', model: 'text-plan', mode: 'plan', protocol: 'text' }));
    expect(run).toMatchObject({ status: 'succeeded', finalAnswer: '13', usage: { modelCalls: 2 } });
    expect(llm.requests('text-plan')[0]!.messages[0]!).toMatchObject({ role: 'system', content: expect.stringContaining('submit_plan') });
  });

  test('the deadline covers the plan: a run past it ends budget_exceeded and shows where each step was', async () => {
    llm.script('plan-deadline', [
      { toolCalls: [{ id: 'p', name: 'submit_plan', arguments: { steps: [{ id: 'slow', tool: 'slow_add', arguments: { a: 1, b: 1 } }, { id: 'after', tool: 'add', arguments: { a: { $ref: 'slow' }, b: 1 } }] } }] },
      { content: 'never asked' },
    ]);
    const run = await finishedRun(await startRun({ input: 'compute', model: 'plan-deadline', mode: 'plan', budget: { deadlineMs: LATENCY_MS / 2 } }));
    expect(run).toMatchObject({ status: 'budget_exceeded', budgetExceeded: { kind: 'deadline' }, usage: { modelCalls: 1 } });
    expect(run.steps[0].plan.steps).toMatchObject([{ id: 'slow', status: expect.stringMatching(/queued|running/) }, { id: 'after', status: 'waiting' }]);
  });

  test('a failed step skips its dependent, an independent step finishes, and a second plan succeeds', async () => {
    llm.script('replan', [
      {
        toolCalls: [
          {
            id: 'p1',
            name: 'submit_plan',
            arguments: {
              steps: [
                { id: 'f', tool: 'fail', arguments: { a: 1, b: 1 } },
                { id: 'dep', tool: 'add', arguments: { a: { $ref: 'f' }, b: 1 } },
                { id: 'ind', tool: 'add', arguments: { a: 20, b: 1 } },
              ],
            },
          },
        ],
      },
      (req) => {
        const { ind } = lastPlanResults(req);
        return { toolCalls: [{ id: 'p2', name: 'submit_plan', arguments: { steps: [{ id: 'fix', tool: 'add', arguments: { a: ind, b: 1 } }] } }] };
      },
      (req) => ({ content: `Recovered: ${lastPlanResults(req).fix}.` }),
    ]);
    const run = await finishedRun(await startRun({ input: 'compute', model: 'replan', mode: 'plan', tools: ['fail', 'add'] }));
    expect(run).toMatchObject({ status: 'succeeded', finalAnswer: 'Recovered: 22.', usage: { modelCalls: 3 } });
    expect(run.steps[0].plan.steps).toMatchObject([
      { id: 'f', status: 'failed', error: { code: 'TOOL_ERROR' } },
      { id: 'dep', status: 'skipped', skippedBecause: "step 'f' failed" },
      { id: 'ind', status: 'succeeded', result: 21 },
    ]);
    expect(run.steps[0].plan.steps[1].callId).toBeUndefined();
    expect(run.steps[1].plan).toMatchObject({ revision: 2, status: 'finished', steps: [{ id: 'fix', status: 'succeeded', result: 22 }] });
    // What the model read after the first plan: each outcome, and how many plans are left.
    const seen = JSON.parse((llm.requests('replan')[1]!.messages.at(-1) as any).content);
    expect(seen).toMatchObject({ plan: 1, steps: [{ id: 'f', status: 'failed' }, { id: 'dep', status: 'skipped' }, { id: 'ind', result: 21 }] });
    expect(seen.next).toMatch(/2 left/);
  });

  test('GET /v1/tools?available=true lists only what a model can call now', async () => {
    const all = await api(planner.url, 'GET', '/v1/tools?format=openai');
    const available = await api(planner.url, 'GET', '/v1/tools?format=openai&available=true');
    const names = (r: typeof all) => (r.body as any[]).map((t) => t.function.name).sort();
    expect(names(all)).toEqual(['add', 'fail', 'held', 'off_tool', 'slow_add', 'tripped']);
    expect(names(available)).toEqual(['add', 'fail', 'slow_add']);
    expect((await api(planner.url, 'GET', '/v1/tools/off_tool')).body).toMatchObject({ enabled: false });
    expect((await api(planner.url, 'GET', '/v1/tools?available=maybe')).status).toBe(400);
  });
});
