import { randomBytes } from 'node:crypto';
import { expect, inject } from 'vitest';
import { hashArguments } from '@toolplane/core';
import { startScriptedModelServer, type ReceivedRequest, type ScriptedModelServer } from '@toolplane/agent/testing';
import { api, startPlanner, startWorker, uniquePrefix, type ServiceProcess } from '../../support/services.js';
import { waitReady } from '../../support/poll.js';

const ADMIN_KEY = 'admin-key-for-framework-tests-0123';

/**
 * The tool every framework test gives its agent. Called with odd numbers, its sum is nothing the
 * script holds, so a final answer that contains it proves the result travelled Toolplane →
 * framework → model → answer.
 */
export const ADD_TOOL = {
  description: 'Adds two numbers',
  parameters: {
    type: 'object',
    properties: { a: { type: 'number' }, b: { type: 'number' } },
    required: ['a', 'b'],
  },
  code: 'export default async function (args) { return args.a + args.b }',
};

/** A tool whose call fails (`TOOL_ERROR`) when `b` is 0, at once: one attempt, no backoff. */
export const DIVIDE_TOOL = {
  ...ADD_TOOL,
  description: 'Divides a by b',
  code: "export default async function (args) { if (args.b === 0) throw new Error('division by zero'); return args.a / args.b }",
  retries: { attempts: 1, backoffMs: 0 },
};

/** What a framework test runs against: Toolplane (auth on) and a scripted model server. */
export type FrameworkStack = {
  /** The planner's base URL; its MCP endpoint is `${url}/mcp`. */
  url: string;
  llm: ScriptedModelServer;
  /** An API key of the tenant that owns the tool, as a framework would be configured with. */
  apiKey: string;
  /** The tenant of {@link apiKey}, of this suite's own. */
  tenant: string;
  /** The tenant's tool, under a name of this suite's own. */
  tool: string;
  /** `GET`/`POST`… as the tenant. */
  call(method: string, path: string, body?: unknown): ReturnType<typeof api>;
  /** Logs the services' output when a test failed. */
  dumpOutput(): void;
  close(): Promise<void>;
};

/**
 * Starts a scripted OpenAI-compatible model server and Toolplane: a planner with API keys on and a
 * worker of the suite's own, or, with `TOOLPLANE_URL` and `TOOLPLANE_ADMIN_KEY` set, the stack
 * already running there (`make up` prints both). Then makes a key of a fresh tenant (read tools,
 * make and read calls) and registers the tool as that tenant; on a running stack, `close` removes the key and the suite's tools.
 */
export async function startFrameworkStack(toolPrefix: string): Promise<FrameworkStack> {
  const suffix = randomBytes(4).toString('hex');
  const tool = `${toolPrefix}_${suffix}`;
  const tenant = `agents-${suffix}`;
  const llm = await startScriptedModelServer();
  const external = process.env.TOOLPLANE_URL;
  let services: ServiceProcess[] = [];
  let url: string;
  let adminKey: string;
  if (external) {
    url = external.replace(/\/$/, '');
    adminKey = process.env.TOOLPLANE_ADMIN_KEY ?? '';
    expect(adminKey, 'TOOLPLANE_URL needs TOOLPLANE_ADMIN_KEY').not.toBe('');
  } else {
    const env = { REDIS_URL: inject('redisUrl'), TOOLPLANE_PREFIX: uniquePrefix() };
    adminKey = ADMIN_KEY;
    services = await Promise.all([startPlanner({ ...env, TOOLPLANE_ADMIN_KEY: adminKey }), startWorker(env)]);
    await Promise.all(services.map((s) => waitReady(s.url)));
    url = services[0]!.url;
  }
  const asAdmin = { authorization: `Bearer ${adminKey}` };
  const created = await api(
    url,
    'POST',
    '/v1/admin/keys',
    { name: 'framework-test', tenant, scopes: ['tools:read', 'tools:write', 'calls:read', 'calls:write'] },
    asAdmin,
  );
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const apiKey = created.body.key as string;
  const call = (method: string, path: string, body?: unknown) => api(url, method, path, body, { authorization: `Bearer ${apiKey}` });
  const registered = await call('PUT', `/v1/tools/${tool}`, ADD_TOOL);
  expect(registered.status, JSON.stringify(registered.body)).toBe(201);
  return {
    url,
    llm,
    apiKey,
    tenant,
    tool,
    call,
    dumpOutput: () => {
      for (const [name, s] of [['planner', services[0]], ['worker', services[1]]] as const) {
        if (s) console.log(`${name} output:\n${s.output()}`);
      }
    },
    close: async () => {
      if (external) {
        // The suite's tools: its add tool and those its tests registered under names that start alike.
        const listed = (await call('GET', '/v1/tools')).body.tools as Array<{ name: string }>;
        for (const t of listed.filter((t) => t.name.startsWith(tool))) await call('DELETE', `/v1/tools/${t.name}`);
        await api(url, 'DELETE', `/v1/admin/keys/${created.body.id}`, undefined, asAdmin);
      }
      await Promise.all(services.map((s) => s.kill()));
      await llm.close();
    },
  };
}

/**
 * The scripted model's two turns: first it asks for the tool, then it answers with the text of the
 * tool result the framework sent back (read from the request, never scripted), so the answer holds
 * exactly what Toolplane returned.
 */
export function callToolThenAnswer(tool: string, args: Record<string, unknown>) {
  return [
    { toolCalls: [{ id: 'call_1', name: tool, arguments: args }] },
    (request: ReceivedRequest) => ({ content: `The tool said: ${toolResultText(request)}` }),
  ];
}

/** The content of the last `tool` message in a Chat Completions request, text parts joined. */
export function toolResultText(request: ReceivedRequest): string {
  const message = request.messages.findLast((m) => m.role === 'tool');
  if (!message) return '(no tool result)';
  const content = message.content as unknown;
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p: { text?: string }) => p.text ?? '').join('');
  return JSON.stringify(content);
}

/**
 * Asserts that the tenant's audit trail holds exactly one call of `tool` (the suite's add tool by
 * default), with these arguments (by their hash, as the audit trail keeps them) and these fields
 * (by default: succeeded with `result`).
 */
export async function expectOneCall(
  stack: FrameworkStack,
  args: Record<string, unknown>,
  outcome: { result: unknown } | { status: 'failed'; error: { code: string } },
  tool = stack.tool,
) {
  const audit = await stack.call('GET', `/v1/calls?tool=${tool}`);
  expect(audit.status).toBe(200);
  expect(audit.body.calls).toHaveLength(1);
  expect(audit.body.calls[0]).toMatchObject({
    tool,
    status: 'succeeded',
    tenant: stack.tenant,
    argsHash: hashArguments(args),
    ...outcome,
  });
}
