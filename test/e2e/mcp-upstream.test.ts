import { afterAll, afterEach, beforeAll, describe, expect, inject, test } from 'vitest';
import { startMcpFixture, type McpFixture } from '../support/mcp-fixture.js';
import {
  api,
  eventually,
  startPlanner,
  startWorker,
  sumMetric,
  uniquePrefix,
  waitForCalls,
  type ServiceProcess,
} from '../support/services.js';

const TOKEN = 'fixture-token-4f1c9a0e7b';

describe('MCP upstreams (/v1/upstreams)', () => {
  const env = { REDIS_URL: inject('redisUrl'), TOOLPLANE_PREFIX: uniquePrefix() };
  let planner: ServiceProcess;
  let workers: ServiceProcess[] = [];
  let fixture: McpFixture;

  beforeAll(async () => {
    fixture = await startMcpFixture(TOKEN);
    [planner, ...workers] = await Promise.all([startPlanner(env), startWorker(env), startWorker(env)]);
    expect((await api(planner.url, 'PUT', '/v1/secrets/FIXTURE_TOKEN', { value: `Bearer ${TOKEN}` })).status).toBe(201);
  });
  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') {
      console.log(`planner output:\n${planner.output()}\nworker outputs:\n${workers.map((w) => w.output()).join('\n---\n')}`);
    }
  });
  afterAll(async () => {
    await Promise.all([planner, ...workers].map((p) => p?.kill()));
    await fixture?.stop();
  });

  const metricsTexts = () => Promise.all(workers.map(async (w) => (await fetch(`${w.url}/metrics`)).text()));
  const post = async (body: object) => {
    const r = await api(planner.url, 'POST', '/v1/calls', body);
    expect(r.status, JSON.stringify(r.body)).toBeLessThan(300);
    return r.body;
  };
  const breakerOf = async (tool: string) => (await api(planner.url, 'GET', `/v1/tools/${tool}`)).body.stats.breaker as string;

  test('registers an upstream, calls both its tools, trips and recovers the flaky one', async () => {
    const put = await api(planner.url, 'PUT', '/v1/upstreams/fx', {
      url: fixture.url,
      headers: { Authorization: 'secret:FIXTURE_TOKEN', 'X-Team': 'team-literal-93b' },
      breaker: { volumeThreshold: 4, errorThresholdPercentage: 50, resetTimeoutMs: 800 },
      retries: { attempts: 6, backoffMs: 50 },
      timeoutMs: 5_000,
    });
    expect(put.status, JSON.stringify(put.body)).toBe(201);
    expect(put.body).toMatchObject({
      name: 'fx',
      url: fixture.url,
      headers: [{ name: 'Authorization', secret: 'FIXTURE_TOKEN' }, { name: 'X-Team', literal: true }],
      tools: ['fx.add', 'fx.flaky'],
      skipped: [],
    });
    const tool = (await api(planner.url, 'GET', '/v1/tools/fx.add')).body;
    expect(tool).toMatchObject({ name: 'fx.add', description: 'Adds two numbers', upstream: { name: 'fx', tool: 'add' } });
    expect(tool.parameters).toMatchObject({ type: 'object', properties: { a: { type: 'number' }, b: { type: 'number' } } });

    // Arguments are checked against the upstream's schema before they are queued.
    const invalid = await api(planner.url, 'POST', '/v1/calls', { tool: 'fx.add', arguments: { a: 'x', b: 1 } });
    expect([invalid.status, invalid.body.error.code]).toEqual([400, 'INVALID_ARGUMENTS']);

    const added = await post({ tool: 'fx.add', arguments: { a: 2, b: 3 }, wait: 10_000 });
    expect(added).toMatchObject({ status: 'succeeded', result: { sum: 5 } });
    const ok = await post({ tool: 'fx.flaky', arguments: {}, wait: 10_000 });
    expect(ok).toMatchObject({ status: 'succeeded', result: 'ok' });

    // The downstream of `flaky` goes down: its breaker opens, and calls made meanwhile wait.
    fixture.failing = true;
    const early = await Promise.all(Array.from({ length: 8 }, () => post({ tool: 'fx.flaky', arguments: {} })));
    await eventually(async () => ((await breakerOf('fx.flaky')) === 'open' ? true : undefined), 10_000, 50);
    const whileOpen = await Promise.all(Array.from({ length: 10 }, () => post({ tool: 'fx.flaky', arguments: {} })));
    await eventually(async () => {
      const n = sumMetric(await metricsTexts(), 'toolplane_tool_calls_total', { tool: 'fx.flaky', outcome: 'circuit_open' });
      return n > 0 ? n : undefined;
    }, 10_000, 100);
    // Back up: every call made while the breaker was open succeeds, and the breaker closes.
    fixture.failing = false;
    const later = await waitForCalls(planner.url, whileOpen.map((c) => c.id), 30_000);
    expect(later.map((c) => c.status)).toEqual(Array(10).fill('succeeded'));
    expect(later.map((c) => c.result)).toEqual(Array(10).fill('ok'));
    const first = await waitForCalls(planner.url, early.map((c) => c.id), 30_000);
    expect(first.map((c) => c.status)).toEqual(Array(8).fill('succeeded'));
    await eventually(async () => ((await breakerOf('fx.flaky')) === 'closed' ? true : undefined), 10_000, 100);

    const texts = await metricsTexts();
    expect(sumMetric(texts, 'toolplane_tool_calls_total', { tool: 'fx.flaky', outcome: 'error' })).toBeGreaterThan(0);
    expect(sumMetric(texts, 'toolplane_tool_calls_total', { tool: 'fx.add', outcome: 'success' })).toBe(1);
    const audit = await api(planner.url, 'GET', '/v1/calls?tool=fx.flaky&limit=100');
    expect(audit.body.calls).toHaveLength(19);
    expect(fixture.unauthorized).toBe(0);
  });

  test('header values are never returned by the API', async () => {
    const all = await api(planner.url, 'GET', '/v1/upstreams');
    expect(all.status).toBe(200);
    expect(all.body.upstreams.map((u: { name: string }) => u.name)).toEqual(['fx']);
    const one = await api(planner.url, 'GET', '/v1/upstreams/fx');
    for (const text of [JSON.stringify(all.body), JSON.stringify(one.body), planner.output(), ...workers.map((w) => w.output())]) {
      expect(text).not.toContain(TOKEN);
      expect(text).not.toContain('team-literal-93b');
    }
  });

  test('refresh picks up new tools and drops gone ones; delete removes them all', async () => {
    fixture.offerLater = true;
    const refreshed = await api(planner.url, 'POST', '/v1/upstreams/fx/refresh');
    expect(refreshed.status).toBe(200);
    expect(refreshed.body.tools).toEqual(['fx.add', 'fx.flaky', 'fx.later']);
    const addVersion = (await api(planner.url, 'GET', '/v1/tools/fx.add')).body.version;
    expect(addVersion).toBe(1); // unchanged tools keep their version
    expect(await post({ tool: 'fx.later', arguments: {}, wait: 10_000 })).toMatchObject({ status: 'succeeded', result: 'later' });

    fixture.offerLater = false;
    expect((await api(planner.url, 'POST', '/v1/upstreams/fx/refresh')).body.tools).toEqual(['fx.add', 'fx.flaky']);
    expect((await api(planner.url, 'GET', '/v1/tools/fx.later')).status).toBe(404);

    expect((await api(planner.url, 'DELETE', '/v1/upstreams/fx')).status).toBe(204);
    const names = (await api(planner.url, 'GET', '/v1/tools')).body.tools.map((t: { name: string }) => t.name);
    expect(names.filter((n: string) => n.startsWith('fx.'))).toEqual([]);
    expect((await api(planner.url, 'GET', '/v1/upstreams/fx')).status).toBe(404);
  });

  test('bad upstreams get clear errors with stable codes', async () => {
    const cases: Array<[string, string, unknown, number, string]> = [
      ['PUT', '/v1/upstreams/a.b', { url: fixture.url }, 400, 'INVALID_REQUEST'],
      ['PUT', '/v1/upstreams/x', { url: 'ftp://example.com/mcp' }, 400, 'INVALID_REQUEST'],
      ['PUT', '/v1/upstreams/x', { url: 'http://user:pw@127.0.0.1/mcp' }, 400, 'INVALID_REQUEST'],
      ['PUT', '/v1/upstreams/x', { url: fixture.url, headers: { Host: 'evil' } }, 400, 'INVALID_REQUEST'],
      ['PUT', '/v1/upstreams/x', { url: fixture.url, headers: { 'X-A': 'a\r\nb' } }, 400, 'INVALID_REQUEST'],
      ['PUT', '/v1/upstreams/x', { url: fixture.url, extra: 1 }, 400, 'INVALID_REQUEST'],
      ['PUT', '/v1/upstreams/x', { url: fixture.url, headers: { Authorization: 'secret:NOT_SET' } }, 400, 'INVALID_REQUEST'],
      // Wrong credentials and nothing listening are the upstream's fault: 502.
      ['PUT', '/v1/upstreams/x', { url: fixture.url }, 502, 'UPSTREAM_ERROR'],
      ['PUT', '/v1/upstreams/x', { url: 'http://127.0.0.1:1/mcp' }, 502, 'UPSTREAM_ERROR'],
      ['POST', '/v1/upstreams/nope/refresh', undefined, 404, 'NOT_FOUND'],
      ['DELETE', '/v1/upstreams/nope', undefined, 404, 'NOT_FOUND'],
      ['PUT', '/v1/tools/y', { description: 'd', parameters: { type: 'object' }, code: 'export default () => 1', upstream: { name: 'fx', tool: 'add' } }, 400, 'INVALID_TOOL'],
    ];
    for (const [method, path, body, status, code] of cases) {
      const r = await api(planner.url, method, path, body);
      expect([r.status, r.body?.error?.code], `${method} ${path} ${JSON.stringify(body)}`).toEqual([status, code]);
    }
    expect((await api(planner.url, 'GET', '/v1/upstreams/x')).status).toBe(404);
    expect((await api(planner.url, 'GET', '/healthz')).status).toBe(200);
  });
});
