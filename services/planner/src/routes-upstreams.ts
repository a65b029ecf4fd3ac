import { Router } from 'express';
import { z } from 'zod';
import {
  RequestError,
  ToolName,
  ToolSpec,
  UPSTREAM_TOOL_CODE,
  UpstreamName,
  UpstreamSpec,
  canonicalJson,
  parseHeaderSource,
  type Tool,
  type Upstream,
} from '@toolplane/core';
import { UpstreamConnectError, listUpstreamTools, type McpTool } from '@toolplane/mcp';
import { UpstreamSecretError, resolveUpstreamHeaders } from '@toolplane/queue';
import { apiSchema, type ApiRoute } from './api-spec.js';
import type { PlannerDeps } from './deps.js';
import { zodIssues } from './http-util.js';
import { principalOf, requireScope } from './auth.js';

/** Connecting and listing an upstream's tools while registering it may take this long. */
const LIST_TIMEOUT_MS = 15_000;

/** A tool the upstream offers that could not be registered, and why. */
type Skipped = { tool: string; reason: string };

/**
 * `/v1/upstreams`: MCP servers whose tools are registered as `upstream.tool` and called by
 * workers through an MCP client. Header values (secret references and literals) are never
 * returned: views list header names and where each value comes from.
 */
export function upstreamsRouter(deps: PlannerDeps): Router {
  const v1 = Router();
  // Upstreams make the planner and workers connect to any URL: an operator's business.
  v1.use('/upstreams', requireScope('admin'));

  v1.put('/upstreams/:name', async (req, res) => {
    const name = parseUpstreamName(req.params.name);
    const parsed = UpstreamSpec.safeParse(req.body);
    if (!parsed.success) {
      // Issues name the offending field; zod does not echo header values in its messages.
      throw new RequestError('INVALID_REQUEST', 'upstream body is invalid', { issues: zodIssues(parsed.error.issues) });
    }
    const { tenant } = principalOf(res);
    const offered = await listTools(deps, name, parsed.data, tenant);
    const { upstream, created } = await deps.upstreams.put(name, parsed.data, tenant);
    const sync = await syncTools(deps, upstream, offered);
    res.status(created ? 201 : 200).json(upstreamView(upstream, sync.tools, sync.skipped));
  });

  v1.get('/upstreams', async (_req, res) => {
    const [upstreams, tools] = await Promise.all([deps.upstreams.list(), deps.registry.list()]);
    res.json({ upstreams: upstreams.map((u) => upstreamView(u, toolsOf(tools, u.name))) });
  });

  v1.get('/upstreams/:name', async (req, res) => {
    const upstream = await found(deps, parseUpstreamName(req.params.name));
    res.json(upstreamView(upstream, toolsOf(await deps.registry.list(), upstream.name)));
  });

  v1.post('/upstreams/:name/refresh', async (req, res) => {
    const upstream = await found(deps, parseUpstreamName(req.params.name));
    const offered = await listTools(deps, upstream.name, upstream, upstream.tenant);
    const sync = await syncTools(deps, upstream, offered);
    res.json(upstreamView(upstream, sync.tools, sync.skipped));
  });

  v1.delete('/upstreams/:name', async (req, res) => {
    const name = parseUpstreamName(req.params.name);
    if (!(await deps.upstreams.delete(name))) throw notFound(name);
    // Calls already queued fail with REJECTED when they run: their upstream is gone.
    for (const tool of toolsOf(await deps.registry.list(), name)) await deps.registry.delete(tool);
    res.status(204).end();
  });

  return v1;
}

function parseUpstreamName(raw: unknown): string {
  const parsed = UpstreamName.safeParse(raw);
  if (!parsed.success) throw new RequestError('INVALID_REQUEST', `invalid upstream name: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

function notFound(name: string): RequestError {
  return new RequestError('NOT_FOUND', `no upstream named '${name}'`);
}

async function found(deps: PlannerDeps, name: string): Promise<Upstream> {
  const upstream = await deps.upstreams.get(name);
  if (!upstream) throw notFound(name);
  return upstream;
}

/** Names of the registered tools that belong to upstream `name`. */
function toolsOf(tools: Tool[], name: string): string[] {
  return tools.filter((t) => t.upstream?.name === name).map((t) => t.name);
}

/** Connects with the upstream's headers and lists its tools; errors never quote a header value. */
async function listTools(deps: PlannerDeps, name: string, spec: UpstreamSpec, tenant: string): Promise<McpTool[]> {
  let headers: Record<string, string>;
  try {
    headers = await resolveUpstreamHeaders({ name, headers: spec.headers, tenant }, deps.secrets);
  } catch (err: unknown) {
    if (err instanceof UpstreamSecretError) throw new RequestError('INVALID_REQUEST', err.message);
    throw err;
  }
  try {
    return await listUpstreamTools({ url: spec.url, headers }, { timeoutMs: Math.min(LIST_TIMEOUT_MS, Math.max(spec.timeoutMs, 5_000)) });
  } catch (err: unknown) {
    if (err instanceof UpstreamConnectError) throw new RequestError('UPSTREAM_ERROR', err.message);
    throw err;
  }
}

/**
 * Makes the registry match what the upstream offers: new and changed tools are put (a put makes
 * a new version and announces the change, so unchanged tools are left alone), tools it no longer
 * offers are removed. Tools whose name or schema we cannot take are skipped and reported.
 */
async function syncTools(
  deps: PlannerDeps,
  upstream: Upstream,
  offered: McpTool[],
): Promise<{ tools: string[]; skipped: Skipped[] }> {
  const current = new Map((await deps.registry.list()).map((t) => [t.name, t]));
  const tools: string[] = [];
  const skipped: Skipped[] = [];
  for (const t of offered) {
    const name = `${upstream.name}.${t.name}`;
    if (!ToolName.safeParse(name).success) {
      skipped.push({ tool: t.name, reason: `'${name}' is not a valid tool name (letters, digits, _ - . only, at most 64)` });
      continue;
    }
    const existing = current.get(name);
    if (existing && existing.upstream?.name !== upstream.name) {
      skipped.push({ tool: t.name, reason: `a tool named '${name}' exists and does not belong to this upstream` });
      continue;
    }
    const spec = upstreamToolSpec(upstream, t);
    try {
      deps.validator.checkSchema(spec.parameters);
    } catch (err: unknown) {
      skipped.push({ tool: t.name, reason: (err as Error).message });
      continue;
    }
    if (!existing || canonicalJson(specOf(existing)) !== canonicalJson(spec)) {
      const { tool } = await deps.registry.put(name, spec, upstream.tenant);
      await deps.calls.lifecycle.applyToolSettings(tool);
    }
    tools.push(name);
  }
  const keep = new Set(tools);
  for (const name of toolsOf([...current.values()], upstream.name)) {
    if (!keep.has(name)) await deps.registry.delete(name);
  }
  return { tools: tools.sort(), skipped };
}

/** The registry entry of one upstream tool: its schema and description, the upstream's settings. */
function upstreamToolSpec(upstream: Upstream, t: McpTool): ToolSpec {
  // Upstreams often declare a newer JSON Schema draft than Ajv's default; the keywords we validate
  // arguments with are the same, and the declaration would only make compiling fail.
  const { $schema: _declared, ...parameters } = t.inputSchema as Record<string, unknown>;
  const description = (t.description || t.title || `${t.name} on MCP upstream ${upstream.name}`).slice(0, 4096);
  return ToolSpec.parse({
    description,
    parameters,
    code: UPSTREAM_TOOL_CODE,
    limits: { timeoutMs: upstream.timeoutMs },
    ...(upstream.rateLimit ? { rateLimit: upstream.rateLimit } : {}),
    ...(upstream.breaker ? { breaker: upstream.breaker } : {}),
    ...(upstream.retries ? { retries: upstream.retries } : {}),
    ...(upstream.concurrency ? { concurrency: upstream.concurrency } : {}),
    upstream: { name: upstream.name, tool: t.name },
  });
}

function specOf(tool: Tool): ToolSpec {
  // What the registry adds to a version (who, when, code hash) is not part of the spec.
  const { name: _n, version: _v, createdAt: _c, tenant: _t, codeHash: _h, createdBy: _b, rolledBackFrom: _r, ...spec } = tool;
  return spec;
}

/** The upstream as the API shows it: header names and sources, never values. */
function upstreamView(upstream: Upstream, tools: string[], skipped?: Skipped[]) {
  return {
    name: upstream.name,
    url: upstream.url,
    headers: Object.entries(upstream.headers).map(([name, value]) => {
      const source = parseHeaderSource(value);
      return source.kind === 'secret' ? { name, secret: source.secret } : { name, literal: true };
    }),
    timeoutMs: upstream.timeoutMs,
    ...(upstream.rateLimit ? { rateLimit: upstream.rateLimit } : {}),
    ...(upstream.breaker ? { breaker: upstream.breaker } : {}),
    ...(upstream.retries ? { retries: upstream.retries } : {}),
    ...(upstream.concurrency ? { concurrency: upstream.concurrency } : {}),
    tools,
    ...(skipped ? { skipped } : {}),
    createdAt: upstream.createdAt,
    updatedAt: upstream.updatedAt,
  };
}

const UpstreamParams = z.object({ name: UpstreamName });
/** An upstream as the API shows it: header names and their sources, never their values. */
const UpstreamView = apiSchema('Upstream', z.looseObject({ name: z.string(), url: z.string(), tools: z.array(z.string()) }));
const EXAMPLE_UPSTREAM = { name: 'github', url: 'https://mcp.example.com/mcp', headers: { authorization: { kind: 'secret', secret: 'GITHUB_TOKEN' } }, tools: ['github.search'] };

/** The routes of {@link upstreamsRouter}, for the API document. */
export const upstreamsApi: ApiRoute[] = [
  {
    method: 'put',
    path: '/v1/upstreams/:name',
    tag: 'upstreams',
    auth: 'admin',
    summary: 'Register an MCP server whose tools become `name.tool`',
    params: UpstreamParams,
    body: apiSchema('UpstreamSpec', UpstreamSpec),
    responses: { 201: { description: 'registered, with its tools', schema: UpstreamView }, 200: { description: 'replaced', schema: UpstreamView } },
    errors: ['UPSTREAM_ERROR'],
    example: { request: { url: 'https://mcp.example.com/mcp', headers: { authorization: 'secret:GITHUB_TOKEN' } }, response: EXAMPLE_UPSTREAM, status: 201 },
  },
  {
    method: 'get',
    path: '/v1/upstreams',
    tag: 'upstreams',
    auth: 'admin',
    summary: 'List MCP upstreams',
    responses: { 200: { description: 'the upstreams', schema: z.object({ upstreams: z.array(UpstreamView) }) } },
    example: { response: { upstreams: [EXAMPLE_UPSTREAM] } },
  },
  {
    method: 'get',
    path: '/v1/upstreams/:name',
    tag: 'upstreams',
    auth: 'admin',
    summary: 'Read an MCP upstream',
    params: UpstreamParams,
    responses: { 200: { description: 'the upstream', schema: UpstreamView } },
    errors: ['NOT_FOUND'],
    example: { response: EXAMPLE_UPSTREAM },
  },
  {
    method: 'post',
    path: '/v1/upstreams/:name/refresh',
    tag: 'upstreams',
    auth: 'admin',
    summary: "Read the upstream's tools again",
    params: UpstreamParams,
    responses: { 200: { description: 'the upstream with its tools now', schema: UpstreamView } },
    errors: ['NOT_FOUND', 'UPSTREAM_ERROR'],
    example: { response: EXAMPLE_UPSTREAM },
  },
  {
    method: 'delete',
    path: '/v1/upstreams/:name',
    tag: 'upstreams',
    auth: 'admin',
    summary: 'Remove an upstream and its tools',
    params: UpstreamParams,
    responses: { 204: { description: 'removed' } },
    errors: ['NOT_FOUND'],
    example: { params: { name: 'github' } },
  },
];
