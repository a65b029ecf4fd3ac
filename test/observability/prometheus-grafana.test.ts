import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { parse } from 'yaml';
import { startScriptedModelServer, type ScriptedModelServer } from '@toolplane/agent/testing';
import { DASHBOARDS_DIR, PROMETHEUS_DIR, panelQueries, ruleExpressions, substituteVariables } from '../support/dashboards.js';
import { eventually, promtool, startPrometheus, type PrometheusServer } from '../support/prometheus.js';
import { pollUntil } from '../support/poll.js';
import { ADD_TOOL, api, startPlanner, startWorker, uniquePrefix, type ServiceProcess } from '../support/services.js';

/** Grafana's variables as the panels would see them with "All" selected. */
const GRAFANA_VARS = { __rate_interval: '1m', __interval: '1s', __range: '5m', tool: '.*' };

/**
 * The "Done when" of the observability issue on real processes: a planner and two workers run a mixed
 * workload (an agent run against the scripted model server included), promtool lints both /metrics
 * outputs, and a real Prometheus scraping them every second answers every dashboard panel and alert rule.
 */
describe('metrics, Prometheus and the Grafana dashboard on a real workload', () => {
  let planner: ServiceProcess;
  let workers: ServiceProcess[] = [];
  let prometheus: PrometheusServer | undefined;
  let llm: ScriptedModelServer | undefined;
  const env = { REDIS_URL: inject('redisUrl'), TOOLPLANE_PREFIX: uniquePrefix() };

  beforeAll(async () => {
    llm = await startScriptedModelServer();
    [planner, ...workers] = await Promise.all([
      startPlanner({ ...env, OPENAI_BASE_URL: llm.baseUrl }),
      startWorker(env),
      startWorker(env),
    ]);
    prometheus = await startPrometheus(scrapingConfig(planner, workers), {
      'alerts.yml': readFileSync(join(PROMETHEUS_DIR, 'alerts.yml'), 'utf8'),
    });
    await Promise.all([runMixedWorkload(planner), runAgentRun(planner, llm)]);
  });
  afterAll(async () => {
    await Promise.all([planner?.kill(), ...workers.map((w) => w.kill()), prometheus?.stop(), llm?.close()]);
  });

  test('promtool check metrics passes on the planner and on each worker', async () => {
    for (const svc of [planner, ...workers]) {
      const text = await (await fetch(`${svc.url}/metrics`)).text();
      expect(text).toContain('toolplane_');
      const lint = await promtool(['check', 'metrics'], text);
      expect(lint, `${svc.url}/metrics:\n${lint.output}`).toMatchObject({ code: 0 });
    }
  });

  test('every query of every dashboard panel returns data', async () => {
    await waitForScrapesOfTheWorkload(prometheus!);
    const queries = panelQueries(join(DASHBOARDS_DIR, 'toolplane-overview.json'));
    expect(queries.length).toBeGreaterThan(15);
    // Every expression must parse (query() throws otherwise). Empty ones are asked again for a few
    // seconds: a scrape that times out on a busy machine marks its series stale until the next one.
    let empty = queries;
    const deadline = Date.now() + 15_000;
    do {
      const answers = await Promise.all(empty.map((q) => prometheus!.query(substituteVariables(q.expr, GRAFANA_VARS))));
      empty = empty.filter((_, i) => answers[i]!.length === 0);
      if (empty.length > 0) await new Promise((r) => setTimeout(r, 500));
    } while (empty.length > 0 && Date.now() < deadline);
    expect(empty.map((q) => `${q.panel} [${q.refId}]: ${q.expr}`), 'panels without data').toEqual([]);
  });

  test('every alert rule evaluates without error, in Prometheus rule evaluation too', async () => {
    const rules = ruleExpressions(join(PROMETHEUS_DIR, 'alerts.yml'));
    expect(rules.length).toBeGreaterThan(5);
    for (const r of rules) await prometheus!.query(r.expr);
    // Prometheus loaded the rule file and has evaluated each group at least once, without errors.
    await eventually('every rule group evaluated', async () => {
      const groups = await rulesApi(prometheus!);
      return groups.length > 0 && groups.every((g) => g.lastEvaluation !== '0001-01-01T00:00:00Z');
    });
    const groups = await rulesApi(prometheus!);
    const broken = groups.flatMap((g) => g.rules.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.lastError}`));
    expect(broken).toEqual([]);
    expect(groups.flatMap((g) => g.rules).length).toBe(rules.length);
  });

  test('the runnable gauge and worker count reflect the running system', async () => {
    // Polled: on a busy machine one scrape may time out and briefly read a target as down.
    await eventually('2 workers up', async () => {
      const [up] = await prometheus!.query('sum(up{service="worker"})');
      return up?.value[1] === '2';
    });
    await eventually('a runnable series per tool', async () => {
      const runnable = await prometheus!.query('toolplane_queue_runnable');
      return runnable.map((s) => s.metric.tool).sort().join() === 'add,fail,spin';
    });
  });
});

/**
 * The repository's prometheus.yml, pointed at this test's processes: its local job keeps its labels
 * (what dashboards and alerts select on) with the targets replaced; other discovery is dropped.
 */
function scrapingConfig(planner: ServiceProcess, workers: ServiceProcess[]) {
  const config = parse(readFileSync(join(PROMETHEUS_DIR, 'prometheus.yml'), 'utf8')) as {
    global: Record<string, string>;
    scrape_configs: Array<{ job_name: string; static_configs?: Array<{ targets: string[]; labels: { service: string } }> }>;
  };
  const local = config.scrape_configs.find((j) => j.job_name === 'toolplane-local');
  if (!local?.static_configs) throw new Error('prometheus.yml has no toolplane-local static job');
  const targets = { planner: [planner], worker: workers };
  for (const group of local.static_configs) {
    group.targets = targets[group.labels.service as 'planner' | 'worker'].map((s) => `127.0.0.1:${s.port}`);
  }
  return {
    ...config,
    global: { ...config.global, scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
    scrape_configs: [local],
  };
}

/** Successes, tool errors with retries, timeouts and refused requests. */
async function runMixedWorkload(planner: ServiceProcess): Promise<void> {
  const put = (name: string, body: object) => api(planner.url, 'PUT', `/v1/tools/${name}`, body);
  expect((await put('add', ADD_TOOL)).status).toBe(201);
  expect(
    (
      await put('fail', {
        description: 'always throws',
        parameters: { type: 'object' },
        code: 'export default function () { throw new Error("boom") }',
        retries: { attempts: 2, backoffMs: 10 },
      })
    ).status,
  ).toBe(201);
  expect(
    (
      await put('spin', {
        description: 'never returns',
        parameters: { type: 'object' },
        code: 'export default function () { while (true) {} }',
        limits: { timeoutMs: 100 },
        retries: { attempts: 1 },
      })
    ).status,
  ).toBe(201);
  const call = (tool: string, args: object) => api(planner.url, 'POST', '/v1/calls', { tool, arguments: args, wait: 20_000 });
  const results = await Promise.all([
    ...Array.from({ length: 20 }, (_, i) => call('add', { a: i, b: 1 })),
    call('fail', {}),
    call('fail', {}),
    call('spin', {}),
    call('spin', {}),
  ]);
  expect(results.map((r) => r.body.status)).toEqual([...Array(20).fill('succeeded'), 'failed', 'failed', 'failed', 'failed']);
  expect((await api(planner.url, 'POST', '/v1/calls', { tool: 'add', arguments: { a: 'x' } })).status).toBe(400);
  expect((await api(planner.url, 'POST', '/v1/calls', { tool: 'nope', arguments: {} })).status).toBe(404);
  expect((await api(planner.url, 'POST', '/v1/calls', '{"tool":')).status).toBe(400);
}

/** One agent run with a tool call, for the agent panels (runs by status, tokens by model and kind). */
async function runAgentRun(planner: ServiceProcess, llm: ScriptedModelServer): Promise<void> {
  llm.script('gpt-4o-mini', [{ toolCalls: [{ id: 'c1', name: 'add', arguments: { a: 1, b: 2 } }] }, { content: 'It is 3.' }]);
  // The tool is registered by the mixed workload running alongside.
  await pollUntil(async () => (await api(planner.url, 'GET', '/v1/tools/add')).status, (s) => s === 200);
  const started = await api(planner.url, 'POST', '/v1/runs', { input: 'What is 1 + 2?', model: 'gpt-4o-mini', tools: ['add'] });
  expect(started.status, JSON.stringify(started.body)).toBe(201);
  const run = await pollUntil(
    async () => (await api(planner.url, 'GET', `/v1/runs/${started.body.id}`)).body,
    (r) => ['succeeded', 'failed', 'budget_exceeded'].includes(r.status),
  );
  expect(run.status, JSON.stringify(run.error)).toBe('succeeded');
}

/** Waits until Prometheus holds the workload's final counts and has scraped every worker a few times. */
async function waitForScrapesOfTheWorkload(prometheus: PrometheusServer): Promise<void> {
  await eventually('the workload scraped', async () => {
    const [succeeded] = await prometheus.query('sum(toolplane_tool_calls_total{outcome="success"})');
    const scrapes = await prometheus.query('count_over_time(up{service="worker"}[1m])');
    const [runs] = await prometheus.query('count_over_time(toolplane_agent_runs_total[1m])');
    return (
      Number(succeeded?.value[1]) === 21 &&
      Number(runs?.value[1]) >= 2 &&
      scrapes.length === 2 &&
      scrapes.every((s) => Number(s.value[1]) >= 3)
    );
  });
}

type RuleGroup = { name: string; lastEvaluation: string; rules: Array<{ name: string; health: string; lastError?: string }> };

async function rulesApi(prometheus: PrometheusServer): Promise<RuleGroup[]> {
  const body = (await (await fetch(`${prometheus.url}/api/v1/rules`)).json()) as { data: { groups: RuleGroup[] } };
  return body.data.groups;
}
