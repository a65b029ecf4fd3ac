import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { parse } from 'yaml';
import { PROMETHEUS_DIR } from '../support/dashboards.js';
import { eventually, startPrometheus, type PrometheusServer } from '../support/prometheus.js';
import { startPlanner, startWorker, uniquePrefix, type ServiceProcess } from '../support/services.js';

const ADMIN_KEY = 'a'.repeat(32);
const METRICS_TOKEN = 'm'.repeat(32);

type ScrapeJob = { job_name: string; authorization?: { credentials_file: string }; [key: string]: unknown };

/**
 * docker compose's Prometheus as shipped, on real processes that require the metrics token (auth on,
 * as in compose): the `toolplane-compose` job of infra/prometheus/prometheus.yml with Docker's DNS
 * discovery swapped for this test's ports and its token file (compose mounts the secret at
 * /run/secrets/…) beside the config. Beside it, the same job without its `authorization`, which
 * must be refused: the token is what gets the scrapes in.
 */
describe("docker compose's Prometheus scrapes services that require the metrics token", () => {
  let planner: ServiceProcess;
  let worker: ServiceProcess;
  let prometheus: PrometheusServer | undefined;
  const env = { REDIS_URL: inject('redisUrl'), TOOLPLANE_PREFIX: uniquePrefix(), TOOLPLANE_METRICS_TOKEN: METRICS_TOKEN };

  beforeAll(async () => {
    [planner, worker] = await Promise.all([startPlanner({ ...env, TOOLPLANE_ADMIN_KEY: ADMIN_KEY }), startWorker(env)]);
    const config = parse(readFileSync(join(PROMETHEUS_DIR, 'prometheus.yml'), 'utf8')) as { global: Record<string, string>; scrape_configs: ScrapeJob[] };
    const shipped = config.scrape_configs.find((j) => j.job_name === 'toolplane-compose');
    if (!shipped?.authorization) throw new Error('prometheus.yml: the toolplane-compose job sends no token');
    const { dns_sd_configs: _dns, relabel_configs: _relabel, ...job } = shipped;
    const targets = [
      { targets: [`127.0.0.1:${planner.port}`], labels: { service: 'planner' } },
      { targets: [`127.0.0.1:${worker.port}`], labels: { service: 'worker' } },
    ];
    const withToken = { ...job, static_configs: targets, authorization: { ...shipped.authorization, credentials_file: 'toolplane-metrics-token' } };
    const { authorization: _auth, ...withoutToken } = { ...withToken, job_name: 'no-token' };
    prometheus = await startPrometheus(
      { global: { ...config.global, scrape_interval: '1s', scrape_timeout: '1s' }, scrape_configs: [withToken, withoutToken] },
      { 'toolplane-metrics-token': METRICS_TOKEN },
    );
  });
  afterAll(async () => {
    await Promise.all([planner?.kill(), worker?.kill(), prometheus?.stop()]);
  });

  test('the shipped job is let in on the planner and the worker; without the token both refuse', async () => {
    const up = async () => Object.fromEntries((await prometheus!.query('up')).map((s) => [`${s.metric.job}/${s.metric.service}`, s.value[1]]));
    await eventually('a scrape of every target', async () => Object.keys(await up()).length === 4, 20_000);
    await eventually('the token job up on both', async () => {
      const u = await up();
      return u['toolplane-compose/planner'] === '1' && u['toolplane-compose/worker'] === '1';
    }, 20_000);
    expect(await up()).toEqual({ 'toolplane-compose/planner': '1', 'toolplane-compose/worker': '1', 'no-token/planner': '0', 'no-token/worker': '0' });
    // The metrics themselves came in, from both services (a worker with no call yet has only
    // process figures and label-less series).
    const memory = await prometheus!.query('process_resident_memory_bytes{job="toolplane-compose"}');
    expect(memory.map((s) => s.metric.service).sort()).toEqual(['planner', 'worker']);
  });
});
