import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { closeRedis, createKeys, createRedisConnection } from '@toolplane/queue';
import { ADD_TOOL, api, startPlanner, startWorker, uniquePrefix, type ServiceProcess } from '../support/services.js';

describe('one real tool call end to end', () => {
  let planner: ServiceProcess;
  let worker: ServiceProcess;
  const env = { REDIS_URL: inject('redisUrl'), TOOLPLANE_PREFIX: uniquePrefix() };

  beforeAll(async () => {
    [planner, worker] = await Promise.all([startPlanner(env), startWorker(env)]);
  });
  afterAll(async () => {
    await Promise.all([planner?.kill(), worker?.kill()]);
  });

  test('registers a tool: 201 new, 200 replaced, with a growing version', async () => {
    const first = await api(planner.url, 'PUT', '/v1/tools/add', ADD_TOOL);
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ name: 'add', version: 1, limits: { timeoutMs: 10_000 } });
    const again = await api(planner.url, 'PUT', '/v1/tools/add', ADD_TOOL);
    expect(again.status).toBe(200);
    expect(again.body.version).toBe(2);
    const got = await api(planner.url, 'GET', '/v1/tools/add');
    expect(got.body).toMatchObject({ name: 'add', version: 2, description: 'Adds two numbers' });
  });

  test('a call with wait:true answers succeeded with the result', async () => {
    const res = await api(planner.url, 'POST', '/v1/calls', { tool: 'add', arguments: { a: 2, b: 3 }, wait: true });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ tool: 'add', status: 'succeeded', result: 5, attempts: 1 });
    expect(res.body.timings.runMs).toBeGreaterThanOrEqual(0);
  });

  test('a wait:true answer is the call as a read gives it: succeeded with logs, failed, failed after a retry', async () => {
    const moody = {
      description: 'succeeds, throws, or fails until retried out',
      parameters: { type: 'object', properties: { mode: { type: 'string' } }, required: ['mode'] },
      code: `export default async function (args, ctx) {
        console.log('mode', args.mode);
        if (args.mode === 'throw') throw new Error('boom');
        if (args.mode === 'unavailable') { const e = new Error('down'); e.code = 'UNAVAILABLE'; throw e; }
        return { mode: args.mode, text: 'tab\\there' };
      }`,
      retries: { attempts: 2, backoffMs: 10 },
    };
    expect((await api(planner.url, 'PUT', '/v1/tools/moody', moody)).status).toBe(201);
    for (const mode of ['ok', 'throw', 'unavailable']) {
      const waited = await api(planner.url, 'POST', '/v1/calls', { tool: 'moody', arguments: { mode }, wait: true });
      expect(waited.status, mode).toBe(200);
      const read = await api(planner.url, 'GET', `/v1/calls/${waited.body.id}`);
      expect(waited.body, mode).toEqual(read.body);
      expect(waited.body.status, mode).toBe(mode === 'ok' ? 'succeeded' : 'failed');
    }
  });

  test('a finish is announced with its record only when its submitter waits for it', async () => {
    const subscriber = createRedisConnection(env.REDIS_URL, 'subscriber');
    try {
      const heard = new Map<string, string | undefined>();
      subscriber.on('message', (_channel: string, message: string) => {
        for (const line of message.split('\n')) {
          const tab = line.indexOf('\t');
          heard.set(tab < 0 ? line : line.slice(0, tab), tab < 0 ? undefined : line.slice(tab + 1));
        }
      });
      await subscriber.subscribe(createKeys(env.TOOLPLANE_PREFIX).callDone);
      const waited = await api(planner.url, 'POST', '/v1/calls', { tool: 'add', arguments: { a: 1, b: 1 }, wait: true });
      expect(waited.status).toBe(200);
      const queued = await api(planner.url, 'POST', '/v1/calls', { tool: 'add', arguments: { a: 2, b: 2 } });
      expect(queued.status).toBe(202);
      for (let i = 0; i < 200 && !heard.has(queued.body.id); i++) await new Promise((r) => setTimeout(r, 25));
      // The waited call's answer is the record its announcement carried; the other's is its id alone.
      expect(JSON.parse(heard.get(waited.body.id)!)).toEqual(waited.body);
      expect(heard.has(queued.body.id)).toBe(true);
      expect(heard.get(queued.body.id)).toBeUndefined();
    } finally {
      await closeRedis(subscriber);
    }
  });

  test('a queued call answers 202 and is readable by id until it succeeds', async () => {
    const res = await api(planner.url, 'POST', '/v1/calls', { tool: 'add', arguments: { a: 40, b: 2 } });
    expect(res.status).toBe(202);
    expect(res.body).toEqual({ id: expect.stringMatching(/^[0-9a-z]{26}$/), status: 'queued' });
    let call;
    for (let i = 0; i < 100; i++) {
      call = (await api(planner.url, 'GET', `/v1/calls/${res.body.id}`)).body;
      if (call.status === 'succeeded') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(call).toMatchObject({ id: res.body.id, status: 'succeeded', result: 42 });
  });

  test('arguments that break the schema are refused before queueing', async () => {
    const res = await api(planner.url, 'POST', '/v1/calls', { tool: 'add', arguments: { a: 'x' } });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('INVALID_ARGUMENTS');
    expect(res.body.error.details.errors.map((e: { path: string }) => e.path)).toEqual(expect.arrayContaining(['/a']));
    const counts = (await api(planner.url, 'GET', '/v1/tools/add')).body.stats.queue;
    expect(counts.waiting + counts.active + counts.delayed).toBe(0);
  });

  test('bad requests get stable codes', async () => {
    expect((await api(planner.url, 'POST', '/v1/calls', { tool: 'nope', arguments: {} })).body.error.code).toBe('TOOL_NOT_FOUND');
    expect((await api(planner.url, 'POST', '/v1/calls', { tool: 'nope', arguments: {} })).status).toBe(404);
    const malformed = await api(planner.url, 'POST', '/v1/calls', '{"tool": "add",');
    expect([malformed.status, malformed.body.error.code]).toEqual([400, 'INVALID_JSON']);
    const big = await api(planner.url, 'POST', '/v1/calls', { tool: 'add', arguments: { a: 1, b: 2, pad: 'x'.repeat(2 * 1024 * 1024) } });
    expect([big.status, big.body.error.code]).toEqual([413, 'PAYLOAD_TOO_LARGE']);
    const unknownField = await api(planner.url, 'POST', '/v1/calls', { tool: 'add', arguments: {}, bogus: 1 });
    expect([unknownField.status, unknownField.body.error.code]).toEqual([400, 'INVALID_REQUEST']);
    const noCall = await api(planner.url, 'GET', '/v1/calls/01m8h8bdenf6x3nad0cg33tk8p');
    expect([noCall.status, noCall.body.error.code]).toEqual([404, 'NOT_FOUND']);
    const badCode = await api(planner.url, 'PUT', '/v1/tools/bad', { ...ADD_TOOL, code: 'export default (' });
    expect([badCode.status, badCode.body.error.code]).toEqual([400, 'INVALID_TOOL']);
    expect(badCode.body.error.message).toMatch(/does not compile/);
    const noDefault = await api(planner.url, 'PUT', '/v1/tools/bad', { ...ADD_TOOL, code: 'export const x = 1' });
    expect([noDefault.status, noDefault.body.error.code]).toEqual([400, 'INVALID_TOOL']);
    const badSchema = await api(planner.url, 'PUT', '/v1/tools/bad', { ...ADD_TOOL, parameters: { type: 'object', properties: { a: { type: 'nonsense' } } } });
    expect([badSchema.status, badSchema.body.error.code]).toEqual([400, 'INVALID_TOOL']);
    const badName = await api(planner.url, 'PUT', '/v1/tools/bad%20name', ADD_TOOL);
    expect([badName.status, badName.body.error.code]).toEqual([400, 'INVALID_REQUEST']);
  });

  test('an endless loop ends that call with TIMEOUT and the next call succeeds', async () => {
    const put = await api(planner.url, 'PUT', '/v1/tools/spin', {
      description: 'never returns',
      parameters: { type: 'object' },
      code: 'export default function () { while (true) {} }',
      limits: { timeoutMs: 200 },
      retries: { attempts: 1 },
    });
    expect(put.status).toBe(201);
    const spin = await api(planner.url, 'POST', '/v1/calls', { tool: 'spin', arguments: {}, wait: 20_000 });
    expect(spin.status).toBe(200);
    expect(spin.body).toMatchObject({ status: 'failed', error: { code: 'TIMEOUT' } });
    const next = await api(planner.url, 'POST', '/v1/calls', { tool: 'add', arguments: { a: 1, b: 1 }, wait: true });
    expect(next.body).toMatchObject({ status: 'succeeded', result: 2 });
  });

  test('lists tools in OpenAI and MCP formats', async () => {
    const openai = await api(planner.url, 'GET', '/v1/tools?format=openai');
    expect(openai.body).toContainEqual({
      type: 'function',
      function: { name: 'add', description: 'Adds two numbers', parameters: ADD_TOOL.parameters },
    });
    const mcp = await api(planner.url, 'GET', '/v1/tools?format=mcp');
    expect(mcp.body.tools).toContainEqual({ name: 'add', description: 'Adds two numbers', inputSchema: ADD_TOOL.parameters });
  });

  test('both /metrics endpoints show the call metrics after calls', async () => {
    const w = await (await fetch(`${worker.url}/metrics`)).text();
    expect(w).toMatch(/toolplane_tool_calls_total\{tool="add",outcome="success"\} [1-9]/);
    expect(w).toMatch(/toolplane_tool_calls_total\{tool="spin",outcome="timeout"\} 1/);
    expect(w).toMatch(/toolplane_tool_call_duration_seconds_bucket\{le="0.001",tool="add"\}|toolplane_tool_call_duration_seconds_bucket\{tool="add",le=/);
    expect(w).toContain('process_cpu_seconds_total');
    expect(w).not.toContain('nodejs_active_handles_total');
    const p = await (await fetch(`${planner.url}/metrics`)).text();
    expect(p).toMatch(/toolplane_http_requests_total\{method="POST",route="\/v1\/calls",status="200"\} [1-9]/);
    // Errors are labelled with the full route template too, not the router-relative path.
    expect(p).toMatch(/toolplane_http_requests_total\{method="POST",route="\/v1\/calls",status="400"\} [1-9]/);
    expect(p).toMatch(/toolplane_queue_jobs\{tool="add",state="completed"\} [1-9]/);
  });

  test('health and readiness', async () => {
    expect((await api(planner.url, 'GET', '/healthz')).status).toBe(200);
    expect((await api(planner.url, 'GET', '/readyz')).body).toEqual({ ready: true });
    expect((await api(worker.url, 'GET', '/readyz')).body).toEqual({ ready: true });
  });

  test('deletes a tool', async () => {
    expect((await api(planner.url, 'DELETE', '/v1/tools/spin')).status).toBe(204);
    expect((await api(planner.url, 'GET', '/v1/tools/spin')).status).toBe(404);
    expect((await api(planner.url, 'DELETE', '/v1/tools/spin')).status).toBe(404);
  });
});
