import { ROOT_CONTEXT, context, propagation, trace, type Context } from '@opentelemetry/api';

/** W3C trace context as it travels in a call's job data (the `traceparent`/`tracestate` headers). */
export type TraceCarrier = { traceparent: string; tracestate?: string };

/** Name of the tracer the services create their own spans with. */
export const TRACER_NAME = '@toolplane/services';

/**
 * The trace context of `ctx` (default: the active one) as W3C headers, or `undefined` when there is
 * none to pass on: tracing off (the API's propagator is a no-op then) or no span active.
 */
export function injectTraceContext(ctx: Context = context.active()): TraceCarrier | undefined {
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  if (!carrier.traceparent) return undefined;
  return { traceparent: carrier.traceparent, ...(carrier.tracestate ? { tracestate: carrier.tracestate } : {}) };
}

/**
 * A context whose remote parent is the span of `carrier`, for the consumer's span; the root context
 * when there is none. Malformed values are ignored by the propagator (a new trace starts).
 */
export function extractTraceContext(carrier: TraceCarrier | undefined): Context {
  if (!carrier) return ROOT_CONTEXT;
  return propagation.extract(ROOT_CONTEXT, carrier);
}

/**
 * A pino `mixin`: adds `traceId` (and `spanId`) to every log line written while a recorded span is
 * active, so a log line leads to its trace. Pass it only when tracing is on.
 */
export function traceLogFields(): { traceId?: string; spanId?: string } {
  const span = trace.getSpan(context.active());
  if (!span?.isRecording()) return {};
  const { traceId, spanId } = span.spanContext();
  return { traceId, spanId };
}
