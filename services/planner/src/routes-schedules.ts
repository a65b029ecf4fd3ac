import { Router } from 'express';
import { z } from 'zod';
import { DEFAULT_TENANT, RequestError, type Principal } from '@toolplane/core';
import { ScheduleName, ScheduleRequest, type ScheduleStore } from '@toolplane/schedules';
import type { ApiRoute } from './api-spec.js';
import { principalOf, requireScope } from './auth.js';
import type { PlannerDeps } from './deps.js';
import { toolNotFound, zodIssues } from './http-util.js';

function parseName(raw: unknown): string {
  const parsed = ScheduleName.safeParse(raw);
  if (!parsed.success) throw new RequestError('INVALID_REQUEST', `invalid schedule name: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

/**
 * `/v1/schedules`: calls made on a schedule (cron in a time zone, or every N ms). A schedule is its
 * tenant's: names are per tenant, and another tenant's schedule answers 404. Tool and arguments are
 * checked when the schedule is put, as a call would be; each run is then an ordinary call of the
 * tenant (audit, limits, quotas, metrics).
 */
export function schedulesRouter(deps: PlannerDeps): Router {
  const v1 = Router();
  const store = (): ScheduleStore => {
    if (!deps.schedules) throw new RequestError('UNAVAILABLE', 'schedules are not set up on this planner');
    return deps.schedules;
  };

  v1.put('/schedules/:name', requireScope('schedules:write'), async (req, res) => {
    const principal = principalOf(res);
    const name = parseName(req.params.name);
    const parsed = ScheduleRequest.safeParse(req.body);
    if (!parsed.success) throw new RequestError('INVALID_REQUEST', 'schedule body is invalid', { issues: zodIssues(parsed.error.issues) });
    await checkCall(deps, principal, parsed.data);
    const { schedule, created } = await store().put(principal.tenant, name, parsed.data);
    res.status(created ? 201 : 200).json(schedule);
  });

  v1.get('/schedules', requireScope('schedules:read'), async (_req, res) => {
    res.json({ schedules: await store().list(principalOf(res).tenant) });
  });

  v1.get('/schedules/:name', requireScope('schedules:read'), async (req, res) => {
    const name = parseName(req.params.name);
    const schedule = await store().get(principalOf(res).tenant, name);
    if (!schedule) throw new RequestError('NOT_FOUND', `no schedule named '${name}'`);
    res.json(schedule);
  });

  v1.delete('/schedules/:name', requireScope('schedules:write'), async (req, res) => {
    const name = parseName(req.params.name);
    if (!(await store().delete(principalOf(res).tenant, name))) throw new RequestError('NOT_FOUND', `no schedule named '${name}'`);
    res.status(204).end();
  });
  return v1;
}

/**
 * The schedule's call must be one its tenant could make now: a tool of that tenant (an admin's
 * schedule too runs as its own tenant, so another tenant's tool is `TOOL_NOT_FOUND` here rather
 * than at every run) and arguments valid for its current schema.
 */
async function checkCall(deps: PlannerDeps, principal: Principal, req: ScheduleRequest): Promise<void> {
  const tool = await deps.registry.get(req.tool);
  if (!tool || (tool.tenant ?? DEFAULT_TENANT) !== principal.tenant) throw toolNotFound(req.tool);
  deps.validator.validate(tool, req.arguments);
}

const ScheduleParams = z.object({ name: ScheduleName });
/** A schedule as the API shows it; loose, as fields are added over time. */
const ScheduleView = z.looseObject({
  name: z.string(),
  tool: z.string(),
  arguments: z.unknown(),
  cron: z.string().optional(),
  everyMs: z.number().int().optional(),
  timezone: z.string().optional(),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
  nextRunAt: z.iso.datetime().optional(),
  lastRun: z
    .object({ at: z.iso.datetime(), callId: z.string().optional(), error: z.object({ code: z.string(), message: z.string() }).optional() })
    .optional(),
});
const EXAMPLE_SCHEDULE = {
  name: 'nightly-report',
  tool: 'report',
  arguments: { day: 'yesterday' },
  cron: '0 2 * * *',
  timezone: 'Europe/Paris',
  createdAt: '2026-11-30T12:00:00.000Z',
  updatedAt: '2026-11-30T12:00:00.000Z',
  nextRunAt: '2026-12-01T01:00:00.000Z',
};

/** The routes of {@link schedulesRouter}, for the API document. */
export const schedulesApi: ApiRoute[] = [
  {
    method: 'put',
    path: '/v1/schedules/:name',
    tag: 'schedules',
    auth: 'schedules:write',
    summary: 'Create or replace a schedule of calls',
    description:
      'Calls `tool` with `arguments` on a cron pattern read in `timezone` (UTC by default), or every `everyMs` (at least 1000); exactly one of the two. ' +
      'Tool and arguments are checked as a call\'s would be. Each run is an ordinary call of your tenant.',
    params: ScheduleParams,
    body: ScheduleRequest,
    responses: { 201: { description: 'created', schema: ScheduleView }, 200: { description: 'replaced', schema: ScheduleView } },
    errors: ['TOOL_NOT_FOUND', 'INVALID_ARGUMENTS', 'QUOTA_EXCEEDED'],
    example: { request: { tool: 'report', arguments: { day: 'yesterday' }, cron: '0 2 * * *', timezone: 'Europe/Paris' }, response: EXAMPLE_SCHEDULE, status: 201 },
  },
  {
    method: 'get',
    path: '/v1/schedules',
    tag: 'schedules',
    auth: 'schedules:read',
    summary: "Your tenant's schedules",
    responses: { 200: { description: 'by name', schema: z.object({ schedules: z.array(ScheduleView) }) } },
    example: { response: { schedules: [EXAMPLE_SCHEDULE] } },
  },
  {
    method: 'get',
    path: '/v1/schedules/:name',
    tag: 'schedules',
    auth: 'schedules:read',
    summary: 'One schedule, with its next due time and last run',
    params: ScheduleParams,
    responses: { 200: { description: 'the schedule', schema: ScheduleView } },
    errors: ['NOT_FOUND'],
    example: { response: { ...EXAMPLE_SCHEDULE, lastRun: { at: '2026-11-30T01:00:00.000Z', callId: '01m8q2x7z3k4v5w6y7a8b9c0d1' } } },
  },
  {
    method: 'delete',
    path: '/v1/schedules/:name',
    tag: 'schedules',
    auth: 'schedules:write',
    summary: 'Stop and delete a schedule',
    params: ScheduleParams,
    responses: { 204: { description: 'deleted' } },
    errors: ['NOT_FOUND'],
    example: { params: { name: 'nightly-report' } },
  },
];
