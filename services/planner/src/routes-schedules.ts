import { Router } from 'express';
import { DEFAULT_TENANT, RequestError, type Principal } from '@toolplane/core';
import { ScheduleName, ScheduleRequest, type ScheduleStore } from '@toolplane/schedules';
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
