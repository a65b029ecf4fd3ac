import { Router, type Request } from 'express';
import {
  CALL_ID_PATTERN,
  CallRequest,
  DEFAULT_WAIT_MS,
  RequestError,
  isFinished,
  type CallRecord,
} from '@toolplane/core';
import type { PlannerDeps } from './deps.js';
import { toolNotFound, zodIssues } from './http-util.js';

/** `/v1/calls`: accept, wait for and read calls. */
export function callsRouter(deps: PlannerDeps): Router {
  const v1 = Router();
  v1.post('/calls', async (req, res) => {
    const parsed = CallRequest.safeParse(req.body);
    if (!parsed.success) {
      throw new RequestError('INVALID_REQUEST', 'call body is invalid', { issues: zodIssues(parsed.error.issues) });
    }
    const body = parsed.data;
    const tool = await deps.registry.get(body.tool);
    if (!tool) throw toolNotFound(body.tool);
    deps.validator.validate(tool, body.arguments);
    const { id } = await deps.queues.enqueue(tool, body.arguments, {
      tenant: 'default',
      ...(body.idempotencyKey ? { idempotencyKey: body.idempotencyKey } : {}),
      ...(body.priority ? { priority: body.priority } : {}),
      ...(body.delayMs ? { delayMs: body.delayMs } : {}),
    });
    deps.httpMetrics.enqueued.inc({ tool: tool.name });
    if (body.wait === undefined || body.wait === false) {
      return void res.status(202).json({ id, status: 'queued' });
    }
    const waitMs = body.wait === true ? DEFAULT_WAIT_MS : body.wait;
    const record = await waitForCall(deps, id, waitMs, req);
    res.status(record && isFinished(record.status) ? 200 : 202).json(record ?? { id, status: 'queued' });
  });

  v1.get('/calls/:id', async (req, res) => {
    const id = String(req.params.id);
    const record = CALL_ID_PATTERN.test(id) ? await deps.queues.get(id) : undefined;
    if (!record) throw new RequestError('NOT_FOUND', `no call with id '${id}'`);
    res.json(record);
  });

  return v1;
}

/**
 * Holds the request until the call finishes or `waitMs` passes. The waiter is registered before the
 * state is read, so a finish announced in between is not missed.
 */
async function waitForCall(deps: PlannerDeps, id: string, waitMs: number, req: Request): Promise<CallRecord | undefined> {
  const deadline = Date.now() + waitMs;
  const gone = new AbortController();
  req.socket.once('close', () => gone.abort());
  for (;;) {
    const w = deps.waiter.wait(id, Math.max(1, deadline - Date.now()), gone.signal);
    const record = await deps.queues.get(id);
    if (!record || isFinished(record.status) || Date.now() >= deadline || gone.signal.aborted) {
      w.cancel();
      return record;
    }
    if (!(await w.done)) return deps.queues.get(id);
  }
}
