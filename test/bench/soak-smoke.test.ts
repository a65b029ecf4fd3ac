import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from 'vitest';
import { ROOT } from '../support/services.js';

// `make soak` in its short mode (25 s, a worker killed every 8 s): the soak runs end to end on real
// processes, every call it sent ended as its tool says, and its result file has the documented shape.
test('make soak runs in smoke mode: every call ends right through worker kills', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'toolplane-soak-'));
  const out = join(dir, 'soak.json');
  try {
    let output = '';
    const code = await new Promise<number | null>((resolve) => {
      const proc = spawn(process.execPath, ['--no-node-snapshot', join(ROOT, 'bench', 'soak.mjs')], {
        env: { PATH: process.env.PATH ?? '', SOAK_SMOKE: '1', SOAK_OUT: out },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      proc.stdout.on('data', (d: Buffer) => (output += d.toString()));
      proc.stderr.on('data', (d: Buffer) => (output += d.toString()));
      proc.on('exit', resolve);
    });
    expect(code, output).toBe(0);
    const result = JSON.parse(readFileSync(out, 'utf8'));
    expect(result.ok, output).toBe(true);
    expect(result.problems).toEqual([]);
    expect(result.calls.kills).toBeGreaterThanOrEqual(2);
    expect(result.calls.accepted).toBeGreaterThan(500);
    expect(result.outcome).toMatchObject({ wrong: 0, unfinished: 0 });
    expect(result.outcome.succeeded).toBeGreaterThan(result.calls.accepted * 0.7);
    expect(result.orphan_hosts).toBe(0);
    expect(output).toContain('soak: OK');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 180_000);
