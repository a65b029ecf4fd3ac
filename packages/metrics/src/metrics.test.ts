import { describe, expect, test } from 'vitest';
import { createAgentMetrics, createQueueGauges, createRegistry, createToolMetrics, initToolSeries, removeToolSeries } from './metrics.js';

describe('createQueueGauges', () => {
  test('reads the queues once per scrape and derives runnable from waiting + prioritized - held', async () => {
    const registry = createRegistry();
    let reads = 0;
    createQueueGauges(registry, {
      read: async () => {
        reads++;
        return [
          { tool: 'add', counts: { waiting: 5, prioritized: 2, active: 1 } },
          { tool: 'slow', counts: { waiting: 1, prioritized: 0, active: 0 } },
        ];
      },
      held: (tool) => (tool === 'slow' ? 3 : 1),
    });
    const text = await registry.metrics();
    expect(reads).toBe(1);
    expect(text).toContain('toolplane_queue_jobs{tool="add",state="waiting"} 5');
    expect(text).toContain('toolplane_queue_runnable{tool="add"} 6');
    // More held than waiting (the hold count lags): never negative.
    expect(text).toContain('toolplane_queue_runnable{tool="slow"} 0');
    await registry.metrics();
    expect(reads).toBe(2);
  });

  test('reports no queue series while Redis is unreachable, and the scrape still succeeds', async () => {
    const registry = createRegistry();
    createQueueGauges(registry, { read: () => Promise.reject(new Error('ECONNREFUSED')) });
    const text = await registry.metrics();
    expect(text).not.toMatch(/^toolplane_queue_(jobs|runnable)\{/m);
    expect(text).toContain('process_cpu_seconds_total');
  });
});

test('initToolSeries shows every outcome of a tool at 0 and its breaker closed', async () => {
  const registry = createRegistry();
  const m = createToolMetrics(registry);
  initToolSeries(m, 'add');
  const text = await registry.metrics();
  for (const outcome of ['success', 'error', 'timeout', 'rate_limited']) {
    expect(text).toContain(`toolplane_tool_calls_total{tool="add",outcome="${outcome}"} 0`);
  }
  expect(text).toContain('toolplane_rate_limited_total{tool="add",scope="tool"} 0');
  expect(text).toContain('toolplane_circuit_state{tool="add"} 0');
});

test('removeToolSeries drops every series of a deleted tool and leaves the others', async () => {
  const registry = createRegistry();
  const m = createToolMetrics(registry);
  for (const tool of ['gone', 'kept']) {
    initToolSeries(m, tool);
    m.calls.inc({ tool, outcome: 'success' });
    m.duration.observe({ tool }, 0.01);
    m.queueWait.observe({ tool }, 0.01);
    m.retries.inc({ tool });
    m.active.inc({ tool });
  }
  removeToolSeries(m, 'gone');
  const text = await registry.metrics();
  expect(text).not.toContain('tool="gone"');
  expect(text.match(/tool="kept"/g)?.length).toBeGreaterThan(20);
  expect(text).toContain('toolplane_tool_calls_total{tool="kept",outcome="success"} 1');
});

test('createAgentMetrics defines the agent run and token counters', async () => {
  const registry = createRegistry();
  const m = createAgentMetrics(registry);
  m.runs.inc({ status: 'succeeded' });
  m.llmTokens.inc({ model: 'gpt-x', kind: 'prompt' }, 120);
  const text = await registry.metrics();
  expect(text).toContain('toolplane_agent_runs_total{status="succeeded"} 1');
  expect(text).toContain('toolplane_llm_tokens_total{model="gpt-x",kind="prompt"} 120');
});
