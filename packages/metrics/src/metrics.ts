import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Buckets for tool calls, 1 ms to 60 s: sandboxed calls of trivial tools take about a millisecond,
 * calls that wait on the network seconds, and the longest allowed timeout is minutes.
 */
export const CALL_SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** prom-client names these gauges `_total`, which Prometheus reserves for counters; promtool flags them. */
const NON_CONFORMING_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** The outcome label of {@link ToolMetrics.calls}; bounded. */
export type CallOutcome = 'success' | 'error' | 'timeout' | 'oom' | 'rejected' | 'circuit_open' | 'rate_limited' | 'cancelled';

/** A registry with the default process metrics, minus the ones that break Prometheus conventions. */
export function createRegistry(labels: Record<string, string> = {}): Registry {
  const registry = new Registry();
  registry.setDefaultLabels(labels);
  collectDefaultMetrics({ register: registry });
  for (const name of NON_CONFORMING_DEFAULTS) registry.removeSingleMetric(name);
  return registry;
}

/** Metrics a worker reports about the calls it runs. */
export function createToolMetrics(registry: Registry) {
  return {
    /** Finished call attempts by outcome. */
    calls: new Counter({
      name: 'toolplane_tool_calls_total',
      help: 'Tool call attempts by tool and outcome.',
      labelNames: ['tool', 'outcome'] as const,
      registers: [registry],
    }),
    /** Time in the sandbox, seconds. */
    duration: new Histogram({
      name: 'toolplane_tool_call_duration_seconds',
      help: 'Run time of tool calls in the sandbox, in seconds.',
      labelNames: ['tool'] as const,
      buckets: CALL_SECONDS_BUCKETS,
      registers: [registry],
    }),
    /** Enqueue to start, seconds. */
    queueWait: new Histogram({
      name: 'toolplane_tool_call_queue_seconds',
      help: 'Time from enqueue to start of a tool call, in seconds.',
      labelNames: ['tool'] as const,
      buckets: CALL_SECONDS_BUCKETS,
      registers: [registry],
    }),
    /** Retries scheduled after a retryable failure. */
    retries: new Counter({
      name: 'toolplane_tool_call_retries_total',
      help: 'Tool call attempts that failed and were scheduled again.',
      labelNames: ['tool'] as const,
      registers: [registry],
    }),
    /** 0 closed, 1 half-open, 2 open. */
    circuitState: new Gauge({
      name: 'toolplane_circuit_state',
      help: 'Circuit breaker state per tool: 0 closed, 1 half-open, 2 open.',
      labelNames: ['tool'] as const,
      registers: [registry],
    }),
    /** Calls held back by a rate limit (scope: tool, tenant) and put back to wait their turn. */
    rateLimited: new Counter({
      name: 'toolplane_rate_limited_total',
      help: 'Tool calls held back by a rate limit and put back to wait, by tool and scope.',
      labelNames: ['tool', 'scope'] as const,
      registers: [registry],
    }),
    /** Isolates thrown away, by reason. */
    sandboxDisposals: new Counter({
      name: 'toolplane_sandbox_disposals_total',
      help: 'Sandbox isolates disposed, by reason.',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    /** Calls running in this process now. */
    active: new Gauge({
      name: 'toolplane_worker_active_calls',
      help: 'Tool calls running in this worker process now.',
      labelNames: ['tool'] as const,
      registers: [registry],
    }),
  };
}
export type ToolMetrics = ReturnType<typeof createToolMetrics>;

/** Metrics the planner reports about its HTTP API. */
export function createHttpMetrics(registry: Registry) {
  return {
    requests: new Counter({
      name: 'toolplane_http_requests_total',
      help: 'HTTP requests by method, route and status code.',
      labelNames: ['method', 'route', 'status'] as const,
      registers: [registry],
    }),
    duration: new Histogram({
      name: 'toolplane_http_request_duration_seconds',
      help: 'HTTP request duration by method and route, in seconds.',
      labelNames: ['method', 'route'] as const,
      buckets: CALL_SECONDS_BUCKETS,
      registers: [registry],
    }),
    enqueued: new Counter({
      name: 'toolplane_calls_enqueued_total',
      help: 'Tool calls accepted and enqueued, by tool.',
      labelNames: ['tool'] as const,
      registers: [registry],
    }),
  };
}
export type HttpMetrics = ReturnType<typeof createHttpMetrics>;

/**
 * `toolplane_queue_jobs{tool,state}`, read from Redis at scrape time by `read`, so its cost is paid
 * only when Prometheus asks.
 */
export function createQueueGauge(
  registry: Registry,
  read: () => Promise<Array<{ tool: string; counts: Record<string, number> }>>,
): Gauge<'tool' | 'state'> {
  return new Gauge({
    name: 'toolplane_queue_jobs',
    help: 'Jobs in each tool queue by state.',
    labelNames: ['tool', 'state'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      try {
        for (const { tool, counts } of await read()) {
          for (const [state, n] of Object.entries(counts)) this.set({ tool, state }, n);
        }
      } catch {
        // Redis unreachable: report nothing rather than fail the whole scrape.
      }
    },
  });
}
