/**
 * OpenTelemetry tracing for Toolplane's services: starts and stops the SDK (OTLP/HTTP JSON export)
 * for one service, and carries W3C trace context across the queue in a call's job data.
 *
 * Importing this module loads `@opentelemetry/api` only; the SDK is loaded by {@link startTracing},
 * so a service with tracing off pays for nothing but the API's no-op calls.
 *
 * @example
 * ```ts
 * import { startTracing, injectTraceContext, extractTraceContext } from '@toolplane/tracing';
 * const tracing = config.OTEL_EXPORTER_OTLP_ENDPOINT
 *   ? await startTracing({ serviceName: 'toolplane-worker', endpoint: config.OTEL_EXPORTER_OTLP_ENDPOINT })
 *   : undefined;
 * const trace = injectTraceContext();            // producer: store it in the job data
 * const parent = extractTraceContext(job.data.trace); // consumer: parent of the job's span
 * await tracing?.shutdown();                     // flushes spans on SIGTERM
 * ```
 */
export { injectTraceContext, extractTraceContext, traceLogFields, TRACER_NAME } from './context.js';
export type { TraceCarrier } from './context.js';
export { startTracing, startServiceTracing } from './start.js';
export type { Tracing, TracingOptions } from './start.js';
