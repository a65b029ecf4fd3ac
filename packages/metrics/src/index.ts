/**
 * prom-client registries and the metric sets of Toolplane's services. Only services import this.
 *
 * @example
 * ```ts
 * const registry = createRegistry({ service: 'worker' });
 * const m = createToolMetrics(registry);
 * m.calls.inc({ tool: 'add', outcome: 'success' });
 * res.end(await registry.metrics());
 * ```
 */
export {
  createRegistry,
  createToolMetrics,
  createHttpMetrics,
  createQueueGauges,
  createAgentMetrics,
  initToolSeries,
  removeToolSeries,
  CALL_OUTCOMES,
  CALL_SECONDS_BUCKETS,
} from './metrics.js';
export type {
  ToolMetrics,
  HttpMetrics,
  AgentMetrics,
  QueueGauges,
  QueueGaugesOptions,
  QueueDepth,
  CallOutcome,
  AgentRunStatus,
  LlmTokenKind,
} from './metrics.js';
export { createHistoryMetrics } from './history.js';
export type { HistoryMetrics } from './history.js';
export type { Registry } from 'prom-client';
