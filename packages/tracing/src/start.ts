/** What {@link startTracing} needs. */
export type TracingOptions = {
  /** `service.name` of every span, e.g. `toolplane-planner`. */
  serviceName: string;
  /** Base URL of an OTLP/HTTP receiver (`OTEL_EXPORTER_OTLP_ENDPOINT`); spans go to `<endpoint>/v1/traces`. */
  endpoint: string;
  /**
   * How long finished spans are batched before they are sent.
   * @default 5_000 (the OpenTelemetry default)
   */
  scheduledDelayMs?: number;
};

/** A started SDK. */
export type Tracing = {
  /** Sends the spans still batched and stops exporting; call it on shutdown, before exit. */
  shutdown(): Promise<void>;
};

/**
 * Registers a tracer provider exporting over OTLP/HTTP (JSON), the W3C trace-context propagator and
 * an AsyncLocalStorage context manager as the process-wide OpenTelemetry globals. Call it once, at
 * start, before any span is made; until then (and without it) every span is a no-op.
 */
export async function startTracing(opts: TracingOptions): Promise<Tracing> {
  // Loaded here, not at import: with tracing off the SDK's modules are never read.
  const { startSdk } = await import('./sdk.js');
  return startSdk(opts);
}

/**
 * Starts tracing for a service from its parsed config, or returns `undefined` when no OTLP endpoint is
 * set (then no SDK is loaded and every span is a no-op).
 */
export async function startServiceTracing(
  config: { OTEL_EXPORTER_OTLP_ENDPOINT?: string | undefined; OTEL_SERVICE_NAME?: string | undefined; OTEL_BSP_SCHEDULE_DELAY: number },
  defaultServiceName: string,
): Promise<Tracing | undefined> {
  if (!config.OTEL_EXPORTER_OTLP_ENDPOINT) return undefined;
  return startTracing({
    serviceName: config.OTEL_SERVICE_NAME ?? defaultServiceName,
    endpoint: config.OTEL_EXPORTER_OTLP_ENDPOINT,
    scheduledDelayMs: config.OTEL_BSP_SCHEDULE_DELAY,
  });
}
