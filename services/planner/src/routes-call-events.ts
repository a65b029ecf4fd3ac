import { Router } from 'express';
import { z } from 'zod';
import { CALL_ID_PATTERN, RequestError, canSee } from '@toolplane/core';
import { CallEventLog } from '@toolplane/queue';
import type { ApiRoute } from './api-spec.js';
import { principalOf, requireScope } from './auth.js';
import { followCall, parseCursor } from './call-events.js';
import type { PlannerDeps } from './deps.js';
import { clientGone } from './http-util.js';

/** An idle SSE stream gets a comment this often, so proxies and clients don't time it out. */
const KEEP_ALIVE_MS = 15_000;

/**
 * `GET /v1/calls/{id}/events`: a call's status changes, `ctx.progress` reports and log lines as
 * server-sent events (`status`, `progress`, `log`), resumable with `Last-Event-ID`, ending after the
 * final `status` event (whose data is the whole call, as `GET /v1/calls/{id}` shows it). Tenant-checked
 * like `GET /v1/calls/{id}`: another tenant's call is a 404.
 */
export function callEventsRouter(deps: PlannerDeps): Router {
  const v1 = Router();
  const log = new CallEventLog(deps.redis, deps.keys);
  // Open streams end on shutdown instead of holding the server open.
  const closing = new AbortController();
  deps.events?.on('shutdown', () => closing.abort());

  v1.get('/calls/:id/events', requireScope('calls:read'), async (req, res) => {
    const id = String(req.params.id);
    const record = CALL_ID_PATTERN.test(id) ? await deps.calls.reads.get(id) : undefined;
    if (!record || !canSee(principalOf(res), record.tenant)) throw new RequestError('NOT_FOUND', `no call with id '${id}'`);
    const resume = parseCursor(req.get('last-event-id'));
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.flushHeaders();
    const signal = AbortSignal.any([clientGone(res), closing.signal]);
    try {
      for await (const e of followCall({ reads: deps.calls.reads, waiter: deps.waiter, log }, record, resume, signal, KEEP_ALIVE_MS)) {
        if (!e) {
          res.write(': keep-alive\n\n');
          continue;
        }
        res.write(`${'id' in e && e.id ? `id: ${e.id}\n` : ''}event: ${e.type}\ndata: ${JSON.stringify(e.data)}\n\n`);
      }
    } catch (err: unknown) {
      deps.logger.warn({ err, callId: id }, 'call event stream broke');
    }
    res.end();
  });

  return v1;
}

/** The route, for the API document. */
export const callEventsApi: ApiRoute[] = [
  {
    method: 'get',
    path: '/v1/calls/:id/events',
    tag: 'calls',
    auth: 'calls:read',
    summary: "A call's status changes, progress and log lines as server-sent events",
    description:
      'Events: `status` (`{status, attempts}`; the last one carries the whole call and ends the stream), `progress` ' +
      '(`{fraction, message, attempt}` from `ctx.progress`, at most 10 a second) and `log` (`{line, attempt}`: lines come with ' +
      'the next progress report, the rest before the final status). Send `Last-Event-ID` to resume after an event.',
    params: z.object({ id: z.string().regex(CALL_ID_PATTERN) }),
    responses: { 200: { description: 'an event stream', contentType: 'text/event-stream' } },
    errors: ['NOT_FOUND'],
    example: {
      response:
        'id: 0_1764504000000-0\nevent: status\ndata: {"status":"running","attempts":0}\n\n' +
        'event: log\ndata: {"line":"step 1","attempt":1}\n\n' +
        'id: 1764504000100-0_1764504000000-0\nevent: progress\ndata: {"fraction":0.25,"message":"step 1 of 4","attempt":1}\n\n',
    },
  },
];
