import { Router } from 'express';
import { z } from 'zod';
import { CALL_ID_PATTERN, RequestError, canSee, type Principal } from '@toolplane/core';
import { EVENT_ID_PATTERN, RunRequest, toRunView, type RunView, type StoredRunEvent } from '@toolplane/agent';
import { apiSchema, type ApiRoute } from './api-spec.js';
import { principalOf, requireScope } from './auth.js';
import type { PlannerDeps, RunsDeps } from './deps.js';
import { clientGone, zodIssues } from './http-util.js';
import { withWebhookStatus } from './routes-webhooks.js';

/** An idle SSE stream gets a comment this often, so proxies and clients don't time it out. */
const KEEP_ALIVE_MS = 15_000;

/** A run as the routes show it: live from Redis, or archived with its events. */
type VisibleRun = { id: string; tenant: string | undefined; view: RunView; archivedEvents?: StoredRunEvent[] };

/** True when Redis stream id `id` (`<ms>-<seq>`) comes after `after` (`0` comes before every id). */
function streamIdAfter(id: string, after: string): boolean {
  const [ms = 0, seq = 0] = id.split('-').map(Number);
  const [afterMs = 0, afterSeq = 0] = after.split('-').map(Number);
  return ms > afterMs || (ms === afterMs && seq > afterSeq);
}

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

  /**
   * The run if the request's tenant may see it, from Redis or, once the archiver moved it, from
   * history (with its events); 404 otherwise. The archiver writes history before it drops a run from
   * Redis, so a run missing from Redis is in history if it exists.
   */
  const visibleRun = async (raw: unknown, principal: Principal): Promise<VisibleRun> => {
    const id = runId(raw);
    const hot = await runs().store.get(id);
    const found: VisibleRun | undefined = hot ? { id, tenant: hot.tenant, view: toRunView(hot) } : await archivedRun(id);
    if (!found || !canSee(principal, found.tenant)) throw new RequestError('NOT_FOUND', `no run with id '${id}'`);
    return found;
  };
  const archivedRun = async (id: string): Promise<VisibleRun | undefined> => {
    const archived = await deps.history?.getRun(id);
    if (!archived) return undefined;
    return { id, tenant: archived.tenant, view: archived.run as RunView, archivedEvents: archived.events as StoredRunEvent[] };
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
    res.json(await withWebhookStatus(deps, 'run', (await visibleRun(req.params.id, principalOf(res))).view));
  });

  v1.get('/runs/:id/events', requireScope('runs:read'), async (req, res) => {
    const { id, archivedEvents } = await visibleRun(req.params.id, principalOf(res));
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
    if (archivedEvents) {
      // An archived run has finished: replay its events after `after` and end.
      for (const e of archivedEvents) {
        if (streamIdAfter(e.id, after)) res.write(`id: ${e.id}\nevent: ${e.event.type}\ndata: ${JSON.stringify(e.event)}\n\n`);
      }
      res.end();
      return;
    }
    const signal = AbortSignal.any([clientGone(res), closing]);
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

const RunParams = z.object({ id: z.string().regex(CALL_ID_PATTERN) });
/** A run as the API shows it ({@link RunView}); loose, as fields are added over time. */
const RunViewSchema = apiSchema(
  'Run',
  z.looseObject({
    id: z.string(),
    status: z.enum(['running', 'waiting_approval', 'succeeded', 'budget_exceeded', 'failed']),
    input: z.string(),
    model: z.string(),
    steps: z.array(z.unknown()),
    finalAnswer: z.string().optional(),
    usage: z.looseObject({ promptTokens: z.number(), completionTokens: z.number(), totalTokens: z.number() }),
    createdAt: z.string(),
  }),
);
const EXAMPLE_RUN = {
  id: '01m8q2x7z3k4v5w6y7a8b9c0d2',
  status: 'succeeded',
  input: 'What is 2 + 3?',
  model: 'gpt-4o-mini',
  steps: [{ toolCalls: [{ id: 'call_1', tool: 'add', arguments: { a: 2, b: 3 }, status: 'succeeded', result: 5 }] }],
  finalAnswer: '5',
  usage: { promptTokens: 120, completionTokens: 12, totalTokens: 132, costUsd: 0, modelCalls: 2 },
  createdAt: '2026-11-30T12:00:00.000Z',
};

/** The routes of {@link runsRouter}, for the API document. */
export const runsApi: ApiRoute[] = [
  {
    method: 'post',
    path: '/v1/runs',
    tag: 'runs',
    auth: 'runs:write',
    summary: 'Start an agent run',
    description: 'The model calls your tenant\'s tools through the same path as `POST /v1/calls`. `mode: "plan"` submits whole plans.',
    body: apiSchema('RunRequest', RunRequest),
    responses: { 201: { description: 'started', schema: z.object({ id: z.string(), status: z.string() }) } },
    errors: ['UNAVAILABLE'],
    example: { request: { input: 'What is 2 + 3?', tools: ['add'] }, response: { id: EXAMPLE_RUN.id, status: 'running' } },
  },
  {
    method: 'get',
    path: '/v1/runs/:id',
    tag: 'runs',
    auth: 'runs:read',
    summary: 'Read a run: status, steps with tool calls, final answer, usage',
    params: RunParams,
    responses: { 200: { description: 'the run', schema: RunViewSchema } },
    errors: ['NOT_FOUND'],
    example: { response: EXAMPLE_RUN },
  },
  {
    method: 'get',
    path: '/v1/runs/:id/events',
    tag: 'runs',
    auth: 'runs:read',
    summary: "A run's steps as server-sent events, past then live",
    description: 'Events: `status`, `step`, `plan`, `plan_step`, `finished` (with the run). Send `Last-Event-ID` to resume.',
    params: RunParams,
    responses: { 200: { description: 'an event stream', contentType: 'text/event-stream' } },
    errors: ['NOT_FOUND'],
    example: { response: `id: 1764504000000-0\nevent: finished\ndata: ${JSON.stringify({ type: 'finished', run: EXAMPLE_RUN })}\n\n` },
  },
];
