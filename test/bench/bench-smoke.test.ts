import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { ROOT } from '../support/services.js';

// `make bench` in its tiny mode (200 calls, one repeat): every phase runs end to end on real
// processes and the result file has the documented shape. The figures themselves are not checked.
test('make bench runs in smoke mode and writes its result file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'toolplane-bench-'));
  const out = join(dir, 'latest.json');
  try {
    let output = '';
    const code = await new Promise<number | null>((resolve) => {
      const proc = spawn(process.execPath, ['--no-node-snapshot', join(ROOT, 'bench', 'run.mjs')], {
        env: { PATH: process.env.PATH ?? '', BENCH_SMOKE: '1', BENCH_OUT: out },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      proc.stdout.on('data', (d: Buffer) => (output += d.toString()));
      proc.stderr.on('data', (d: Buffer) => (output += d.toString()));
      proc.on('exit', resolve);
    });
    expect(code, output).toBe(0);
    const result = JSON.parse(readFileSync(out, 'utf8'));
    expect(result.machine).toMatchObject({ cores: expect.any(Number), node: process.version });
    for (const v of [
      result.throughput.toolplane_calls_per_s,
      result.throughput.bullmq_jobs_per_s,
      result.throughput.ratio,
      result.latency_ms.toolplane_http.p99,
      result.latency_ms.bullmq.p50,
      result.sandbox.warm_call_us,
      result.sandbox.cold_start_ms,
      result.redis_ops_per_s,
      result.scaling.single_redis['2'],
      result.history.redis_bytes_per_hot_call,
      result.history.archiver_records_per_s,
      result.console.pages.tools.first_contentful_paint_ms,
      result.sync_http_64.toolplane_calls_per_s,
      result.sync_http_64.hand_built_calls_per_s,
    ]) {
      expect(v).toBeGreaterThan(0);
    }
    expect(output).toContain('ratio Toolplane / BullMQ');
    // Every goal of issue 14 is printed with its figure and whether it is met.
    expect(Object.keys(result.goals)).toEqual(['throughput_ratio', 'worker_cpu_us_per_call', 'redis_commands_per_call', 'http_wait_p99_ms', 'sync_http_64_ratio']);
    expect(output).toMatch(/Goals of issue 14:\n(\s+(MET|MISSED) .*\n){5}/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);
