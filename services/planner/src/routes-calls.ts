import { once } from 'node:events';
import { Router, type Request } from 'express';
import { z } from 'zod';
import {
  CALL_ID_PATTERN,
  CallRequest,
  ToolName,
  DEFAULT_WAIT_MS,
  RequestError,
  TenantName,
  canSee,
  isFinished,
  type CallRecord,
  type Principal,
} from '@toolplane/core';
import { principalOf, requireScope } from './auth.js';
import { waitForCallDone } from './call-wait.js';
import type { PlannerDeps } from './deps.js';
import { zodIssues } from './http-util.js';
import { submitCall, type SubmitOptions } from './submit-call.js';

/** `/v1/calls`: accept, wait for and read calls. */
export function callsRouter(deps: PlannerDeps): Router {
  const v1 = Router();
  /** The call if the request's tenant may see it; 404 otherwise, so ids of others leak nothing. */
  const visible = async (raw: unknown, principal: Principal): Promise<CallRecord> => {
    const record = await found(String(raw), (id) => deps.queues.get(id));
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
    const gone = new AbortController();
    const { id, duplicate, finished: early } = await submitCall(deps, principal, body.tool, body.arguments, {
      ...callOptionsOf(body),
      ...(waitMs > 0 ? { watch: { timeoutMs: waitMs, signal: gone.signal } } : {}),
    });
    if (!early) return void res.status(202).json({ id, status: 'queued' });
    req.socket.once('close', () => gone.abort());
    // A duplicate may have finished long ago: nobody will announce it again, so read it first.
    if (duplicate) early.cancel();
    const record = await waitForCallDone(
      deps,
      id,
      waitMs,
      gone.signal,
      duplicate ? undefined : early,
    );
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
    const page = await deps.queues.list({
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
    const gone = new AbortController();
    req.socket.once('close', () => gone.abort());
    res.status(200).type('application/x-ndjson');
    let cursor: string | undefined;
    do {
      const page = await deps.queues.list({
        tenant,
        limit: EXPORT_PAGE,
        ...(q.data.since !== undefined ? { since: q.data.since } : {}),
        ...(q.data.until !== undefined ? { until: q.data.until } : {}),
        ...(cursor ? { cursor } : {}),
      });
      const chunk = page.calls.map((c) => `${JSON.stringify(c)}\n`).join('');
      if (chunk && !res.write(chunk)) await once(res, 'drain', { signal: gone.signal }).catch(() => {});
      cursor = page.nextCursor;
    } while (cursor && !gone.signal.aborted);
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
    res.json(await visible(req.params.id, principalOf(res)));
  });

  v1.post('/calls/:id/cancel', requireScope('calls:write'), async (req, res) => {
    const { id } = await visible(req.params.id, principalOf(res));
    let record = await found(id, (i) => deps.queues.cancel(i));
    // A running call is aborted by its worker within milliseconds: answer with the settled state.
    if (record.status === 'running' || record.status === 'queued') {
      record = (await waitForCall(deps, id, CANCEL_SETTLE_MS, req)) ?? record;
    }
    res.json(record);
  });

  v1.post('/calls/:id/retry', requireScope('calls:write'), async (req, res) => {
    const { id } = await visible(req.params.id, principalOf(res));
    res.status(202).json(await found(id, (i) => deps.queues.retry(i)));
  });

  v1.post('/calls/:id/approve', requireScope('calls:approve'), async (req, res) => {
    const body = ApproveBody.safeParse(req.body ?? {});
    if (!body.success)
      throw new RequestError('INVALID_REQUEST', 'invalid approval', {
        issues: zodIssues(body.error.issues),
      });
    const { id } = await visible(req.params.id, principalOf(res));
    res.json(await found(id, (i) => deps.queues.approve(i, body.data.argsHash)));
  });

  v1.post('/calls/:id/reject', requireScope('calls:approve'), async (req, res) => {
    const { id } = await visible(req.params.id, principalOf(res));
    res.json(await found(id, (i) => deps.queues.reject(i)));
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
  req: Request,
): Promise<CallRecord | undefined> {
  const gone = new AbortController();
  req.socket.once('close', () => gone.abort());
  return waitForCallDone(deps, id, waitMs, gone.signal);
}
