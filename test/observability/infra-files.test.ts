import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { parse, stringify } from 'yaml';
import { PlannerConfig, loadConfig } from '@toolplane/planner/config';
import { WorkerConfig } from '@toolplane/worker/config';
import { DASHBOARDS_DIR, PROMETHEUS_DIR, panelQueries } from '../support/dashboards.js';
import { promtool } from '../support/prometheus.js';
import { ROOT } from '../support/services.js';

type ScrapeJob = { job_name: string; authorization?: { type?: string; credentials_file?: string }; [key: string]: unknown };

/**
 * prometheus.yml as shipped, with each `credentials_file` pointed at a token file of `dir` (compose
 * mounts the real one at /run/secrets/…; promtool refuses a config whose file is missing) and the
 * rule files at their place in the repo. Returns the path of the copy.
 */
function withTokenFile(dir: string, token: string | undefined): string {
  const config = parse(readFileSync(join(PROMETHEUS_DIR, 'prometheus.yml'), 'utf8')) as { rule_files: string[]; scrape_configs: ScrapeJob[] };
  const tokenFile = join(dir, 'toolplane-metrics-token');
  if (token !== undefined) writeFileSync(tokenFile, token);
  for (const job of config.scrape_configs) if (job.authorization?.credentials_file) job.authorization.credentials_file = tokenFile;
  config.rule_files = config.rule_files.map((f) => join(PROMETHEUS_DIR, f));
  writeFileSync(join(dir, 'prometheus.yml'), stringify(config));
  return join(dir, 'prometheus.yml');
}

describe('infra/prometheus', () => {
  test('promtool check config passes on prometheus.yml, with its rule file and the metrics token file present', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'toolplane-promtool-'));
    try {
      const res = await promtool(['check', 'config', withTokenFile(dir, 'c'.repeat(32))]);
      expect(res, res.output).toMatchObject({ code: 0 });
      expect(res.output).toMatch(/SUCCESS: 1 rule files found/);
      // The token file is part of the config: without it promtool fails, naming it.
      const missing = await promtool(['check', 'config', withTokenFile(mkdtempSync(join(dir, 'none-')), undefined)]);
      expect(missing.code, missing.output).not.toBe(0);
      expect(missing.output).toMatch(/toolplane-metrics-token/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('promtool check rules passes on alerts.yml, and it covers what an operator must hear about', async () => {
    const res = await promtool(['check', 'rules', join(PROMETHEUS_DIR, 'alerts.yml')]);
    expect(res, res.output).toMatchObject({ code: 0 });
    const alerts = readFileSync(join(PROMETHEUS_DIR, 'alerts.yml'), 'utf8');
    for (const name of ['ToolplaneCircuitOpen', 'ToolplaneToolErrorRatio', 'ToolplaneQueueBacklog', 'ToolplaneNoWorkers', 'ToolplaneAgentRunsFailing']) {
      expect(alerts).toContain(`alert: ${name}`);
    }
  });

  test('promtool test rules: the alerts fire on synthetic series, and stay quiet on healthy ones', async () => {
    const res = await promtool(['test', 'rules', join(PROMETHEUS_DIR, 'alerts.test.yml')]);
    expect(res, res.output).toMatchObject({ code: 0 });
  });

  test('prometheus-kubernetes.yml discovers pods and passes promtool apart from the discovery block', async () => {
    // Debian's prometheus is built without Kubernetes discovery and rejects the key itself; every
    // other part (relabeling regexes, rule files) is checked with the block swapped for a static one.
    const config = parse(readFileSync(join(PROMETHEUS_DIR, 'prometheus-kubernetes.yml'), 'utf8')) as {
      rule_files: string[];
      scrape_configs: Array<Record<string, unknown>>;
    };
    const [job] = config.scrape_configs;
    expect(job?.kubernetes_sd_configs).toEqual([{ role: 'pod' }]);
    const relabels = JSON.stringify(job?.relabel_configs);
    expect(relabels).toContain('__meta_kubernetes_pod_annotation_prometheus_io_scrape');
    expect(relabels).toContain('"target_label":"service"');
    delete job!.kubernetes_sd_configs;
    job!.static_configs = [{ targets: ['127.0.0.1:9464'] }];
    config.rule_files = config.rule_files.map((f) => join(PROMETHEUS_DIR, f));
    const dir = mkdtempSync(join(tmpdir(), 'toolplane-promtool-'));
    try {
      // The token file is where the Secret is mounted in a cluster (infra/k8s/README.md); promtool wants one that exists.
      const auth = job!.authorization as { credentials_file: string };
      expect(auth.credentials_file).toBe('/etc/prometheus/secrets/toolplane-secrets/TOOLPLANE_METRICS_TOKEN');
      auth.credentials_file = join(dir, 'TOOLPLANE_METRICS_TOKEN');
      writeFileSync(auth.credentials_file, 'a-metrics-token-of-32-characters');
      writeFileSync(join(dir, 'prometheus.yml'), stringify(config));
      const res = await promtool(['check', 'config', join(dir, 'prometheus.yml')]);
      expect(res, res.output).toMatchObject({ code: 0 });
      expect(res.output).toMatch(/SUCCESS: 1 rule files found/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('infra/grafana', () => {
  test('the dashboard queries the provisioned datasource and every panel has a query', () => {
    const dashboard = JSON.parse(readFileSync(join(DASHBOARDS_DIR, 'toolplane-overview.json'), 'utf8'));
    const datasources = parse(readFileSync(join(ROOT, 'infra/grafana/provisioning/datasources/prometheus.yml'), 'utf8'));
    const uid = datasources.datasources[0].uid;
    const panels = (dashboard.panels as Array<{ type: string; title: string; datasource?: { uid: string } }>).filter((p) => p.type !== 'row');
    for (const p of panels) expect(p.datasource?.uid, p.title).toBe(uid);
    const withQueries = new Set(panelQueries(join(DASHBOARDS_DIR, 'toolplane-overview.json')).map((q) => q.panel));
    expect(panels.filter((p) => !withQueries.has(p.title)).map((p) => p.title)).toEqual([]);
    const exprs = panelQueries(join(DASHBOARDS_DIR, 'toolplane-overview.json')).map((q) => q.expr).join('\n');
    for (const metric of [
      'toolplane_tool_calls_total',
      'toolplane_tool_call_duration_seconds_bucket',
      'toolplane_tool_call_queue_seconds_bucket',
      'toolplane_queue_jobs',
      'toolplane_queue_runnable',
      'toolplane_circuit_state',
      'toolplane_rate_limited_total',
      'up{service="worker"}',
      'process_resident_memory_bytes',
      'toolplane_agent_runs_total',
      'toolplane_llm_tokens_total',
    ]) {
      expect(exprs).toContain(metric);
    }
  });
});

type ComposeService = {
  secrets?: Array<string | { source: string; target?: string }>;
  image?: string;
  build?: { context: string; dockerfile?: string };
  command?: string[];
  networks?: string[];
  read_only?: boolean;
  tmpfs?: string[];
  cap_drop?: string[];
  security_opt?: string[];
  profiles?: string[];
  environment?: Record<string, string>;
  env_file?: string[];
  ports?: string[];
  volumes?: string[];
  healthcheck?: { test: string[] };
};

/** `KEY=value` lines of an env file; comments and blank lines skipped. */
function parseEnvFile(text: string): Record<string, string> {
  const pairs = text.split('\n').filter((l) => /^[A-Z_][A-Z0-9_]*=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]);
  return Object.fromEntries(pairs);
}

describe('docker-compose.yml', () => {
  const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
    services: Record<string, ComposeService>;
    networks: Record<string, { internal?: boolean }>;
    volumes: Record<string, unknown>;
    secrets: Record<string, { environment?: string; file?: string }>;
  };
  const services = compose.services;

  test('runs redis with AOF, planner, a scalable worker, prometheus and grafana', () => {
    expect(Object.keys(services).sort()).toEqual(['grafana', 'planner', 'postgres', 'prometheus', 'redis', 'worker']);
    // Postgres (a history store) only on request: `docker compose --profile postgres up`.
    expect(services.postgres!.profiles).toEqual(['postgres']);
    expect(services.redis!.command).toEqual(expect.arrayContaining(['--appendonly', 'yes']));
    // A fixed host port would make `--scale worker=2` fail on the second replica.
    expect(services.worker!.ports ?? []).toEqual([]);
  });

  test('every bind-mounted file or directory exists and every named volume is declared', () => {
    for (const [name, svc] of Object.entries(services)) {
      for (const volume of svc.volumes ?? []) {
        const [source] = volume.split(':');
        if (source!.startsWith('.')) expect(existsSync(join(ROOT, source!)), `${name}: ${volume}`).toBe(true);
        else expect(compose.volumes, `${name}: ${volume}`).toHaveProperty(source!);
      }
    }
  });

  test('prometheus loads the mounted config, and its compose targets are the services on their ports', () => {
    const prom = services.prometheus!;
    const mount = mountOf(prom, '/etc/prometheus');
    const configFlag = prom.command!.find((c) => c.startsWith('--config.file='))!;
    const configPath = join(ROOT, mount, configFlag.split('=')[1]!.slice('/etc/prometheus/'.length));
    const config = parse(readFileSync(configPath, 'utf8'));
    for (const rules of config.rule_files as string[]) expect(existsSync(join(ROOT, mount, rules)), rules).toBe(true);
    const job = (config.scrape_configs as Array<{ job_name: string; dns_sd_configs?: Array<{ names: string[]; port: number }> }>).find(
      (j) => j.dns_sd_configs,
    )!;
    const byName = Object.fromEntries(job.dns_sd_configs!.flatMap((d) => d.names.map((n) => [n, d.port])));
    expect(byName).toEqual({
      planner: Number(services.planner!.environment!.PORT),
      worker: Number(services.worker!.environment!.WORKER_METRICS_PORT),
    });
    expect(services.planner!.ports).toContain(`127.0.0.1:${services.planner!.environment!.PORT}:${services.planner!.environment!.PORT}`);
  });

  test('planner and worker run the image built from ./Dockerfile: no host checkout, no host node_modules', () => {
    const [planner, worker] = [services.planner!, services.worker!];
    expect(planner.image).toBe(worker.image);
    for (const [name, svc] of [['planner', planner], ['worker', worker]] as const) {
      expect(svc.build?.context, name).toBe('.');
      expect(existsSync(join(ROOT, svc.build!.dockerfile ?? 'Dockerfile')), name).toBe(true);
      // Named volumes only (the planner's history directory); nothing of the host's is mounted.
      for (const volume of svc.volumes ?? []) expect(volume, name).toMatch(/^[a-z][a-z0-9-]*:\/app\/\.data$/);
      expect(svc.command!.slice(0, 2), name).toEqual(['node', '--no-node-snapshot']);
      expect(svc.command![2], name).toBe(`services/${name}/dist/main.js`);
      // The hardening Kubernetes applies, too.
      expect(svc.read_only, name).toBe(true);
      expect(svc.cap_drop, name).toEqual(['ALL']);
      expect(svc.security_opt, name).toContain('no-new-privileges:true');
    }
    expect(planner.volumes).toEqual(['planner-data:/app/.data']);
  });

  test('fails closed: Redis and Postgres sit on an internal network only; workers also reach the internet', () => {
    expect(compose.networks.internal?.internal).toBe(true);
    for (const name of ['redis', 'postgres']) expect(services[name]!.networks, name).toEqual(['internal']);
    for (const name of ['planner', 'worker']) {
      expect(services[name]!.networks, name).toContain('internal');
      expect(services[name]!.networks!.filter((n) => !compose.networks[n]?.internal), name).not.toEqual([]);
    }
    // Everything published must be on a network with a gateway, or the port answers nothing.
    for (const [name, svc] of Object.entries(services)) {
      if (svc.ports?.length) expect(svc.networks!.some((n) => !compose.networks[n]?.internal), name).toBe(true);
    }
  });

  test('fails closed: Redis is not published, everything published is on 127.0.0.1 only', () => {
    expect(services.redis!.ports).toBeUndefined();
    for (const [name, svc] of Object.entries(services)) {
      for (const port of svc.ports ?? []) expect(port, name).toMatch(/^127\.0\.0\.1:\d+:\d+$/);
    }
    expect(services.planner!.ports).toHaveLength(1);
  });

  test('fails closed: the planner takes its admin key from a git-ignored env file; the example holds no key', () => {
    expect(services.planner!.env_file).toEqual(['.env']);
    expect(services.planner!.environment).not.toHaveProperty('TOOLPLANE_ADMIN_KEY');
    expect(services.worker!.env_file ?? []).toEqual([]);
    expect(readFileSync(join(ROOT, '.gitignore'), 'utf8').split('\n')).toContain('.env');
    const example = parseEnvFile(readFileSync(join(ROOT, '.env.example'), 'utf8'));
    expect(example).toEqual({ TOOLPLANE_ADMIN_KEY: '', TOOLPLANE_METRICS_TOKEN: '' });
    // Copied as it is, the example stops the planner at start, naming the variable.
    expect(() => loadConfig({ ...services.planner!.environment, ...example })).toThrow(/TOOLPLANE_ADMIN_KEY: is required/);
  });

  test('prometheus scrapes the compose services with the metrics token they require, all from one variable of .env', () => {
    const variable = 'TOOLPLANE_METRICS_TOKEN';
    // Planner and workers require it (compose stops with a message when .env lacks it)…
    for (const name of ['planner', 'worker']) {
      expect(services[name]!.environment![variable], name).toMatch(new RegExp(`^\\$\\{${variable}:\\?.+\\}$`));
    }
    // …and Prometheus, alone, gets the same value as a secret file…
    const grants = Object.entries(services).filter(([, svc]) => (svc.secrets ?? []).length > 0);
    expect(grants.map(([name]) => name)).toEqual(['prometheus']);
    const [grant] = services.prometheus!.secrets!;
    const secret = typeof grant === 'string' ? grant : grant!.source;
    expect(compose.secrets[secret]).toEqual({ environment: variable });
    const target = typeof grant === 'string' || grant!.target === undefined ? `/run/secrets/${secret}` : grant!.target;
    // …which the compose scrape job sends as its bearer token.
    const config = parse(readFileSync(join(ROOT, mountOf(services.prometheus!, '/etc/prometheus'), 'prometheus.yml'), 'utf8')) as { scrape_configs: ScrapeJob[] };
    const job = config.scrape_configs.find((j) => j.job_name === 'toolplane-compose')!;
    expect(job.authorization).toEqual({ type: 'Bearer', credentials_file: target });
  });

  test('planner and worker have healthchecks on /healthz of their own port', () => {
    for (const [name, port] of [['planner', services.planner!.environment!.PORT], ['worker', services.worker!.environment!.WORKER_METRICS_PORT]] as const) {
      const check = services[name]!.healthcheck?.test.join(' ') ?? '';
      expect(check, name).toContain(`http://127.0.0.1:${port}/healthz`);
    }
  });

  test('grafana gets the provisioning and the dashboards at the paths the provisioning names', () => {
    const grafana = services.grafana!;
    const provisioning = mountOf(grafana, '/etc/grafana/provisioning');
    expect(statSync(join(ROOT, provisioning, 'datasources')).isDirectory()).toBe(true);
    const providers = parse(readFileSync(join(ROOT, provisioning, 'dashboards', 'toolplane.yml'), 'utf8'));
    const dashboardsIn = providers.providers[0].options.path as string;
    const dashboards = mountOf(grafana, dashboardsIn);
    expect(existsSync(join(ROOT, dashboards, 'toolplane-overview.json'))).toBe(true);
    const home = grafana.environment!.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH!;
    expect(existsSync(join(ROOT, dashboards, home.slice(dashboardsIn.length + 1)))).toBe(true);
    const datasource = parse(readFileSync(join(ROOT, provisioning, 'datasources', 'prometheus.yml'), 'utf8')).datasources[0];
    const promPort = services.prometheus!.ports![0]!.split(':').at(-1);
    expect(datasource.url).toBe(`http://prometheus:${promPort}`);
  });

  test('planner and worker get only variables their config knows, with values it accepts', () => {
    const known = { planner: PlannerConfig, worker: WorkerConfig };
    for (const [name, schema] of Object.entries(known)) {
      const env = services[name]!.environment!;
      const unknown = Object.keys(env).filter((k) => !(k in schema.shape));
      expect(unknown, `${name} environment`).toEqual([]);
      // `${VAR:-}` is filled in by compose from the shell; empty means unset. The env file (.env,
      // from .env.example) gives the planner its admin key.
      const values = Object.fromEntries(Object.entries(env).filter(([, v]) => !String(v).startsWith('${')));
      const fromEnvFile = services[name]!.env_file ? { TOOLPLANE_ADMIN_KEY: 'a'.repeat(32) } : {};
      const parsed = schema.safeParse({ ...values, ...fromEnvFile });
      expect(parsed.success, `${name}: ${JSON.stringify(parsed.error?.issues)}`).toBe(true);
    }
  });
});

/** The host path (relative to the repo) mounted at `target` in a compose service. */
function mountOf(svc: ComposeService, target: string): string {
  const volume = (svc.volumes ?? []).find((v) => v.split(':')[1] === target);
  if (!volume) throw new Error(`nothing is mounted at ${target}`);
  return volume.split(':')[0]!;
}
