import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Buckets for tool calls, 1 ms to 60 s: sandboxed calls of trivial tools take about a millisecond,
 * calls that wait on the network seconds, and the longest allowed timeout is minutes.
 */
export const CALL_SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** prom-client names these gauges `_total`, which Prometheus reserves for counters; promtool flags them. */
const NON_CONFORMING_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** The outcome label of {@link ToolMetrics.calls}; bounded. */
export type CallOutcome =
  | 'success'
  | 'error'
  | 'timeout'
  | 'oom'
  | 'rejected'
  | 'circuit_open'
  | 'rate_limited'
  | 'cancelled'
  | 'poisoned'
  /** Still waiting past its deadline; never run, never counted by the breaker. */
  | 'deadline_exceeded';

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
    /**
     * Sandbox host processes killed and replaced, by reason: `deadline` (a call did not stop at its
     * deadline), `stall` (the host's event loop stopped), `memory` (resident memory past its limit),
     * `crash` (it died).
     */
    sandboxHostFailures: new Counter({
      name: 'toolplane_sandbox_host_failures_total',
      help: 'Sandbox host processes killed and replaced, by reason.',
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

/** Every value of the `outcome` label, so each can be shown at 0 before it first happens. */
export const CALL_OUTCOMES: readonly CallOutcome[] = [
  'success', 'error', 'timeout', 'oom', 'rejected', 'circuit_open', 'rate_limited', 'cancelled', 'poisoned', 'deadline_exceeded',
];

/**
 * Creates the per-tool series of {@link ToolMetrics} at 0 (breaker closed) when a worker starts
 * consuming `tool`. A series that does not exist yet is not 0 to Prometheus: without this, `rate()`
 * misses the first increase, and panels and alerts show "no data" until something goes wrong.
 */
export function initToolSeries(m: ToolMetrics, tool: string): void {
  for (const outcome of CALL_OUTCOMES) m.calls.inc({ tool, outcome }, 0);
  m.retries.inc({ tool }, 0);
  for (const scope of ['tool', 'tenant'] as const) m.rateLimited.inc({ tool, scope }, 0);
  m.active.inc({ tool }, 0);
  m.circuitState.set({ tool }, 0);
}

/**
 * Drops every per-tool series of {@link ToolMetrics} for `tool` when it is deleted: a platform whose
 * tools come and go would otherwise keep a series set for every tool it ever ran, in every worker.
 */
export function removeToolSeries(m: ToolMetrics, tool: string): void {
  for (const outcome of CALL_OUTCOMES) m.calls.remove({ tool, outcome });
  m.duration.remove({ tool });
  m.queueWait.remove({ tool });
  m.retries.remove({ tool });
  for (const scope of ['tool', 'tenant'] as const) m.rateLimited.remove({ tool, scope });
  m.active.remove({ tool });
  m.circuitState.remove({ tool });
}

/** `status` of {@link AgentMetrics.runs}; bounded. */
export type AgentRunStatus = 'succeeded' | 'failed' | 'cancelled' | 'max_iterations' | 'budget_exceeded';

/** `kind` of {@link AgentMetrics.llmTokens}. */
export type LlmTokenKind = 'prompt' | 'completion';

/** Metrics of agent runs and the LLM calls they make (planner). */
export function createAgentMetrics(registry: Registry) {
  return {
    /** Finished agent runs by final status. */
    runs: new Counter({
      name: 'toolplane_agent_runs_total',
      help: 'Agent runs finished, by status.',
      labelNames: ['status'] as const,
      registers: [registry],
    }),
    /** LLM tokens used, by model and kind (`prompt` or `completion`); `model` is the configured model name. */
    llmTokens: new Counter({
      name: 'toolplane_llm_tokens_total',
      help: 'LLM tokens used by agent runs, by model and kind.',
      labelNames: ['model', 'kind'] as const,
      registers: [registry],
    }),
  };
}
export type AgentMetrics = ReturnType<typeof createAgentMetrics>;

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

/** Jobs of one tool queue by BullMQ state (`waiting`, `prioritized`, `active`, `delayed`, `failed`, `completed`). */
export type QueueDepth = { tool: string; counts: Record<string, number> };

export type QueueGaugesOptions = {
  /** Reads the depth of every tool queue; called at most once per scrape. */
  read: () => Promise<QueueDepth[]>;
  /**
   * Calls of `tool` that are waiting but may not start now: held by the tool's rate limit or by an
   * open breaker. Subtracted from the runnable count.
   * @default () => 0 (no holds are recorded yet)
   */
  held?: (tool: string) => number | Promise<number>;
};

/**
 * Queue gauges read from Redis at scrape time, so their cost is paid only when Prometheus asks:
 * - `toolplane_queue_jobs{tool,state}`: jobs by state.
 * - `toolplane_queue_runnable{tool}`: calls that could start now, `waiting + prioritized - held`.
 *   Autoscalers scale workers on this, so a throttled tool does not get workers it cannot use.
 *
 * When Redis is unreachable both report nothing rather than fail the whole scrape.
 */
export function createQueueGauges(registry: Registry, opts: QueueGaugesOptions) {
  const held = opts.held ?? (() => 0);
  // prom-client starts every metric's collect() of a scrape in the same tick: both gauges share
  // the read in flight, and the next scrape reads again.
  let pending: Promise<QueueDepth[]> | undefined;
  const readOnce = () => {
    pending ??= opts.read().finally(() => (pending = undefined));
    return pending;
  };
  const jobs = new Gauge({
    name: 'toolplane_queue_jobs',
    help: 'Jobs in each tool queue by state.',
    labelNames: ['tool', 'state'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      try {
        for (const { tool, counts } of await readOnce()) {
          for (const [state, n] of Object.entries(counts)) this.set({ tool, state }, n);
        }
      } catch {
        // Redis unreachable: no series this scrape.
      }
    },
  });
  const runnable = new Gauge({
    name: 'toolplane_queue_runnable',
    help: 'Calls of each tool that could start now: waiting, minus those held by a rate limit or an open breaker.',
    labelNames: ['tool'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      try {
        for (const { tool, counts } of await readOnce()) {
          const ready = (counts.waiting ?? 0) + (counts.prioritized ?? 0);
          // Holds are read only for tools with calls waiting: most of 100 tools are idle at any scrape.
          this.set({ tool }, ready === 0 ? 0 : Math.max(0, ready - (await held(tool))));
        }
      } catch {
        // Redis unreachable: no series this scrape.
      }
    },
  });
  return { jobs, runnable };
}
export type QueueGauges = ReturnType<typeof createQueueGauges>;
