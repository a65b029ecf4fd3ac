// Planning figure of `make bench`: plan mode against ReAct on a fan-out task — 8 independent calls of a
// tool that takes TOOL_LATENCY_MS, then a join over their 8 results (the same tool latency) — with a
// real planner, 2 real workers and the scripted model server (packages/agent/src/testing). Measures
// each run's wall time (created → finished, from the run record) and its model calls, with the model
// answering at once and with BENCH_MODEL_LATENCY_MS per call (a real model's round trip).
//
// Three runs of the same task:
//   plan             submit_plan with 9 steps, then the answer: 2 model calls
//   react            the 8 calls in one turn (parallel tool calls), the join, the answer: 3 model calls
//   react, serial    one call per turn, as models without parallel tool calls do: 10 model calls
//
// Standalone: `node --no-node-snapshot bench/planning.mjs` (after `pnpm build`).
import { createServer } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { freePort, startRedisServer } from '@toolplane/queue/testing';
import { ROOT, sleep, spawnNode } from './lib/processes.mjs';
import { round, summarize } from './lib/stats.mjs';

// The bench package does not depend on @toolplane/agent; its built testing entry is loaded by path.
const { startScriptedModelServer } = await import(pathToFileURL(join(ROOT, 'packages', 'agent', 'dist', 'testing', 'index.js')).href);

const TOOL_LATENCY_MS = 200;
const FAN_OUT = 8;

/** The last tool message's JSON (plan mode: every step's result). */
function lastToolJson(req) {
  return JSON.parse(req.messages.filter((m) => m.role === 'tool').at(-1).content);
}
const toolNumbers = (req) => req.messages.filter((m) => m.role === 'tool').map((m) => JSON.parse(m.content));

/** Scripts of the three ways to run the task; each ends with the real sum in the answer. */
function scripts(delayMs) {
  const squares = Array.from({ length: FAN_OUT }, (_, i) => ({ name: 'slow_square', arguments: { n: i + 1 } }));
  const answer = (sum) => ({ content: `The sum of the squares is ${sum}.`, delayMs });
  return {
    plan: [
      {
        delayMs,
        toolCalls: [
          {
            name: 'submit_plan',
            arguments: {
              steps: [
                ...squares.map((c, i) => ({ id: `s${i + 1}`, tool: c.name, arguments: c.arguments })),
                { id: 'sum', tool: 'slow_sum', arguments: { values: squares.map((_, i) => ({ $ref: `s${i + 1}` })) } },
              ],
            },
          },
        ],
      },
      (req) => answer(lastToolJson(req).steps.find((s) => s.id === 'sum').result),
    ],
    react: [
      { delayMs, toolCalls: squares },
      (req) => ({ delayMs, toolCalls: [{ name: 'slow_sum', arguments: { values: toolNumbers(req) } }] }),
      (req) => answer(toolNumbers(req).at(-1)),
    ],
    react_serial: [
      ...squares.map((c) => ({ delayMs, toolCalls: [c] })),
      (req) => ({ delayMs, toolCalls: [{ name: 'slow_sum', arguments: { values: toolNumbers(req) } }] }),
      (req) => answer(toolNumbers(req).at(-1)),
    ],
  };
}

const EXPECTED_SUM = Array.from({ length: FAN_OUT }, (_, i) => (i + 1) ** 2).reduce((a, b) => a + b, 0);

/**
 * Runs the figure on its own Redis, planner and workers. Returns, per model latency and way of
 * running, the medians of `repeats` runs: wall ms and model calls, plus plan/react ratios.
 */
export async function planningBench({ repeats = 3, modelLatencyMs = 500, smoke = false, log = (m) => process.stderr.write(`${m}\n`) } = {}) {
  // Smoke (the test suite): plan and react once, model answering at once; the serial run takes 10 turns.
  const ways = (latency) => Object.entries(scripts(latency)).filter(([mode]) => !smoke || mode !== 'react_serial');
  const delay = createServer((req, res) => {
    const ms = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('ms') ?? 0);
    setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'), ms);
  }).listen(0, '127.0.0.1');
  await new Promise((r) => delay.once('listening', r));
  const delayPort = delay.address().port;
  const redis = await startRedisServer({});
  const llm = await startScriptedModelServer();
  const prefix = `bench-plan-${Date.now().toString(36)}`;
  const procs = [];
  try {
    const port = await freePort();
    const env = { REDIS_URL: redis.url, TOOLPLANE_PREFIX: prefix };
    const planner = spawnNode(join(ROOT, 'services', 'planner', 'dist', 'main.js'), {
      ...env,
      PORT: String(port),
      HOST: '127.0.0.1',
      TOOLPLANE_AUTH: 'off',
      OPENAI_BASE_URL: llm.baseUrl,
      TOOLPLANE_MODEL: 'bench-default',
    });
    procs.push(planner);
    for (let i = 0; i < 2; i++) {
      procs.push(
        spawnNode(join(ROOT, 'services', 'worker', 'dist', 'main.js'), {
          ...env,
          WORKER_METRICS_PORT: '0',
          WORKER_CONCURRENCY: '16',
          TOOL_DISCOVERY_INTERVAL_MS: '200',
          // The slow tools wait on a local HTTP server.
          TOOLPLANE_ALLOW_PRIVATE_NETWORKS: '127.0.0.1',
        }),
      );
    }
    const base = `http://127.0.0.1:${port}`;
    const api = async (method, path, body) => {
      const res = await fetch(base + path, { method, headers: { 'content-type': 'application/json' }, ...(body ? { body: JSON.stringify(body) } : {}) });
      return { status: res.status, body: await res.json().catch(() => undefined) };
    };
    for (const deadline = Date.now() + 30_000; ; await sleep(100)) {
      for (const p of procs) if (p.exited()) throw new Error(`a service exited:\n${p.output()}`);
      if ((await fetch(`${base}/readyz`).catch(() => undefined))?.status === 200) break;
      if (Date.now() > deadline) throw new Error(`planner not ready:\n${planner.output()}`);
    }
    const wait = `await ctx.fetch('http://127.0.0.1:${delayPort}/?ms=${TOOL_LATENCY_MS}');`;
    const tools = {
      slow_square: {
        description: `Squares a number (takes ${TOOL_LATENCY_MS} ms)`,
        parameters: { type: 'object', properties: { n: { type: 'number' } }, required: ['n'] },
        code: `export default async function (args, ctx) { ${wait} return args.n * args.n }`,
      },
      slow_sum: {
        description: `Sums numbers (takes ${TOOL_LATENCY_MS} ms)`,
        parameters: { type: 'object', properties: { values: { type: 'array', items: { type: 'number' } } }, required: ['values'] },
        code: `export default async function (args, ctx) { ${wait} return args.values.reduce((a, b) => a + b, 0) }`,
      },
    };
    for (const [name, spec] of Object.entries(tools)) {
      const r = await api('PUT', `/v1/tools/${name}`, { ...spec, egress: [`127.0.0.1:${delayPort}`], limits: { timeoutMs: 5_000 } });
      if (r.status !== 201) throw new Error(`registering ${name}: ${r.status} ${JSON.stringify(r.body)}`);
    }
    // Warm both workers' sandbox hosts and tool modules: the figure measures scheduling, not cold starts.
    for (let i = 0; i < (smoke ? 1 : 3); i++) {
      await Promise.all(
        Array.from({ length: 2 * FAN_OUT }, (_, k) =>
          api('POST', '/v1/calls', k % 2 ? { tool: 'slow_sum', arguments: { values: [1] }, wait: true } : { tool: 'slow_square', arguments: { n: 1 }, wait: true }),
        ),
      );
    }

    let seq = 0;
    const runOnce = async (mode, turns) => {
      const model = `bench-${++seq}`;
      llm.script(model, turns);
      const created = await api('POST', '/v1/runs', { input: `Sum the squares of 1..${FAN_OUT}`, model, mode: mode === 'plan' ? 'plan' : 'react', tools: Object.keys(tools), maxIterations: 20 });
      if (created.status !== 201) throw new Error(`run not created: ${created.status} ${JSON.stringify(created.body)}`);
      for (const deadline = Date.now() + 60_000; ; await sleep(20)) {
        const run = (await api('GET', `/v1/runs/${created.body.id}`)).body;
        if (['succeeded', 'failed', 'budget_exceeded'].includes(run.status)) {
          if (run.status !== 'succeeded' || !run.finalAnswer.includes(String(EXPECTED_SUM))) {
            throw new Error(`${mode} run did not give the sum: ${JSON.stringify(run).slice(0, 2_000)}`);
          }
          const plan = run.steps.find((s) => s.plan)?.plan;
          return { wallMs: Date.parse(run.finishedAt) - Date.parse(run.createdAt), modelCalls: run.usage.modelCalls, tokens: run.usage.totalTokens, maxParallel: plan?.maxParallel };
        }
        if (Date.now() > deadline) throw new Error(`${mode} run did not finish: ${JSON.stringify(run).slice(0, 2_000)}`);
      }
    };

    // One unmeasured run per way: the planner's first run, plan check and schema compiles are cold.
    for (const [mode, turns] of ways(0)) await runOnce(mode, turns);
    const out = {};
    for (const latency of smoke ? [0] : [0, modelLatencyMs]) {
      const key = `model_latency_${latency}ms`;
      const byMode = Object.fromEntries(ways(latency).map(([mode]) => [mode, []]));
      for (let r = 0; r < repeats; r++) {
        // Interleaved, so drift of the machine's load touches every way alike.
        for (const [mode, turns] of ways(latency)) byMode[mode].push(await runOnce(mode, turns));
      }
      out[key] = Object.fromEntries(
        Object.entries(byMode).map(([mode, runs]) => [
          mode,
          { wall_ms: summarize(runs.map((x) => x.wallMs)), model_calls: runs[0].modelCalls, tokens: summarize(runs.map((x) => x.tokens)), ...(runs[0].maxParallel ? { max_parallel: runs[0].maxParallel } : {}) },
        ]),
      );
      const m = out[key];
      m.react_over_plan_wall = round(m.react.wall_ms.median / m.plan.wall_ms.median);
      if (m.react_serial) m.react_serial_over_plan_wall = round(m.react_serial.wall_ms.median / m.plan.wall_ms.median);
      log(`  model latency ${latency} ms: plan ${m.plan.wall_ms.median} ms / ${m.plan.model_calls} calls, react ${m.react.wall_ms.median} ms / ${m.react.model_calls}`);
    }
    return { task: { fan_out: FAN_OUT, join: 1, tool_latency_ms: TOOL_LATENCY_MS, workers: 2 }, repeats, ...out };
  } finally {
    await Promise.all(procs.map((p) => p.stop(5_000)));
    await llm.close();
    await redis.stop().catch(() => {});
    await new Promise((r) => delay.close(r));
  }
}

/** Table rows (name, value, note) for bench/run.mjs's printout. */
export function planningRows(p) {
  const rows = [[`Planning: ${p.task.fan_out} parallel calls + a join, tool ${p.task.tool_latency_ms} ms, scripted model`, '', '']];
  for (const [key, m] of Object.entries(p).filter(([k]) => k.startsWith('model_latency_'))) {
    const latency = key.replace('model_latency_', '').replace('ms', '');
    const rng = (s) => `${s.median} ms  (${s.min}–${s.max})`;
    rows.push([`  model answers in ${latency} ms: plan`, rng(m.plan.wall_ms), `${m.plan.model_calls} model calls, ${m.plan.max_parallel ?? '?'} steps at once`]);
    rows.push([`    react (parallel calls per turn)`, rng(m.react.wall_ms), `${m.react.model_calls} model calls, ×${m.react_over_plan_wall} plan's time`]);
    if (m.react_serial) rows.push([`    react (one call per turn)`, rng(m.react_serial.wall_ms), `${m.react_serial.model_calls} model calls, ×${m.react_serial_over_plan_wall} plan's time`]);
  }
  return rows;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const smoke = process.env.BENCH_SMOKE === '1';
  planningBench({ smoke, repeats: Number(process.env.BENCH_REPEATS ?? (smoke ? 1 : 3)), modelLatencyMs: Number(process.env.BENCH_MODEL_LATENCY_MS ?? 500) }).then(
    (r) => {
      console.log(JSON.stringify(r, null, 2));
      for (const [a, b, c] of planningRows(r)) console.log(`${a.padEnd(60)} ${b.padEnd(28)} ${c}`);
      process.exit(0);
    },
    (err) => {
      process.stderr.write(`planning bench failed: ${err?.stack ?? err}\n`);
      process.exit(1);
    },
  );
}
