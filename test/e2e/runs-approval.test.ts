import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { startScriptedModelServer, type ScriptedModelServer } from '@toolplane/agent/testing';
import { ADD_TOOL, api, startPlanner, startWorker, uniquePrefix, type ServiceProcess } from '../support/services.js';
import { pollUntil, waitReady } from '../support/poll.js';
import { readSse } from '../support/sse.js';

/**
 * Runs that use a tool with `requiresApproval: true`, over the real approve/reject endpoints.
 */
describe('agent runs wait for human approval', () => {
  let llm: ScriptedModelServer;
  let planner: ServiceProcess;
  let worker: ServiceProcess;
  const env = { REDIS_URL: inject('redisUrl'), TOOLPLANE_PREFIX: uniquePrefix() };

  const runOf = (id: string) => async () => (await api(planner.url, 'GET', `/v1/runs/${id}`)).body;

  beforeAll(async () => {
    llm = await startScriptedModelServer();
    [planner, worker] = await Promise.all([
      startPlanner({ ...env, OPENAI_BASE_URL: llm.baseUrl, TOOLPLANE_MODEL: 'unused' }),
      startWorker(env),
    ]);
    await Promise.all([waitReady(planner.url), waitReady(worker.url)]);
    const put = await api(planner.url, 'PUT', '/v1/tools/transfer', { ...ADD_TOOL, description: 'Moves money', requiresApproval: true });
    expect(put.status).toBe(201);
  });
  afterAll(async () => {
    await Promise.all([planner?.kill(), worker?.kill()]);
    await llm?.close();
  });

  test('the run pauses on the call, resumes after approve; a rejected call goes back as a refusal', async () => {
    llm.script('approval', [
      { toolCalls: [{ id: 'ok', name: 'transfer', arguments: { a: 1, b: 2 } }] },
      { toolCalls: [{ id: 'no', name: 'transfer', arguments: { a: 1000, b: 2000 } }] },
      { content: 'One transfer done, the other was refused.' },
    ]);
    const { body } = await api(planner.url, 'POST', '/v1/runs', { input: 'move money twice', model: 'approval' });
    const events = readSse(`${planner.url}/v1/runs/${body.id}/events`, { until: 'finished', timeoutMs: 30_000 });

    const first = await pollUntil(runOf(body.id), (r) => r.status === 'waiting_approval');
    const firstCall = first.current.toolCalls[0].callId;
    expect((await api(planner.url, 'GET', `/v1/calls/${firstCall}`)).body.status).toBe('awaiting_approval');
    expect((await api(planner.url, 'POST', `/v1/calls/${firstCall}/approve`, {})).status).toBeLessThan(300);

    const second = await pollUntil(runOf(body.id), (r) => r.status === 'waiting_approval' && r.steps.length === 1);
    expect(second.steps[0].toolCalls[0]).toMatchObject({ status: 'succeeded', result: 3 });
    const secondCall = second.current.toolCalls[0].callId;
    expect((await api(planner.url, 'POST', `/v1/calls/${secondCall}/reject`, { reason: 'too much' })).status).toBeLessThan(300);

    const run = await pollUntil(runOf(body.id), (r) => ['succeeded', 'failed', 'budget_exceeded'].includes(r.status));
    expect(run).toMatchObject({ status: 'succeeded', finalAnswer: 'One transfer done, the other was refused.' });
    expect(run.steps[1].toolCalls[0]).toMatchObject({ status: 'failed', error: { code: 'REJECTED' } });
    expect(llm.requests('approval')[2]!.messages.at(-1)).toMatchObject({ role: 'tool', tool_call_id: 'no', content: expect.stringMatching(/^REFUSED/) });

    const statuses = (await events).filter((e) => e.event === 'status').map((e) => e.data.status);
    expect(statuses).toEqual(['running', 'waiting_approval', 'running', 'waiting_approval', 'running', 'succeeded']);
  });
});
