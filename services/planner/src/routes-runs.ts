import { Router } from 'express';
import { CALL_ID_PATTERN, RequestError, canSee, type Principal } from '@toolplane/core';
import { EVENT_ID_PATTERN, RunRequest, toRunView } from '@toolplane/agent';
import { principalOf, requireScope } from './auth.js';
import type { PlannerDeps, RunsDeps } from './deps.js';
import { zodIssues } from './http-util.js';

/** An idle SSE stream gets a comment this often, so proxies and clients don't time it out. */
const KEEP_ALIVE_MS = 15_000;

/** `/v1/runs`: start agent runs, read them, follow their steps as server-sent events. */
export function runsRouter(deps: PlannerDeps): Router {
  const v1 = Router();
  const runs = (): RunsDeps => {
    if (!deps.runs) throw new RequestError('UNAVAILABLE', 'agent runs are not set up on this planner');
    return deps.runs;
  };
  const runId = (raw: unknown): string => {
    const id = String(raw);
    if (!CALL_ID_PATTERN.test(id)) throw new RequestError('NOT_FOUND', `no run with id '${id}'`);
    return id;
  };

  /** The run if the request's tenant may see it; 404 otherwise. */
  const visibleRun = async (raw: unknown, principal: Principal) => {
    const id = runId(raw);
    const run = await runs().store.get(id);
    if (!run || !canSee(principal, run.tenant)) throw new RequestError('NOT_FOUND', `no run with id '${id}'`);
    return run;
  };

  v1.post('/runs', requireScope('runs:write'), async (req, res) => {
    const { manager } = runs();
    if (!manager) {
      throw new RequestError('UNAVAILABLE', 'no model endpoint is configured: set OPENAI_BASE_URL (and OPENAI_API_KEY)');
    }
    const parsed = RunRequest.safeParse(req.body);
    if (!parsed.success) {
      throw new RequestError('INVALID_REQUEST', 'run body is invalid', { issues: zodIssues(parsed.error.issues) });
    }
    const run = await manager.create(parsed.data, principalOf(res).tenant);
    res.status(201).json({ id: run.id, status: run.status });
  });

  v1.get('/runs/:id', requireScope('runs:read'), async (req, res) => {
    res.json(toRunView(await visibleRun(req.params.id, principalOf(res))));
  });

  v1.get('/runs/:id/events', requireScope('runs:read'), async (req, res) => {
    const { id } = await visibleRun(req.params.id, principalOf(res));
    const { feed, closing } = runs();
    const lastEventId = req.get('last-event-id') ?? '';
    const after = EVENT_ID_PATTERN.test(lastEventId) ? lastEventId : '0';
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.flushHeaders();
    const gone = new AbortController();
    res.on('close', () => gone.abort());
    const signal = AbortSignal.any([gone.signal, closing]);
    try {
      for await (const e of feed.follow(id, after, signal, KEEP_ALIVE_MS)) {
        res.write(e ? `id: ${e.id}\nevent: ${e.event.type}\ndata: ${JSON.stringify(e.event)}\n\n` : ': keep-alive\n\n');
      }
    } catch (err: unknown) {
      deps.logger.warn({ err, runId: id }, 'run event stream broke');
    }
    res.end();
  });

  return v1;
}
