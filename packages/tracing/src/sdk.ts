import { context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, ParentBasedSampler, AlwaysOnSampler, TracerProvider } from '@opentelemetry/sdk-trace';
import type { Tracing, TracingOptions } from './start.js';

const SHUTDOWN_TIMEOUT_MS = 3_000;

/** The SDK proper; see {@link startTracing}. */
export function startSdk(opts: TracingOptions): Tracing {
  const exporter = new OTLPTraceExporter({ url: new URL('v1/traces', opts.endpoint.replace(/\/*$/, '/')).href });
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': opts.serviceName }),
    // A caller's sampling decision (traceparent flags) stands; traces we start are all kept.
    sampler: new ParentBasedSampler({ root: new AlwaysOnSampler() }),
    spanProcessors: [new BatchSpanProcessor({ exporter, scheduledDelayMillis: opts.scheduledDelayMs ?? 5_000 })],
  });
  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  return {
    async shutdown() {
      // Bounded: an unreachable collector must not hold up a service's exit.
      await Promise.race([provider.shutdown().catch(() => {}), new Promise((r) => setTimeout(r, SHUTDOWN_TIMEOUT_MS).unref())]);
      trace.disable();
      propagation.disable();
      context.disable();
    },
  };
}
