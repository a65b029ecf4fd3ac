import { Router } from 'express';
import { z } from 'zod';
import { CALL_ID_PATTERN, RequestError, Scope, TenantName, canSee, type CallJobData, type Principal, type Tool } from '@toolplane/core';
import { isRunFinished } from '@toolplane/agent';
import { principalOf, requireScope } from './auth.js';
import type { ApiRoute } from './api-spec.js';
import type { PlannerDeps } from './deps.js';
import { parseToolName, toolNotFound, zodIssues } from './http-util.js';
import { toolView } from './tool-formats.js';
import { STATS_WINDOW_MS, ToolHealthReader } from './tool-stats.js';

/*
 * `/v1/console/…`: what the web console shows that the rest of the API does not answer in one
 * request — tools with their live health, one call with its arguments, trace and earlier runs, the
 * approval inbox, the runs in progress. Tenant-scoped and scope-checked like every /v1 route: a
 * tenant key sees its tenant's only, an admin key every tenant's (or one, with `?tenant=`).
 */

/** `GET /v1/console/session`: who the console acts as. */
export const ConsoleSession = z.object({
  tenant: z.string(),
  keyId: z.string(),
  scopes: z.array(Scope),
  admin: z.boolean(),
  /** Trace UI address with `{traceId}` in it (`CONSOLE_TRACE_URL`), or null. */
  traceUrl: z.string().nullable(),
});
export type ConsoleSession = z.infer<typeof ConsoleSession>;

/** Query of the listings an admin may narrow to one tenant. */
export const ConsoleTenantQuery = z.object({ tenant: TenantName.optional() }).strict();

const Counts = z.object({ waiting: z.number(), active: z.number(), delayed: z.number(), prioritized: z.number(), completed: z.number(), failed: z.number() });

/** One tool in `GET /v1/console/tools`. */
export const ConsoleTool = z.object({
  name: z.string(),
  tenant: z.string(),
  version: z.number(),
  description: z.string(),
  enabled: z.boolean(),
  requiresApproval: z.boolean(),
  availability: z.enum(['AVAILABLE', 'UNAVAILABLE', 'RATE_LIMITED']),
  reason: z.string().optional(),
  retryAfterMs: z.number().optional(),
  breaker: z.enum(['closed', 'half_open', 'open']),
  holdMs: z.number(),
  rateLimitMs: z.number(),
  queue: Counts,
  stats: z.object({
    calls: z.number(),
    errors: z.number(),
    callsPerMin: z.number(),
    errorRate: z.number().nullable(),
    p50Ms: z.number().nullable(),
    p95Ms: z.number().nullable(),
    sample: z.number(),
  }),
});
export type ConsoleTool = z.infer<typeof ConsoleTool>;

/** `GET /v1/console/tools`. */
export const ConsoleToolList = z.object({ windowMs: z.number(), tools: z.array(ConsoleTool) });

/** `GET /v1/console/tools/{name}`: the health of {@link ConsoleTool} and the whole spec. */
export const ConsoleToolDetail = z.object({ windowMs: z.number(), tool: ConsoleTool, spec: z.record(z.string(), z.unknown()) });

const SerializedErrorShape = z.object({ code: z.string(), message: z.string() }).passthrough();

/** One attempt of a call as the console lists them: numbered across retries, oldest first. */
export const ConsoleAttempt = z.object({
  number: z.number(),
  outcome: z.enum(['succeeded', 'failed', 'running', 'waiting']),
  error: SerializedErrorShape.optional(),
  /** Epoch ms; absent for an attempt BullMQ retried by itself (it keeps the last attempt's times only). */
  startedAt: z.number().optional(),
  finishedAt: z.number().optional(),
  runMs: z.number().nullable(),
});

/** `GET /v1/console/calls/{id}`. */
export const ConsoleCall = z.object({
  /** The call as `GET /v1/calls/{id}` shows it. */
  call: z.record(z.string(), z.unknown()),
  /** Present while the call is in Redis (history keeps the record, not the arguments). */
  arguments: z.unknown().optional(),
  traceId: z.string().optional(),
  deadlineAt: z.number().optional(),
  /** The argument hash an approval binds to, while the call waits for one. */
  pendingArgsHash: z.string().optional(),
  /** The argument hash that was approved. */
  approvedArgsHash: z.string().optional(),
  attempts: z.array(ConsoleAttempt),
});
export type ConsoleCall = z.infer<typeof ConsoleCall>;

/** One entry of `GET /v1/console/approvals`. */
export const ConsoleApproval = z.object({
  id: z.string(),
  tool: z.string(),
  tenant: z.string(),
  argsHash: z.string(),
  arguments: z.unknown(),
  createdAt: z.string(),
});
export const ConsoleApprovalList = z.object({ approvals: z.array(ConsoleApproval) });

/** `GET /v1/console/runs`: runs in progress. */
export const ConsoleRunList = z.object({
  runs: z.array(z.object({ id: z.string(), tenant: z.string(), status: z.string(), input: z.string(), model: z.string(), createdAt: z.string(), steps: z.number() })),
});

/** Awaiting calls read per tool, at most: the inbox shows the newest of them. */
const APPROVALS_PER_TOOL = 200;
/** Runs in progress looked at, at most. */
const RUNS_LISTED = 100;

export function consoleDataRouter(deps: PlannerDeps): Router {
  const v1 = Router();
  const health = new ToolHealthReader({ redis: deps.redis, gate: deps.gate, queues: deps.calls.queues });

  const tenantFilter = (raw: unknown, principal: Principal): string | undefined => {
    const q = ConsoleTenantQuery.safeParse(raw);
    if (!q.success) throw new RequestError('INVALID_REQUEST', 'invalid query', { issues: zodIssues(q.error.issues) });
    if (q.data.tenant !== undefined && !canSee(principal, q.data.tenant)) {
      throw new RequestError('FORBIDDEN', "only admins may look at another tenant's data");
    }
    return q.data.tenant;
  };
  const visibleTools = async (principal: Principal, tenant: string | undefined): Promise<Tool[]> =>
    (await deps.registry.list()).filter((t) => canSee(principal, t.tenant) && (tenant === undefined || t.tenant === tenant));
  const summary = async (tool: Tool): Promise<ConsoleTool> => ({
    name: tool.name,
    tenant: tool.tenant,
    version: tool.version,
    description: tool.description,
    enabled: tool.enabled !== false,
    requiresApproval: tool.requiresApproval,
    ...(await health.of(tool)),
  });

  v1.get('/console/session', (_req, res) => {
    const p = principalOf(res);
    const session: ConsoleSession = { tenant: p.tenant, keyId: p.keyId, scopes: [...p.scopes], admin: p.scopes.includes('admin'), traceUrl: deps.consoleTraceUrl ?? null };
    res.json(session);
  });

  v1.get('/console/tools', requireScope('tools:read'), async (req, res) => {
    const principal = principalOf(res);
    const tools = await visibleTools(principal, tenantFilter(req.query, principal));
    const list = await Promise.all(tools.sort((a, b) => a.name.localeCompare(b.name)).map(summary));
    res.json({ windowMs: STATS_WINDOW_MS, tools: list });
  });

  v1.get('/console/tools/:name', requireScope('tools:read'), async (req, res) => {
    const name = parseToolName(req.params.name);
    const tool = await deps.registry.get(name);
    if (!tool || !canSee(principalOf(res), tool.tenant)) throw toolNotFound(name);
    const spec = {
      ...toolView(tool),
      tenant: tool.tenant,
      requiresApproval: tool.requiresApproval,
      ...(tool.tenantRateLimit ? { tenantRateLimit: tool.tenantRateLimit } : {}),
      ...(tool.deadlineMs ? { deadlineMs: tool.deadlineMs } : {}),
    };
    res.json({ windowMs: STATS_WINDOW_MS, tool: await summary(tool), spec });
  });

  v1.get('/console/calls/:id', requireScope('calls:read'), async (req, res) => {
    const id = String(req.params.id);
    const record = CALL_ID_PATTERN.test(id) ? await deps.calls.reads.get(id) : undefined;
    if (!record || !canSee(principalOf(res), record.tenant)) throw new RequestError('NOT_FOUND', `no call with id '${id}'`);
    const tool = record.tool;
    const job = await deps.calls.queues.queue(tool).getJob(id);
    const data = job?.data as CallJobData | undefined;
    const [pending, granted, earlier] = await Promise.all([
      deps.redis.get(deps.keys.approvalPending(tool, id)),
      deps.calls.actions.approvalGrant(tool, id),
      deps.calls.reads.earlierRuns(tool, id),
    ]);
    const attempts: Array<z.infer<typeof ConsoleAttempt>> = [];
    const add = (run: { attempts: number; error?: { code: string; message: string }; startedAt?: number; finishedAt?: number; runMs: number | null }, last: z.infer<typeof ConsoleAttempt>['outcome']) => {
      // BullMQ keeps the times of a run's last attempt only; its earlier ones (its own retries) failed.
      for (let i = 1; i < run.attempts; i++) attempts.push({ number: attempts.length + 1, outcome: 'failed', runMs: null });
      attempts.push({
        number: attempts.length + 1,
        outcome: last,
        ...(run.error ? { error: run.error } : {}),
        ...(run.startedAt ? { startedAt: run.startedAt } : {}),
        ...(run.finishedAt ? { finishedAt: run.finishedAt } : {}),
        runMs: run.runMs,
      });
    };
    for (const run of earlier) add(run, 'failed');
    const current = { attempts: record.attempts, ...(record.error ? { error: record.error } : {}), ...(job?.processedOn ? { startedAt: job.processedOn } : {}), ...(job?.finishedOn ? { finishedAt: job.finishedOn } : {}), runMs: record.timings.runMs };
    switch (record.status) {
      case 'succeeded':
        add(current, 'succeeded');
        break;
      case 'failed':
        if (record.attempts > 0) add(current, 'failed');
        break;
      case 'running':
        add({ ...current, attempts: record.attempts + 1, runMs: null }, 'running');
        break;
      case 'queued':
      case 'awaiting_approval':
      case 'cancelled':
        if (record.attempts > 0) add(current, 'failed');
        break;
    }
    const traceparent = data?.trace?.traceparent;
    const body: ConsoleCall = {
      call: record,
      ...(data ? { arguments: data.arguments } : {}),
      ...(traceparent ? { traceId: traceparent.split('-')[1] } : {}),
      ...(data?.deadlineAt ? { deadlineAt: data.deadlineAt } : {}),
      ...(pending ? { pendingArgsHash: pending } : {}),
      ...(granted ? { approvedArgsHash: granted } : {}),
      attempts,
    };
    res.json(body);
  });

  v1.get('/console/approvals', requireScope('calls:read'), async (req, res) => {
    const principal = principalOf(res);
    const tenant = tenantFilter(req.query, principal);
    // The tools this key sees; another tenant's calls of them stay out (a tool's owner sees its own tenant's calls only).
    const tools = (await deps.registry.list()).filter((t) => t.requiresApproval && canSee(principal, t.tenant));
    const perTool = await Promise.all(
      tools.map(async (t) => {
        const jobs = await deps.calls.queues.queue(t.name).getDelayed(0, APPROVALS_PER_TOOL - 1);
        const waiting = await Promise.all(jobs.map(async (job) => ((await deps.redis.exists(deps.keys.approvalPending(t.name, job.id!))) ? job : undefined)));
        return waiting.filter((j) => j !== undefined);
      }),
    );
    const approvals = perTool
      .flat()
      .map((job) => ({ id: job.id!, timestamp: job.timestamp, data: job.data as CallJobData }))
      .filter((job) => canSee(principal, job.data.tenant) && (tenant === undefined || job.data.tenant === tenant))
      .sort((a, b) => b.timestamp - a.timestamp || (a.id < b.id ? 1 : -1))
      .map((job) => ({ id: job.id, tool: job.data.tool, tenant: job.data.tenant, argsHash: job.data.argsHash, arguments: job.data.arguments, createdAt: new Date(job.timestamp).toISOString() }));
    res.json({ approvals });
  });

  v1.get('/console/runs', requireScope('runs:read'), async (req, res) => {
    const principal = principalOf(res);
    const tenant = tenantFilter(req.query, principal);
    if (!deps.runs) return void res.json({ runs: [] });
    const store = deps.runs.store;
    const records = await Promise.all((await store.activeIds(RUNS_LISTED)).map((id) => store.get(id)));
    const runs = records
      .filter((r) => r !== undefined && !isRunFinished(r.status))
      .filter((r) => canSee(principal, r!.tenant) && (tenant === undefined || (r!.tenant ?? 'default') === tenant))
      .map((r) => ({ id: r!.id, tenant: r!.tenant ?? 'default', status: r!.status, input: r!.input.slice(0, 200), model: r!.model, createdAt: r!.createdAt, steps: r!.steps.length }))
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt));
    res.json({ runs });
  });

  return v1;
}

const ToolNameParams = z.object({ name: z.string().describe('the tool name') });
const CallIdParams = z.object({ id: z.string().describe('the call id') });
const EXAMPLE_TOOL: ConsoleTool = {
  name: 'add',
  tenant: 'acme',
  version: 3,
  description: 'Adds two numbers',
  enabled: true,
  requiresApproval: false,
  availability: 'AVAILABLE',
  breaker: 'closed',
  holdMs: 0,
  rateLimitMs: 0,
  queue: { waiting: 2, active: 1, delayed: 0, prioritized: 0, completed: 120, failed: 3 },
  stats: { calls: 123, errors: 3, callsPerMin: 24.6, errorRate: 0.024, p50Ms: 4, p95Ms: 18, sample: 123 },
};

/** The console's routes for the API document (api-routes.ts). */
export const consoleApi: ApiRoute[] = [
  {
    method: 'get',
    path: '/v1/console/session',
    tag: 'console',
    auth: 'authenticated',
    summary: 'Who the key acts as, for the web console',
    responses: { 200: { description: 'the key', schema: ConsoleSession } },
    example: { response: { tenant: 'acme', keyId: '82f1b0ccff806059', scopes: ['tools:read', 'calls:read'], admin: false, traceUrl: null } },
  },
  {
    method: 'get',
    path: '/v1/console/tools',
    tag: 'console',
    auth: 'tools:read',
    summary: 'Tools with their live health: availability, breaker, holds, queue counts and the last 5 minutes of traffic',
    description: "An admin key sees every tenant's tools, or one tenant's with `tenant`.",
    query: ConsoleTenantQuery,
    responses: { 200: { description: 'the tools', schema: ConsoleToolList } },
    errors: ['FORBIDDEN'],
    example: { response: { windowMs: STATS_WINDOW_MS, tools: [EXAMPLE_TOOL] } },
  },
  {
    method: 'get',
    path: '/v1/console/tools/:name',
    tag: 'console',
    auth: 'tools:read',
    summary: "One tool's health and its whole spec",
    params: ToolNameParams,
    responses: { 200: { description: 'the tool', schema: ConsoleToolDetail } },
    errors: ['TOOL_NOT_FOUND'],
    example: { response: { windowMs: STATS_WINDOW_MS, tool: EXAMPLE_TOOL, spec: { name: 'add', version: 3, requiresApproval: false } } },
  },
  {
    method: 'get',
    path: '/v1/console/calls/:id',
    tag: 'console',
    auth: 'calls:read',
    summary: 'A call with its arguments, trace id, approval hashes and attempts across retries',
    params: CallIdParams,
    responses: { 200: { description: 'the call', schema: ConsoleCall } },
    errors: ['NOT_FOUND'],
    example: {
      response: {
        call: { id: '01m8q2x7z3k4v5w6y7a8b9c0d1', tool: 'add', status: 'succeeded', result: 5 },
        arguments: { a: 2, b: 3 },
        attempts: [{ number: 1, outcome: 'succeeded', startedAt: 1764504000010, finishedAt: 1764504000014, runMs: 4 }],
      },
    },
  },
  {
    method: 'get',
    path: '/v1/console/approvals',
    tag: 'console',
    auth: 'calls:read',
    summary: 'Calls awaiting approval, newest first',
    query: ConsoleTenantQuery,
    responses: { 200: { description: 'the inbox', schema: ConsoleApprovalList } },
    errors: ['FORBIDDEN'],
    example: {
      response: {
        approvals: [{ id: '01m8q2x7z3k4v5w6y7a8b9c0d1', tool: 'refund', tenant: 'acme', argsHash: 'a'.repeat(64), arguments: { order: 42 }, createdAt: '2026-11-30T12:00:00.000Z' }],
      },
    },
  },
  {
    method: 'get',
    path: '/v1/console/runs',
    tag: 'console',
    auth: 'runs:read',
    summary: 'Agent runs in progress, newest first',
    query: ConsoleTenantQuery,
    responses: { 200: { description: 'the runs', schema: ConsoleRunList } },
    errors: ['FORBIDDEN'],
    example: {
      response: { runs: [{ id: '01m8q2x7z3k4v5w6y7a8b9c0d2', tenant: 'acme', status: 'running', input: 'What is 2+3?', model: 'gpt-4o-mini', createdAt: '2026-11-30T12:00:00.000Z', steps: 1 }] },
    },
  },
];
