import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { ServiceEnv, parseConfig } from '@toolplane/core';
import { PlannerConfig } from '@toolplane/planner/config';
import { WorkerConfig } from '@toolplane/worker/config';
import { ROOT } from '../support/services.js';

const SHARED = Object.keys(ServiceEnv.shape);
/** Read by both with a meaning of each's own: the planner drains requests, the worker running calls. */
const EACH_OWN = ['SHUTDOWN_TIMEOUT_MS'];

test('planner and worker read the shared settings from one definition, with the same defaults', () => {
  const planner = parseConfig(PlannerConfig, { TOOLPLANE_AUTH: 'off' });
  const worker = parseConfig(WorkerConfig, {});
  for (const key of SHARED) {
    expect(PlannerConfig.shape[key as keyof typeof PlannerConfig.shape], key).toBe(ServiceEnv.shape[key as keyof typeof ServiceEnv.shape]);
    expect(WorkerConfig.shape[key as keyof typeof WorkerConfig.shape], key).toBe(ServiceEnv.shape[key as keyof typeof ServiceEnv.shape]);
    expect(planner[key as keyof typeof planner], key).toEqual(worker[key as keyof typeof worker]);
  }
  // Who enqueues and who runs hold the same locks: 10 s, checked every 3 s.
  expect([planner.WORKER_LOCK_DURATION_MS, planner.WORKER_STALLED_INTERVAL_MS]).toEqual([10_000, 3_000]);
  // Any other variable both read is one definition too (the webhook settings), or one each on purpose.
  const both = Object.keys(PlannerConfig.shape).filter((k) => k in WorkerConfig.shape && !SHARED.includes(k) && !EACH_OWN.includes(k));
  for (const key of both) {
    expect(PlannerConfig.shape[key as keyof typeof PlannerConfig.shape], key).toBe(WorkerConfig.shape[key as keyof typeof WorkerConfig.shape]);
  }
  expect(both.sort()).toEqual(['WEBHOOK_BACKOFF_MS', 'WEBHOOK_MAX_ATTEMPTS']);
});

/** Starts a service's built main with `env` only; resolves with its exit code and stderr. */
function start(service: 'planner' | 'worker', env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--no-node-snapshot', join(ROOT, 'services', service, 'dist', 'main.js')], {
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.on('error', reject);
    proc.on('exit', (code) => resolve({ code, stderr }));
  });
}

test('a bad variable stops either service the same way, before it connects: exit 2 and the variable named', async () => {
  // Port 1: nothing listens there, so a service that got past its config would not exit 2 this way.
  const env = { REDIS_URL: 'redis://127.0.0.1:1', TOOLPLANE_AUTH: 'off', WORKER_LOCK_DURATION_MS: 'soon', TOOLPLANE_PREFIX: 'a b' };
  const [planner, worker] = await Promise.all([start('planner', env), start('worker', env)]);
  for (const [name, run] of [['planner', planner], ['worker', worker]] as const) {
    expect(run.code, name).toBe(2);
    expect(run.stderr, name).toMatch(new RegExp(`^toolplane ${name}: invalid configuration:\\n`));
    expect(run.stderr, name).toMatch(/\n {2}TOOLPLANE_PREFIX: must be 1 to 32 letters, digits, _ or -\n/);
    expect(run.stderr, name).toMatch(/\n {2}WORKER_LOCK_DURATION_MS: /);
  }
  // The same lines after the service's name.
  expect(planner.stderr.replace('planner', 'worker')).toBe(worker.stderr);
});
