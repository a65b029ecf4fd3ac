import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ErrorCode, McpError, ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, afterEach, beforeAll, describe, expect, inject, test } from 'vitest';
import {
  ADD_TOOL,
  api,
  eventually,
  startPlanner,
  startWorker,
  sumMetric,
  uniquePrefix,
  type ServiceProcess,
} from '../support/services.js';

describe('the planner as an MCP server (/mcp)', () => {
  const env = { REDIS_URL: inject('redisUrl'), TOOLPLANE_PREFIX: uniquePrefix() };
  let planner: ServiceProcess;
  let worker: ServiceProcess;
  let client: Client;
  let listChanged = 0;

  beforeAll(async () => {
    [planner, worker] = await Promise.all([startPlanner(env), startWorker(env)]);
    expect((await api(planner.url, 'PUT', '/v1/tools/add', ADD_TOOL)).status).toBe(201);
    client = new Client({ name: 'toolplane-test', version: '1.0.0' });
    client.setNotificationHandler(ToolListChangedNotificationSchema, async () => {
      listChanged++;
    });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${planner.url}/mcp`)));
  });
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') {
      console.log(`planner output:\n${planner.output()}\nworker output:\n${worker.output()}`);
    }
  });
  afterAll(async () => {
    await client?.close();
    await Promise.all([planner, worker].map((p) => p?.kill()));
  });

  test('lists the registry and runs a call through the queue, audit log and metrics included', async () => {
    const { tools } = await client.listTools();
    expect(tools).toEqual([{ name: 'add', description: ADD_TOOL.description, inputSchema: ADD_TOOL.parameters }]);

    const result = await client.callTool({ name: 'add', arguments: { a: 2, b: 3 } });
    expect(result).toMatchObject({ content: [{ type: 'text', text: '5' }] });
    expect(result.isError).toBeFalsy();

    const audit = await api(planner.url, 'GET', '/v1/calls?tool=add');
    expect(audit.body.calls).toHaveLength(1);
    expect(audit.body.calls[0]).toMatchObject({ tool: 'add', status: 'succeeded', result: 5, tenant: 'default' });
    const metrics = await (await fetch(`${worker.url}/metrics`)).text();
    expect(sumMetric([metrics], 'toolplane_tool_calls_total', { tool: 'add', outcome: 'success' })).toBe(1);
  });

  test('object results come back as structured content too', async () => {
    const tool = { ...ADD_TOOL, code: 'export default (args) => ({ sum: args.a + args.b })' };
    expect((await api(planner.url, 'PUT', '/v1/tools/sum', tool)).status).toBe(201);
    const result = await client.callTool({ name: 'sum', arguments: { a: 1, b: 1 } });
    expect(result).toMatchObject({ content: [{ type: 'text', text: '{"sum":2}' }], structuredContent: { sum: 2 } });
  });

  test('invalid arguments and failed calls are tool errors with our code; an unknown tool is a protocol error', async () => {
    const invalid = await client.callTool({ name: 'add', arguments: { a: 'two' } });
    expect(invalid.isError).toBe(true);
    expect((invalid.content as Array<{ text: string }>)[0]!.text).toMatch(/^INVALID_ARGUMENTS: /);

    const failing = { ...ADD_TOOL, code: "export default () => { throw new Error('nope') }", retries: { attempts: 1, backoffMs: 0 } };
    expect((await api(planner.url, 'PUT', '/v1/tools/boom', failing)).status).toBe(201);
    const failed = await client.callTool({ name: 'boom', arguments: { a: 1, b: 2 } });
    expect(failed.isError).toBe(true);
    expect((failed.content as Array<{ text: string }>)[0]!.text).toMatch(/^TOOL_ERROR: .*nope/);

    const unknown = await client.callTool({ name: 'nope', arguments: {} }).catch((err: unknown) => err);
    expect(unknown).toBeInstanceOf(McpError);
    expect((unknown as McpError).code).toBe(ErrorCode.InvalidParams);
    expect((unknown as McpError).message).toContain('TOOL_NOT_FOUND');
    // The planner is still up and serving.
    expect((await client.listTools()).tools.map((t) => t.name)).toContain('boom');
  });

  test('adding or removing a tool sends notifications/tools/list_changed', async () => {
    // The client opens its notification stream in the background after connecting: register
    // tools until one notification arrives, then check a removal notifies too.
    const start = listChanged;
    let i = 0;
    await eventually(async () => {
      if (listChanged > start) return true;
      expect((await api(planner.url, 'PUT', `/v1/tools/extra${i++}`, ADD_TOOL)).status).toBe(201);
      return undefined;
    }, 10_000, 300);
    expect(i).toBeGreaterThan(0);
    // Let a notification still on its way settle before counting the removal's.
    await new Promise((r) => setTimeout(r, 300));
    const before = listChanged;
    expect((await api(planner.url, 'DELETE', '/v1/tools/extra0')).status).toBe(204);
    await eventually(async () => (listChanged > before ? true : undefined), 5_000, 50);
    expect((await client.listTools()).tools.map((t) => t.name)).not.toContain('extra0');
  });

  test('a malformed request gets a clear error and the endpoint goes on', async () => {
    const bad = await api(planner.url, 'POST', '/mcp', '{"jsonrpc":', { accept: 'application/json, text/event-stream' });
    expect([bad.status, bad.body.error.code]).toEqual([400, 'INVALID_JSON']);
    const notRpc = await api(planner.url, 'POST', '/mcp', { hello: 1 }, { accept: 'application/json, text/event-stream' });
    expect(notRpc.status).toBe(400);
    expect(notRpc.body.error.code).toBe(ErrorCode.ParseError);
    const del = await api(planner.url, 'DELETE', '/mcp');
    expect(del.status).toBe(405);
    expect((await client.callTool({ name: 'add', arguments: { a: 1, b: 1 } })).content).toEqual([{ type: 'text', text: '2' }]);
  });
});
