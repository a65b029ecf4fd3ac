import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { startScriptedModelServer, type ScriptedModelServer } from '@toolplane/agent/testing';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../support/otlp-receiver.js';
import { waitReady } from '../support/poll.js';
import { ADD_TOOL, api, eventually, startPlanner, startWorker, uniquePrefix, type ServiceProcess } from '../support/services.js';

const SECRET = 'tok-secret-value-7f3a91c2';
const ARGUMENT = 'needle-argument-5b8e';
const RUN_INPUT = 'prompt-text-that-stays-private';

/** Span kinds and status codes as OTLP numbers them. */
const KIND = { server: 2, client: 3, consumer: 5 } as const;
const ERROR = 2;

/** Every attribute value of every span, as one string, to search for leaks. */
const attributeText = (spans: ReceivedSpan[]) => JSON.stringify(spans.map((s) => [s.name, s.attributes, s.status]));

/** Worker and planner output as parsed pino lines. */
const logLines = (svc: ServiceProcess) =>
  svc
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { msg: string; callId?: string; runId?: string; traceId?: string });

/**
 * Traces on real processes: a planner and a worker exporting OTLP/HTTP to a real receiver, a tool
 * whose `ctx.fetch` reaches a real HTTP server, and an agent run against the scripted model server.
 */
describe('OpenTelemetry traces from the HTTP request to the sandbox', () => {
  let receiver: OtlpReceiver;
  let downstream: Server;
  let downstreamPort: number;
  let downstreamHeaders: IncomingHttpHeaders | undefined;
  let llm: ScriptedModelServer;
  let planner: ServiceProcess;
  let worker: ServiceProcess;

  beforeAll(async () => {
    [receiver, llm] = await Promise.all([startOtlpReceiver(), startScriptedModelServer()]);
    downstream = createServer((req, res) => {
      downstreamHeaders = req.headers;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"items":[1,2]}');
    }).listen(0, '127.0.0.1');
    await once(downstream, 'listening');
    downstreamPort = (downstream.address() as AddressInfo).port;
    const env = {
      REDIS_URL: inject('redisUrl'),
      TOOLPLANE_PREFIX: uniquePrefix(),
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_BSP_SCHEDULE_DELAY: '100',
    };
    [planner, worker] = await Promise.all([
      startPlanner({ ...env, OPENAI_BASE_URL: llm.baseUrl, LOG_LEVEL: 'info' }),
      startWorker({ ...env, LOG_LEVEL: 'debug' }),
    ]);
    await Promise.all([waitReady(planner.url), waitReady(worker.url)]);
    expect((await api(planner.url, 'PUT', '/v1/secrets/TOKEN', { value: SECRET })).status).toBe(201);
    const lookup = {
      description: 'Looks an item up downstream',
      parameters: { type: 'object', properties: { query: { type: 'string' } }, required: ['query'] },
      code: `export default async function (args, ctx) {
        const res = await ctx.fetch('http://127.0.0.1:${downstreamPort}/items?q=' + encodeURIComponent(args.query), {
          headers: { authorization: 'Bearer ' + ctx.secrets.TOKEN },
        });
        return { status: res.status, items: (await res.json()).items };
      }`,
      egress: [`127.0.0.1:${downstreamPort}`],
      secrets: ['TOKEN'],
    };
    expect((await api(planner.url, 'PUT', '/v1/tools/lookup', lookup)).status).toBe(201);
    expect((await api(planner.url, 'PUT', '/v1/tools/add', ADD_TOOL)).status).toBe(201);
  });
  afterAll(async () => {
    await Promise.all([planner?.kill(), worker?.kill()]);
    await Promise.all([receiver?.close(), llm?.close(), new Promise((r) => downstream?.close(r))]);
  });

  /** The spans of one trace once `done` holds for them (export is batched, every 100 ms here). */
  const traceOf = (traceId: () => string | undefined, done: (spans: ReceivedSpan[]) => boolean) =>
    eventually(async () => {
      const id = traceId();
      const spans = id ? receiver.spans().filter((s) => s.traceId === id) : [];
      return spans.length && done(spans) ? spans : undefined;
    }, 15_000, 100);

  test('a call: HTTP request span → tool.call → sandbox.run → ctx.fetch, one trace, no arguments or secrets', async () => {
    const res = await api(planner.url, 'POST', '/v1/calls', { tool: 'lookup', arguments: { query: ARGUMENT }, wait: 20_000 });
    expect(res.body, JSON.stringify(res.body)).toMatchObject({ status: 'succeeded', result: { status: 200, items: [1, 2] } });
    const callId = res.body.id as string;

    const call = () => receiver.spans().find((s) => s.name === 'tool.call' && s.attributes['toolplane.call_id'] === callId);
    const spans = await traceOf(
      () => call()?.traceId,
      (ss) => ['POST /v1/calls', 'tool.call', 'sandbox.run', 'ctx.fetch'].every((n) => ss.some((s) => s.name === n)),
    );
    const byName = (name: string) => spans.filter((s) => s.name === name);
    expect(spans.map((s) => s.name).sort()).toEqual(['POST /v1/calls', 'ctx.fetch', 'sandbox.run', 'tool.call']);
    const [http, toolCall, run, fetch] = ['POST /v1/calls', 'tool.call', 'sandbox.run', 'ctx.fetch'].map((n) => byName(n)[0]!);

    expect(http).toMatchObject({
      service: 'toolplane-planner',
      parentSpanId: '',
      kind: KIND.server,
      attributes: { 'http.request.method': 'POST', 'http.route': '/v1/calls', 'http.response.status_code': 200 },
    });
    expect(toolCall).toMatchObject({
      service: 'toolplane-worker',
      parentSpanId: http!.spanId,
      kind: KIND.consumer,
      attributes: { 'toolplane.tool': 'lookup', 'toolplane.tool.version': 1, 'toolplane.attempt': 1, 'toolplane.outcome': 'success' },
    });
    expect(run).toMatchObject({ service: 'toolplane-worker', parentSpanId: toolCall!.spanId, attributes: { 'toolplane.tool.key': 'lookup@1' } });
    expect(fetch).toMatchObject({
      service: 'toolplane-worker',
      parentSpanId: run!.spanId,
      kind: KIND.client,
      attributes: {
        'http.request.method': 'GET',
        'server.address': '127.0.0.1',
        'server.port': downstreamPort,
        'http.response.status_code': 200,
      },
    });
    // The downstream did get the argument and the secret; no span repeats either, nor the path or query.
    expect(downstreamHeaders?.authorization).toBe(`Bearer ${SECRET}`);
    const text = attributeText(spans);
    for (const leak of [ARGUMENT, SECRET, 'Bearer', '/items', 'q=']) expect(text).not.toContain(leak);

    // The worker's log lines about this call carry its callId and the trace id.
    const lines = await eventually(async () => {
      const found = logLines(worker).filter((l) => l.callId === callId);
      return found.length ? found : undefined;
    }, 5_000, 50);
    expect(lines.map((l) => l.traceId)).toEqual(lines.map(() => http!.traceId));
  });

  test("a caller's traceparent header makes the request part of its trace; a failed call marks its spans", async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const parent = '00f067aa0ba902b7';
    const res = await api(
      planner.url,
      'POST',
      '/v1/calls',
      { tool: 'add', arguments: { a: 1, b: 'x' } },
      { traceparent: `00-${traceId}-${parent}-01` },
    );
    expect(res.status).toBe(400);
    const [http] = await traceOf(() => traceId, (ss) => ss.some((s) => s.name === 'POST /v1/calls'));
    expect(http).toMatchObject({ parentSpanId: parent, attributes: { 'http.response.status_code': 400 } });

    const bad = await api(planner.url, 'PUT', '/v1/tools/boom', {
      ...ADD_TOOL,
      code: `export default function (args) { throw new Error('bad ' + args.a) }`,
      retries: { attempts: 1 },
    });
    expect(bad.status).toBe(201);
    const failed = await api(planner.url, 'POST', '/v1/calls', { tool: 'boom', arguments: { a: 424242, b: 1 }, wait: 20_000 });
    expect(failed.body.status).toBe('failed');
    const call = () => receiver.spans().find((s) => s.name === 'tool.call' && s.attributes['toolplane.call_id'] === failed.body.id);
    const spans = await traceOf(() => call()?.traceId, (ss) => ss.some((s) => s.name === 'sandbox.run'));
    expect(call()).toMatchObject({ status: { code: ERROR }, attributes: { 'toolplane.outcome': 'error', 'toolplane.error.code': 'TOOL_ERROR' } });
    expect(spans.find((s) => s.name === 'sandbox.run')).toMatchObject({ status: { code: ERROR } });
    expect(attributeText(spans)).not.toContain('424242');
  });

  test('an agent run: run, steps, model calls and its tool calls in the trace of POST /v1/runs; log lines carry runId', async () => {
    llm.script('traced', [{ toolCalls: [{ id: 'c1', name: 'add', arguments: { a: 20, b: 22 } }] }, { content: 'It is 42.' }]);
    const started = await api(planner.url, 'POST', '/v1/runs', { input: RUN_INPUT, model: 'traced', tools: ['add'] });
    expect(started.status, JSON.stringify(started.body)).toBe(201);
    const runId = started.body.id as string;

    const runSpan = () => receiver.spans().find((s) => s.name === 'agent.run' && s.attributes['toolplane.run_id'] === runId);
    const spans = await traceOf(
      () => runSpan()?.traceId,
      (ss) => ss.some((s) => s.name === 'agent.run') && ss.some((s) => s.name === 'sandbox.run'),
    );
    const http = spans.find((s) => s.name === 'POST /v1/runs')!;
    const run = runSpan()!;
    const steps = spans.filter((s) => s.name === 'agent.step').sort((a, b) => Number(a.attributes['toolplane.step']) - Number(b.attributes['toolplane.step']));
    const chats = spans.filter((s) => s.name === 'chat traced');
    const toolCall = spans.find((s) => s.name === 'tool.call')!;
    expect(http).toMatchObject({ parentSpanId: '', attributes: { 'http.response.status_code': 201 } });
    expect(run).toMatchObject({ parentSpanId: http.spanId, attributes: { 'toolplane.run.status': 'succeeded' } });
    expect(steps.map((s) => [s.parentSpanId, s.attributes['toolplane.step']])).toEqual([
      [run.spanId, 0],
      [run.spanId, 1],
    ]);
    expect(chats.map((c) => c.parentSpanId).sort()).toEqual(steps.map((s) => s.spanId).sort());
    expect(chats[0]).toMatchObject({ kind: KIND.client, attributes: { 'gen_ai.request.model': 'traced' } });
    expect(chats.every((c) => Number(c.attributes['gen_ai.usage.input_tokens']) > 0)).toBe(true);
    expect(toolCall).toMatchObject({ parentSpanId: steps[0]!.spanId, attributes: { 'toolplane.tool': 'add', 'toolplane.outcome': 'success' } });
    expect(attributeText(spans)).not.toContain(RUN_INPUT);

    const lines = await eventually(async () => {
      const found = logLines(planner).filter((l) => /\brun\b/.test(l.msg));
      return found.some((l) => l.msg === 'run finished') ? found : undefined;
    }, 5_000, 50);
    expect(lines.every((l) => typeof l.runId === 'string'), JSON.stringify(lines)).toBe(true);
    expect(lines.find((l) => l.msg === 'run finished')).toMatchObject({ runId, traceId: run.traceId });
  });
});
