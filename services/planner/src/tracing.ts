import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, propagation, trace } from '@opentelemetry/api';
import type { RequestHandler } from 'express';
import { TRACER_NAME } from '@toolplane/tracing';
import { routeTemplateOf } from './route-template.js';

/**
 * One SERVER span per HTTP request, named by method and route template (`POST /v1/calls`), with its
 * status. A caller's `traceparent` header makes the request part of the caller's trace. Only the
 * method, route and status are recorded: paths hold ids, query strings and bodies hold arguments.
 * Install it only when tracing is on; the app captures route templates (`captureRouteTemplates`).
 */
export function traceRequests(): RequestHandler {
  const tracer = trace.getTracer(TRACER_NAME);
  return (req, res, next) => {
    const parent = propagation.extract(ROOT_CONTEXT, req.headers);
    const span = tracer.startSpan(req.method, { kind: SpanKind.SERVER, attributes: { 'http.request.method': req.method } }, parent);
    const ctx = trace.setSpan(parent, span);
    // Body parsing resumes from the request's stream events, which carry the socket's async
    // context, not ours: bound emitters run their listeners in the span's context.
    context.bind(ctx, req);
    context.bind(ctx, res);
    let ended = false;
    const end = (aborted: boolean) => {
      if (ended) return;
      ended = true;
      const route = routeTemplateOf(res);
      if (route) {
        span.updateName(`${req.method} ${route}`);
        span.setAttribute('http.route', route);
      }
      span.setAttribute('http.response.status_code', res.statusCode);
      if (aborted) span.setAttribute('toolplane.http.aborted', true);
      if (res.statusCode >= 500 || aborted) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    };
    res.once('finish', () => end(false));
    res.once('close', () => end(!res.writableFinished));
    context.with(ctx, next);
  };
}
