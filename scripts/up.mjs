// `make up`: Redis (a local one with AOF when REDIS_URL is unreachable), the planner, 2 workers,
// the sample tools and a short sample workload; then serves until Ctrl-C and stops everything.
// Workers are supervised (scripts/supervise.mjs): one that stops answering /healthz for 5 s is
// killed and replaced, one that exits is restarted.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Supervisor } from './supervise.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dataDir = join(root, '.data');
mkdirSync(dataDir, { recursive: true });
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const PORT = Number(process.env.PORT ?? 8080);
const WORKERS = Number(process.env.WORKERS ?? 2);
process.env.LOG_LEVEL ??= 'warn';
// Auth is on: a local run gets a fresh admin key (printed below) unless one is set already, or the
// operator turned auth off explicitly with TOOLPLANE_AUTH=off.
const AUTH_OFF = process.env.TOOLPLANE_AUTH === 'off';
if (!AUTH_OFF) process.env.TOOLPLANE_ADMIN_KEY ||= randomBytes(16).toString('hex');
const AUTH = AUTH_OFF ? {} : { authorization: `Bearer ${process.env.TOOLPLANE_ADMIN_KEY}` };
/** `{ name, child }`; a supervised worker's entry gets its new child when it is restarted. */
const children = [];
const supervisors = [];
// `make down` signals these last to first: this process first, so its supervisors stop before the
// workers go and do not restart them.
let pidsReady = false;
const writePids = () =>
  writeFileSync(
    join(dataDir, 'pids.json'),
    JSON.stringify([...children.map(({ name, child }) => ({ name, pid: child.pid })), { name: 'make up', pid: process.pid }]),
  );

const say = (msg) => process.stdout.write(`\x1b[36m[toolplane]\x1b[0m ${msg}\n`);

function reachable(url) {
  const u = new URL(url.replace(/^redis-cluster:\/\/([^,]+).*/, 'redis://$1'));
  return new Promise((resolve) => {
    const s = connect(Number(u.port || 6379), u.hostname);
    s.setTimeout(500);
    s.once('connect', () => (s.end(), resolve(true)));
    s.once('error', () => resolve(false));
    s.once('timeout', () => (s.destroy(), resolve(false)));
  });
}

function start(name, cmd, args, env = {}) {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit'] });
  child.on('exit', (code, signal) => {
    if (!stopping) say(`${name} exited (${code ?? signal})`);
  });
  children.push({ name, child });
  return child;
}

async function waitHealthy(url, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} not healthy after ${timeoutMs}ms`);
}

async function api(method, path, body) {
  const res = await fetch(`http://127.0.0.1:${PORT}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...AUTH },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

/** What the scripted model answers in `make up` without an API key: parallel calls, one more call, an answer. */
const DEMO_SCRIPT = [
  {
    content: 'Both sums are independent: I will compute them in parallel.',
    toolCalls: [
      { name: 'add', arguments: { a: 2, b: 3 } },
      { name: 'add', arguments: { a: 40, b: 2 } },
    ],
  },
  { toolCalls: [{ name: 'wordcount', arguments: { text: 'to be or not to be', top: 2 } }] },
  { content: '2+3 = 5, 40+2 = 42, and "to be or not to be" has 6 words.' },
];
let scripted;

let stopping = false;
async function stopAll(code = 0) {
  if (stopping) return;
  stopping = true;
  say('stopping…');
  for (const s of supervisors) s.stop();
  await scripted?.close();
  for (const { child } of [...children].reverse()) child.kill('SIGTERM');
  await Promise.all(children.map(({ child }) => child.exitCode !== null || child.signalCode !== null ? null : new Promise((r) => child.once('exit', r))));
  rmSync(join(dataDir, 'pids.json'), { force: true });
  say('stopped');
  process.exit(code);
}
process.on('SIGINT', () => void stopAll());
process.on('SIGTERM', () => void stopAll());

try {
  if (!(await reachable(REDIS_URL))) {
    const port = new URL(REDIS_URL).port || '6379';
    say(`${REDIS_URL} unreachable: starting redis-server on ${port} with AOF in .data/`);
    start('redis', 'redis-server', ['--port', port, '--bind', '127.0.0.1', '--dir', dataDir, '--appendonly', 'yes',
      '--appendfsync', 'everysec', '--maxmemory-policy', 'noeviction', '--save', '', '--loglevel', 'warning']);
    for (let i = 0; i < 50 && !(await reachable(REDIS_URL)); i++) await new Promise((r) => setTimeout(r, 100));
  }
  const nodeArgs = ['--no-node-snapshot'];
  // Without a model endpoint, agent runs talk to the scripted model server (a dev tool, never used when one is set).
  const modelEnv = {};
  if (!process.env.OPENAI_BASE_URL && !process.env.OPENAI_API_KEY) {
    const { startScriptedModelServer } = await import(join(root, 'packages/agent/dist/testing/index.js'));
    scripted = await startScriptedModelServer({ scripts: { 'scripted-demo': DEMO_SCRIPT } });
    Object.assign(modelEnv, { OPENAI_BASE_URL: scripted.baseUrl, TOOLPLANE_MODEL: 'scripted-demo' });
    say(`no OPENAI_BASE_URL or OPENAI_API_KEY: agent runs use the scripted model server at ${scripted.baseUrl}`);
  }
  start('planner', process.execPath, [...nodeArgs, join(root, 'services/planner/dist/main.js')], { REDIS_URL, PORT: String(PORT), ...modelEnv });
  const workerPorts = [];
  for (let i = 0; i < WORKERS; i++) {
    const mp = 9464 + i;
    workerPorts.push(mp);
    const entry = { name: `worker-${i + 1}` };
    children.push(entry);
    const supervisor = new Supervisor({
      name: entry.name,
      healthUrl: `http://127.0.0.1:${mp}/healthz`,
      log: say,
      spawn: () =>
        spawn(process.execPath, [...nodeArgs, join(root, 'services/worker/dist/main.js')], {
          env: { ...process.env, REDIS_URL, WORKER_METRICS_PORT: String(mp) },
          stdio: ['ignore', 'inherit', 'inherit'],
        }),
      onSpawn: (child) => {
        entry.child = child;
        if (pidsReady) writePids();
      },
    });
    supervisors.push(supervisor.start());
  }
  pidsReady = true;
  writePids();
  await waitHealthy(`http://127.0.0.1:${PORT}/readyz`);
  for (const mp of workerPorts) await waitHealthy(`http://127.0.0.1:${mp}/readyz`);

  const samples = JSON.parse(readFileSync(join(root, 'scripts/sample-tools.json'), 'utf8'));
  for (const [name, spec] of Object.entries(samples)) {
    const r = await api('PUT', `/v1/tools/${name}`, spec);
    say(`registered tool ${name} (version ${r.body.version})`);
  }
  const workload = [
    { tool: 'add', arguments: { a: 2, b: 3 } },
    { tool: 'add', arguments: { a: 40, b: 2 } },
    { tool: 'wordcount', arguments: { text: 'the quick brown fox jumps over the lazy dog the end' } },
    { tool: 'add', arguments: { a: 'x' } },
  ];
  for (const call of workload) {
    const r = await api('POST', '/v1/calls', { ...call, wait: 10_000 });
    const shown = r.body.status ? `${r.body.status} → ${JSON.stringify(r.body.result ?? r.body.error)}` : `${r.status} ${r.body.error.code}`;
    say(`call ${call.tool}(${JSON.stringify(call.arguments)}): ${shown}`);
  }
  const started = await api('POST', '/v1/runs', { input: 'Add 2+3 and 40+2, then count the words of "to be or not to be".', maxIterations: 5 });
  if (started.status === 201) {
    let run;
    for (let i = 0; i < 100; i++) {
      run = (await api('GET', `/v1/runs/${started.body.id}`)).body;
      if (['succeeded', 'failed', 'budget_exceeded'].includes(run.status)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const step of run.steps) {
      const calls = step.toolCalls.map((c) => `${c.tool}(${JSON.stringify(c.arguments)}) → ${JSON.stringify(c.result ?? c.error)}`);
      say(`run step ${step.index}: ${calls.join(', ') || step.finalAnswer || step.correction}`);
    }
    say(`run ${run.id}: ${run.status}; steps at /v1/runs/${run.id}, live at /v1/runs/${run.id}/events`);
  } else {
    say(`agent run not started: ${started.body.error?.message}`);
  }
  say(`API        http://127.0.0.1:${PORT}/v1/tools`);
  say(`MCP        http://127.0.0.1:${PORT}/mcp (Streamable HTTP, same bearer key)`);
  say(`metrics    http://127.0.0.1:${PORT}/metrics (admin key)  ${workerPorts.map((p) => `http://127.0.0.1:${p}/metrics`).join('  ')}`);
  if (AUTH_OFF) {
    say('auth       off (TOOLPLANE_AUTH=off): every request acts as an admin; the queue dashboard is closed');
    say(`console    http://127.0.0.1:${PORT}/console`);
  } else {
    // Opened once, the link signs the browser in and the key leaves the address bar.
    say(`console    http://127.0.0.1:${PORT}/console?key=${process.env.TOOLPLANE_ADMIN_KEY}`);
    say(`queues     http://127.0.0.1:${PORT}/admin/queues?key=${process.env.TOOLPLANE_ADMIN_KEY}`);
    say(`admin key  ${process.env.TOOLPLANE_ADMIN_KEY}  (create tenant keys with POST /v1/admin/keys)`);
  }
  const authHeader = AUTH_OFF ? '' : `-H 'authorization: Bearer ${process.env.TOOLPLANE_ADMIN_KEY}' `;
  say(`try        curl -s ${authHeader}-H 'content-type: application/json' -XPOST localhost:${PORT}/v1/calls -d '{"tool":"add","arguments":{"a":2,"b":3},"wait":true}'`);
  say(`workers    supervised: /healthz probed every second; one silent for 5 s is killed and restarted`);
  say('serving; Ctrl-C stops everything');
} catch (err) {
  say(`failed: ${err.message}`);
  await stopAll(1);
}
