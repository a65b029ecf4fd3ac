import { once } from 'node:events';
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import {
  CALL_ID_PATTERN,
  CallRecord,
  CallRequest,
  ToolName,
  DEFAULT_WAIT_MS,
  RequestError,
  TenantName,
  canSee,
  isFinished,
  type Principal,
} from '@toolplane/core';
import { apiSchema, type ApiRoute } from './api-spec.js';
import { principalOf, requireScope } from './auth.js';
import { waitForCallDone } from './call-wait.js';
import type { PlannerDeps } from './deps.js';
import { clientGone, zodIssues } from './http-util.js';
import { submitCall, type SubmitOptions } from './submit-call.js';
import { withWebhookStatus } from './routes-webhooks.js';

/** `/v1/calls`: accept, wait for and read calls. */
export function callsRouter(deps: PlannerDeps): Router {
  const v1 = Router();
  /** The call if the request's tenant may see it; 404 otherwise, so ids of others leak nothing. */
  const visible = async (raw: unknown, principal: Principal): Promise<CallRecord> => {
    const record = await found(String(raw), (id) => deps.calls.reads.get(id));
    if (!canSee(principal, record.tenant))
      throw new RequestError('NOT_FOUND', `no call with id '${String(raw)}'`);
    return record;
  };

  v1.post('/calls', requireScope('calls:write'), async (req, res) => {
    const principal = principalOf(res);
    const parsed = CallRequest.safeParse(req.body);
    if (!parsed.success) {
      throw new RequestError('INVALID_REQUEST', 'call body is invalid', {
        issues: zodIssues(parsed.error.issues),
      });
    }
    const body = parsed.data;
    const waitMs = body.wait === true ? DEFAULT_WAIT_MS : body.wait || 0;
    const gone = waitMs > 0 ? clientGone(res) : undefined;
    const { id, duplicate, finished: early } = await submitCall(deps, principal, body.tool, body.arguments, {
      ...callOptionsOf(body),
      ...(gone ? { watch: { timeoutMs: waitMs, signal: gone } } : {}),
    });
    if (!early || !gone) return void res.status(202).json({ id, status: 'queued' });
    // A duplicate may have finished long ago: nobody will announce it again, so read it first.
    if (duplicate) early.cancel();
    const record = await waitForCallDone(deps, id, waitMs, gone, duplicate ? undefined : early, body.tool);
    res
      .status(record && isFinished(record.status) ? 200 : 202)
      .json(record ?? { id, status: 'queued' });
  });

  v1.get('/calls', requireScope('calls:read'), async (req, res) => {
    const principal = principalOf(res);
    const q = ListQuery.safeParse(req.query);
    if (!q.success)
      throw new RequestError('INVALID_REQUEST', 'invalid query', {
        issues: zodIssues(q.error.issues),
      });
    // One tenant per listing, read from that tenant's own index: a key's own tenant, or for an admin
    // any tenant named with `?tenant=` (its own by default).
    const tenant = q.data.tenant ?? principal.tenant;
    if (!canSee(principal, tenant)) throw new RequestError('FORBIDDEN', "only admins may list another tenant's calls");
    const page = await deps.calls.reads.list({
      tenant,
      limit: q.data.limit,
      ...(q.data.tool ? { tool: q.data.tool } : {}),
      ...(q.data.status ? { status: q.data.status } : {}),
      ...(q.data.since !== undefined ? { since: q.data.since } : {}),
      ...(q.data.until !== undefined ? { until: q.data.until } : {}),
      ...(q.data.errorCode ? { errorCode: q.data.errorCode } : {}),
      ...(q.data.argsHash ? { argsHash: q.data.argsHash } : {}),
      ...(q.data.cursor ? { cursor: q.data.cursor } : {}),
    });
    res.json(page);
  });

  /**
   * A tenant's calls as NDJSON (one call per line, newest first), hot and archived alike, read a
   * page at a time and written as the client takes them, so an export of any size holds one page
   * in memory.
   */
  v1.get('/calls/export', requireScope('calls:read'), async (req, res) => {
    const principal = principalOf(res);
    const q = ExportQuery.safeParse(req.query);
    if (!q.success)
      throw new RequestError('INVALID_REQUEST', 'invalid query', { issues: zodIssues(q.error.issues) });
    const tenant = q.data.tenant ?? principal.tenant;
    if (!canSee(principal, tenant)) throw new RequestError('FORBIDDEN', "only admins may export another tenant's calls");
    const gone = clientGone(res);
    res.status(200).type('application/x-ndjson');
    let cursor: string | undefined;
    do {
      const page = await deps.calls.reads.list({
        tenant,
        limit: EXPORT_PAGE,
        ...(q.data.since !== undefined ? { since: q.data.since } : {}),
        ...(q.data.until !== undefined ? { until: q.data.until } : {}),
        ...(cursor ? { cursor } : {}),
      });
      const chunk = page.calls.map((c) => `${JSON.stringify(c)}\n`).join('');
      if (chunk && !res.write(chunk)) await once(res, 'drain', { signal: gone }).catch(() => {});
      cursor = page.nextCursor;
    } while (cursor && !gone.aborted);
    res.end();
  });

  /** Days a tenant's call history is kept (admins only); the archiver's purge applies it. */
  v1.get('/tenants/:tenant/retention', requireScope('admin'), async (req, res) => {
    const tenant = tenantParam(req.params.tenant);
    res.json({ tenant, retentionDays: await historyOf(deps).retentionDays(tenant) });
  });

  v1.put('/tenants/:tenant/retention', requireScope('admin'), async (req, res) => {
    const tenant = tenantParam(req.params.tenant);
    const body = RetentionBody.safeParse(req.body ?? {});
    if (!body.success)
      throw new RequestError('INVALID_REQUEST', 'invalid retention', { issues: zodIssues(body.error.issues) });
    await historyOf(deps).setRetentionDays(tenant, body.data.retentionDays);
    res.json({ tenant, retentionDays: body.data.retentionDays });
  });

  v1.get('/calls/:id', requireScope('calls:read'), async (req, res) => {
    res.json(await withWebhookStatus(deps, 'call', await visible(req.params.id, principalOf(res))));
  });

  v1.post('/calls/:id/cancel', requireScope('calls:write'), async (req, res) => {
    const { id } = await visible(req.params.id, principalOf(res));
    let record = await found(id, (i) => deps.calls.actions.cancel(i));
    // A running call is aborted by its worker within milliseconds: answer with the settled state.
    if (record.status === 'running' || record.status === 'queued') {
      record = (await waitForCall(deps, id, CANCEL_SETTLE_MS, res)) ?? record;
    }
    res.json(record);
  });

  v1.post('/calls/:id/retry', requireScope('calls:write'), async (req, res) => {
    const { id } = await visible(req.params.id, principalOf(res));
    res.status(202).json(await found(id, (i) => deps.calls.actions.retry(i)));
  });

  v1.post('/calls/:id/approve', requireScope('calls:approve'), async (req, res) => {
    const body = ApproveBody.safeParse(req.body ?? {});
    if (!body.success)
      throw new RequestError('INVALID_REQUEST', 'invalid approval', {
        issues: zodIssues(body.error.issues),
      });
    const { id } = await visible(req.params.id, principalOf(res));
    res.json(await found(id, (i) => deps.calls.actions.approve(i, body.data.argsHash)));
  });

  v1.post('/calls/:id/reject', requireScope('calls:approve'), async (req, res) => {
    const { id } = await visible(req.params.id, principalOf(res));
    res.json(await found(id, (i) => deps.calls.actions.reject(i)));
  });

  return v1;
}

/** The per-call options of a request body, as {@link submitCall} takes them. */
function callOptionsOf(body: CallRequest): SubmitOptions {
  return {
    ...(body.idempotencyKey ? { idempotencyKey: body.idempotencyKey } : {}),
    ...(body.priority ? { priority: body.priority } : {}),
    ...(body.delayMs ? { delayMs: body.delayMs } : {}),
    ...(body.deadlineMs ? { deadlineMs: body.deadlineMs } : {}),
    ...(body.version !== undefined ? { version: body.version } : {}),
    ...(body.callbackUrl ? { callbackUrl: body.callbackUrl } : {}),
  };
}

const CANCEL_SETTLE_MS = 2_000;
/** Calls per page an export reads. */
const EXPORT_PAGE = 500;

const TimeParam = z.union([z.coerce.number().int().min(0), z.iso.datetime().transform((d) => Date.parse(d))]);

const ExportQuery = z
  .object({ since: TimeParam.optional(), until: TimeParam.optional(), tenant: TenantName.optional() })
  .strict();

const RetentionBody = z.object({ retentionDays: z.number().int().min(1).max(3_650) }).strict();

function tenantParam(raw: unknown): string {
  const t = TenantName.safeParse(raw);
  if (!t.success) throw new RequestError('INVALID_REQUEST', 'invalid tenant name');
  return t.data;
}

function historyOf(deps: PlannerDeps): NonNullable<PlannerDeps['history']> {
  if (!deps.history) throw new RequestError('UNAVAILABLE', 'no history store is configured');
  return deps.history;
}

const ListQuery = z
  .object({
    tool: ToolName.optional(),
    status: z
      .enum(['queued', 'awaiting_approval', 'running', 'succeeded', 'failed', 'cancelled'])
      .optional(),
    since: TimeParam.optional(),
    until: TimeParam.optional(),
    errorCode: z.string().regex(/^[A-Z_]{1,64}$/).optional(),
    argsHash: z.string().regex(/^[0-9a-f]{64}$/).optional(),
    limit: z.coerce.number().int().min(1).max(500).default(50),
    cursor: z.string().max(200).optional(),
    tenant: TenantName.optional(),
  })
  .strict();

const ApproveBody = z.object({ argsHash: z.string().length(64).optional() }).strict();

async function found(
  id: string,
  read: (id: string) => Promise<CallRecord | undefined>,
): Promise<CallRecord> {
  const record = CALL_ID_PATTERN.test(id) ? await read(id) : undefined;
  if (!record) throw new RequestError('NOT_FOUND', `no call with id '${id}'`);
  return record;
}

/** Holds the request until the call finishes or `waitMs` passes; a client that hangs up ends the wait. */
function waitForCall(
  deps: PlannerDeps,
  id: string,
  waitMs: number,
  res: Response,
): Promise<CallRecord | undefined> {
  return waitForCallDone(deps, id, waitMs, clientGone(res));
}

/** `{"id","status":"queued"}`: a call accepted and not finished yet. */
const CallAccepted = apiSchema('CallAccepted', z.object({ id: z.string(), status: z.enum(['queued', 'awaiting_approval', 'running']) }));
const CallPage = apiSchema('CallPage', z.object({ calls: z.array(apiSchema('CallRecord', CallRecord)), nextCursor: z.string().optional() }));
const CallIdParams = z.object({ id: z.string().regex(CALL_ID_PATTERN) });
const TenantParams = z.object({ tenant: TenantName });
const Retention = z.object({ tenant: z.string(), retentionDays: z.number().int() });

const EXAMPLE_CALL = {
  id: '01m8q2x7z3k4v5w6y7a8b9c0d1',
  tool: 'add',
  version: 1,
  status: 'succeeded',
  tenant: 'default',
  argsHash: 'f'.repeat(64),
  result: 5,
  logs: [],
  attempts: 1,
  starts: 1,
  createdAt: '2026-11-30T12:00:00.000Z',
  timings: { queuedMs: 1, runMs: 2 },
};

/** The routes of {@link callsRouter}, for the API document. */
export const callsApi: ApiRoute[] = [
  {
    method: 'post',
    path: '/v1/calls',
    tag: 'calls',
    auth: 'calls:write',
    summary: 'Submit a tool call',
    description:
      'Validates the arguments against the tool\'s schema (of the pinned `version`, or the current one) and queues the call. ' +
      'With `wait` (true, or ms up to 300000) the request is held until the call finishes. The same `idempotencyKey` gives the same call.',
    body: apiSchema('CallRequest', CallRequest),
    responses: {
      202: { description: 'queued (or still running when `wait` ran out)', schema: z.union([CallAccepted, CallRecord]) },
      200: { description: 'finished within `wait`', schema: CallRecord },
    },
    errors: ['TOOL_NOT_FOUND', 'INVALID_ARGUMENTS', 'QUOTA_EXCEEDED'],
    example: {
      request: { tool: 'add', arguments: { a: 2, b: 3 }, idempotencyKey: 'order-42', callbackUrl: 'https://hooks.example.com/toolplane' },
      response: { id: EXAMPLE_CALL.id, status: 'queued' },
      status: 202,
    },
  },
  {
    method: 'get',
    path: '/v1/calls',
    tag: 'calls',
    auth: 'calls:read',
    summary: "List a tenant's calls, newest first",
    description: 'Cursor paging: pass `nextCursor` back as `cursor`. An admin key may name another tenant.',
    query: ListQuery,
    responses: { 200: { description: 'one page', schema: CallPage } },
    errors: ['FORBIDDEN'],
    example: { response: { calls: [EXAMPLE_CALL], nextCursor: '1764504000000:01m8q2x7z3k4v5w6y7a8b9c0d1' } },
  },
  {
    method: 'get',
    path: '/v1/calls/export',
    tag: 'calls',
    auth: 'calls:read',
    summary: "Export a tenant's calls as NDJSON",
    query: ExportQuery,
    responses: { 200: { description: 'one call record per line, newest first', contentType: 'application/x-ndjson' } },
    errors: ['FORBIDDEN'],
    example: { response: `${JSON.stringify(EXAMPLE_CALL)}\n` },
  },
  {
    method: 'get',
    path: '/v1/tenants/:tenant/retention',
    tag: 'calls',
    auth: 'admin',
    summary: "Days a tenant's call history is kept",
    params: TenantParams,
    responses: { 200: { description: 'the retention', schema: Retention } },
    errors: ['UNAVAILABLE'],
    example: { response: { tenant: 'acme', retentionDays: 30 } },
  },
  {
    method: 'put',
    path: '/v1/tenants/:tenant/retention',
    tag: 'calls',
    auth: 'admin',
    summary: "Set how many days a tenant's call history is kept",
    params: TenantParams,
    body: RetentionBody,
    responses: { 200: { description: 'the new retention', schema: Retention } },
    example: { request: { retentionDays: 30 }, response: { tenant: 'acme', retentionDays: 30 } },
  },
  {
    method: 'get',
    path: '/v1/calls/:id',
    tag: 'calls',
    auth: 'calls:read',
    summary: 'Read a call',
    params: CallIdParams,
    responses: { 200: { description: 'the call', schema: CallRecord } },
    errors: ['NOT_FOUND'],
    example: { response: EXAMPLE_CALL },
  },
  {
    method: 'post',
    path: '/v1/calls/:id/cancel',
    tag: 'calls',
    auth: 'calls:write',
    summary: 'Cancel a queued or running call',
    params: CallIdParams,
    responses: { 200: { description: 'the call as it stands after', schema: CallRecord } },
    errors: ['NOT_FOUND'],
    example: { response: { ...EXAMPLE_CALL, status: 'cancelled', result: undefined, error: { code: 'CANCELLED', message: 'call was cancelled' } } },
  },
  {
    method: 'post',
    path: '/v1/calls/:id/retry',
    tag: 'calls',
    auth: 'calls:write',
    summary: 'Run a failed call again',
    params: CallIdParams,
    responses: { 202: { description: 'queued again', schema: CallRecord } },
    errors: ['NOT_FOUND', 'CONFLICT', 'QUOTA_EXCEEDED'],
    example: { response: { ...EXAMPLE_CALL, status: 'queued', result: undefined, attempts: 0 } },
  },
  {
    method: 'post',
    path: '/v1/calls/:id/approve',
    tag: 'calls',
    auth: 'calls:approve',
    summary: 'Approve a call that waits for approval',
    description: '`argsHash`, when given, binds the approval to the exact arguments.',
    params: CallIdParams,
    body: ApproveBody,
    responses: { 200: { description: 'the call, queued to run', schema: CallRecord } },
    errors: ['NOT_FOUND', 'CONFLICT'],
    example: { request: { argsHash: EXAMPLE_CALL.argsHash }, response: { ...EXAMPLE_CALL, status: 'queued', result: undefined } },
  },
  {
    method: 'post',
    path: '/v1/calls/:id/reject',
    tag: 'calls',
    auth: 'calls:approve',
    summary: 'Reject a call that waits for approval',
    params: CallIdParams,
    responses: { 200: { description: 'the call, failed with REJECTED', schema: CallRecord } },
    errors: ['NOT_FOUND', 'CONFLICT'],
    example: { response: { ...EXAMPLE_CALL, status: 'failed', result: undefined, error: { code: 'REJECTED', message: 'call was rejected' } } },
  },
];
