import { Router } from 'express';
import { z } from 'zod';
import { MAX_TOOL_CODE_BYTES, RequestError, ToolName, ToolSpec, canSee } from '@toolplane/core';
import { apiSchema, type ApiRoute } from './api-spec.js';
import { principalOf, requireScope } from './auth.js';
import type { PlannerDeps } from './deps.js';
import { parseToolName, toolNotFound, zodIssues } from './http-util.js';
import { filterAvailable } from './tool-availability.js';
import { mcpTool, openAiTool, toolView } from './tool-formats.js';

/** `/v1/tools`: the registry. */
export function toolsRouter(deps: PlannerDeps): Router {
  const v1 = Router();
  v1.put('/tools/:name', requireScope('tools:write'), async (req, res) => {
    const name = parseToolName(req.params.name);
    const principal = principalOf(res);
    const parsed = ToolSpec.safeParse(req.body);
    if (!parsed.success) {
      throw new RequestError('INVALID_TOOL', 'tool body is invalid', { issues: zodIssues(parsed.error.issues) });
    }
    const spec = parsed.data;
    if (spec.upstream || (await deps.registry.get(name))?.upstream) {
      throw new RequestError('INVALID_TOOL', 'tools of MCP upstreams are managed through /v1/upstreams');
    }
    if (Buffer.byteLength(spec.code) > MAX_TOOL_CODE_BYTES) {
      throw new RequestError('INVALID_TOOL', `code is larger than ${MAX_TOOL_CODE_BYTES} bytes`);
    }
    deps.validator.checkSchema(spec.parameters);
    const check = await deps.codeChecker.check(spec.code, { tenant: principal.tenant });
    if (!check.ok) throw new RequestError('INVALID_TOOL', check.message);
    // Tool names are global (they name queues); a name belongs to the tenant that took it first.
    const existing = await deps.registry.get(name);
    if (existing && !canSee(principal, existing.tenant)) {
      throw new RequestError('FORBIDDEN', `the tool name '${name}' belongs to another tenant`);
    }
    const { tool, created } = await deps.registry.put(name, spec, existing?.tenant ?? principal.tenant, { createdBy: principal.keyId });
    await deps.calls.lifecycle.applyToolSettings(tool);
    await pruneVersions(deps, name);
    res.status(created ? 201 : 200).json(toolView(tool));
  });

  v1.get('/tools/:name/versions', requireScope('tools:read'), async (req, res) => {
    const name = parseToolName(req.params.name);
    const tool = await deps.registry.get(name);
    if (!tool || !canSee(principalOf(res), tool.tenant)) throw toolNotFound(name);
    res.json({ name, versions: await deps.registry.versions(name) });
  });

  v1.post('/tools/:name/rollback', requireScope('tools:write'), async (req, res) => {
    const name = parseToolName(req.params.name);
    const principal = principalOf(res);
    const body = RollbackBody.safeParse(req.body);
    if (!body.success) throw new RequestError('INVALID_REQUEST', 'rollback body is invalid', { issues: zodIssues(body.error.issues) });
    const current = await deps.registry.get(name);
    if (!current || !canSee(principal, current.tenant)) throw toolNotFound(name);
    if (current.upstream) throw new RequestError('INVALID_TOOL', 'tools of MCP upstreams are managed through /v1/upstreams');
    const tool = await deps.registry.rollback(name, body.data.version, { createdBy: principal.keyId });
    if (!tool) throw new RequestError('NOT_FOUND', `tool '${name}' has no version ${body.data.version} (see GET /v1/tools/${name}/versions)`);
    await deps.calls.lifecycle.applyToolSettings(tool);
    await pruneVersions(deps, name);
    res.json(toolView(tool));
  });

  v1.get('/tools', requireScope('tools:read'), async (req, res) => {
    const principal = principalOf(res);
    const visible = (await deps.registry.list()).filter((t) => canSee(principal, t.tenant));
    // `?available=true`: only what a model can call now (enabled, breaker not open, no hold).
    const tools = await filterAvailable({ gate: deps.gate, queues: deps.calls.queues }, visible, req.query.available);
    switch (req.query.format) {
      case 'openai':
        return void res.json(tools.map(openAiTool));
      case 'mcp':
        return void res.json({ tools: tools.map(mcpTool) });
      case undefined:
        return void res.json({ tools: tools.map(toolView) });
      default:
        throw new RequestError('INVALID_REQUEST', 'format must be openai or mcp');
    }
  });

  v1.get('/tools/:name', requireScope('tools:read'), async (req, res) => {
    const name = parseToolName(req.params.name);
    const tool = await deps.registry.get(name);
    if (!tool || !canSee(principalOf(res), tool.tenant)) throw toolNotFound(name);
    const queue = deps.calls.queues.queue(name);
    const [counts, breaker, holdMs, recent] = await Promise.all([
      queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed'),
      deps.gate.breakerState(name),
      deps.gate.holdRemaining(name),
      queue.getJobs(['completed', 'failed'], 0, STATS_SAMPLE - 1),
    ]);
    const runs = recent
      .filter((j) => j.processedOn && j.finishedOn)
      .map((j) => j.finishedOn! - j.processedOn!)
      .sort((a, b) => a - b);
    res.json({
      ...toolView(tool),
      stats: {
        calls: counts.completed! + counts.failed!,
        errors: counts.failed,
        latencyMs: { p50: percentile(runs, 0.5), p95: percentile(runs, 0.95), sample: runs.length },
        breaker,
        rateLimitHoldMs: holdMs,
        queue: counts,
      },
    });
  });

  v1.delete('/tools/:name', requireScope('tools:write'), async (req, res) => {
    const name = parseToolName(req.params.name);
    const tool = await deps.registry.get(name);
    if (!tool || !canSee(principalOf(res), tool.tenant) || !(await deps.registry.delete(name))) throw toolNotFound(name);
    deps.validator.forget(name);
    // What the tool held goes now, except what its calls still need (to run, to be archived or read
    // until their retention); the planner's sweep of deleted tools gives back the rest later.
    await deps.calls.lifecycle.settleDeleted(name, deps.registry);
    res.status(204).end();
  });

  return v1;
}

const RollbackBody = z.object({ version: z.number().int().min(1) }).strict();

/** Drops the oldest versions past the registry's count, keeping those queued calls still reference. */
async function pruneVersions(deps: PlannerDeps, name: string): Promise<void> {
  await deps.registry.prune(name, await deps.calls.lifecycle.queuedVersions(name));
}

/** Latency figures come from the most recent finished calls kept in the queue. */
const STATS_SAMPLE = 200;

function percentile(sorted: number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

const ToolParams = z.object({ name: ToolName });
/** A tool as the API shows it ({@link toolView}); loose, as fields are added over time. */
const ToolView = apiSchema(
  'Tool',
  z.looseObject({
    name: z.string(),
    version: z.number().int(),
    description: z.string(),
    parameters: z.record(z.string(), z.unknown()),
    code: z.string(),
    enabled: z.boolean(),
    createdAt: z.string(),
  }),
);
const ToolsQuery = z.object({
  format: z.enum(['openai', 'mcp']).optional().describe('`openai`: function-calling tools; `mcp`: MCP tool objects'),
  available: z.enum(['true', 'false']).optional().describe('only tools a model can call now'),
});
const ToolVersions = z.object({
  name: z.string(),
  versions: z.array(z.looseObject({ version: z.number().int(), createdAt: z.string(), current: z.boolean() })),
});

const EXAMPLE_TOOL_BODY = {
  description: 'Adds two numbers',
  parameters: { type: 'object', properties: { a: { type: 'number' }, b: { type: 'number' } }, required: ['a', 'b'] },
  code: 'export default async function (args, ctx) { return args.a + args.b }',
  limits: { timeoutMs: 1000, memoryMb: 32 },
};
const EXAMPLE_TOOL = { name: 'add', version: 1, ...EXAMPLE_TOOL_BODY, enabled: true, createdAt: '2026-11-30T12:00:00.000Z' };

/** The routes of {@link toolsRouter}, for the API document. */
export const toolsApi: ApiRoute[] = [
  {
    method: 'put',
    path: '/v1/tools/:name',
    tag: 'tools',
    auth: 'tools:write',
    summary: 'Register or replace a tool',
    description: 'The code is checked in a throwaway isolate. Every replace makes a new version.',
    params: ToolParams,
    body: apiSchema('ToolSpec', ToolSpec),
    responses: { 201: { description: 'registered', schema: ToolView }, 200: { description: 'replaced: a new version', schema: ToolView } },
    errors: ['INVALID_TOOL', 'FORBIDDEN'],
    example: { request: EXAMPLE_TOOL_BODY, response: EXAMPLE_TOOL, status: 201 },
  },
  {
    method: 'get',
    path: '/v1/tools',
    tag: 'tools',
    auth: 'tools:read',
    summary: 'List your tools',
    query: ToolsQuery,
    responses: {
      200: {
        description: '`{"tools":[…]}`; with `format=openai` an array of `{"type":"function","function":{…}}`',
        schema: z.union([z.object({ tools: z.array(z.looseObject({ name: z.string() })) }), z.array(z.looseObject({ type: z.literal('function') }))]),
      },
    },
    example: { response: { tools: [EXAMPLE_TOOL] } },
  },
  {
    method: 'get',
    path: '/v1/tools/:name',
    tag: 'tools',
    auth: 'tools:read',
    summary: 'Read a tool with its live stats',
    params: ToolParams,
    responses: { 200: { description: 'the tool and its stats (calls, errors, latency, breaker, queue)', schema: ToolView } },
    errors: ['TOOL_NOT_FOUND'],
    example: { response: { ...EXAMPLE_TOOL, stats: { calls: 10, errors: 1, latencyMs: { p50: 2, p95: 5, sample: 10 }, breaker: 'closed' } } },
  },
  {
    method: 'delete',
    path: '/v1/tools/:name',
    tag: 'tools',
    auth: 'tools:write',
    summary: 'Remove a tool',
    params: ToolParams,
    responses: { 204: { description: 'removed' } },
    errors: ['TOOL_NOT_FOUND'],
    example: { params: { name: 'add' } },
  },
  {
    method: 'get',
    path: '/v1/tools/:name/versions',
    tag: 'tools',
    auth: 'tools:read',
    summary: "A tool's kept versions, newest first",
    params: ToolParams,
    responses: { 200: { description: 'the versions', schema: ToolVersions } },
    errors: ['TOOL_NOT_FOUND'],
    example: { response: { name: 'add', versions: [{ version: 2, createdAt: '2026-11-30T12:00:00.000Z', codeHash: 'ab12', current: true }] } },
  },
  {
    method: 'post',
    path: '/v1/tools/:name/rollback',
    tag: 'tools',
    auth: 'tools:write',
    summary: 'Make an older version current again (as a new version)',
    params: ToolParams,
    body: RollbackBody,
    responses: { 200: { description: 'the new current version', schema: ToolView } },
    errors: ['TOOL_NOT_FOUND', 'NOT_FOUND', 'INVALID_TOOL'],
    example: { request: { version: 1 }, response: { ...EXAMPLE_TOOL, version: 3, rolledBackFrom: 1 } },
  },
];
