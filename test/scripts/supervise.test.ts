import { spawn } from 'node:child_process';
import { describe, expect, test } from 'vitest';
import { freePort } from '@toolplane/queue/testing';
import { SUPERVISE_DEFAULTS, Supervisor, decide, respawnDelayMs } from '../../scripts/supervise.mjs';
import { eventually } from '../support/services.js';

describe('make up supervision: the decision', () => {
  const base = { startedAt: 0, crashes: 0 };

  test('a new process gets its startup grace; a healthy one is killed after 5 s without an answer', () => {
    expect(decide({ ...base, now: 29_000 })).toBe('wait');
    expect(decide({ ...base, now: 30_001 })).toBe('kill');
    expect(decide({ ...base, now: 40_000, lastHealthyAt: 35_000 })).toBe('wait');
    expect(decide({ ...base, now: 40_001, lastHealthyAt: 35_000 })).toBe('kill');
    expect(SUPERVISE_DEFAULTS).toMatchObject({ probeEveryMs: 1_000, unresponsiveMs: 5_000 });
  });

  test('a killed process is not killed twice; an exited one is respawned, with backoff while it never gets healthy', () => {
    expect(decide({ ...base, now: 50_000, lastHealthyAt: 10_000, killedAt: 49_000 })).toBe('wait');
    expect(decide({ ...base, now: 50_000, killedAt: 49_000, exitedAt: 50_000, crashes: 1 })).toBe('respawn');
    expect(decide({ ...base, now: 50_500, exitedAt: 50_000, crashes: 2 })).toBe('wait');
    expect(decide({ ...base, now: 51_000, exitedAt: 50_000, crashes: 2 })).toBe('respawn');
    expect([1, 2, 3, 4, 5, 10].map((n) => respawnDelayMs(n))).toEqual([0, 1_000, 2_000, 4_000, 8_000, 30_000]);
  });
});

/** A stand-in worker: answers /healthz, then (by MODE) blocks its event loop for good or exits. */
const FAKE_WORKER = `
  require('node:http').createServer((q, r) => r.end('{"status":"ok"}')).listen(Number(process.env.PORT), '127.0.0.1');
  if (process.env.MODE === 'block') setTimeout(() => { for (;;); }, 300);
  if (process.env.MODE === 'exit') setTimeout(() => process.exit(3), 300);
`;

describe('make up supervision: real processes', () => {
  for (const mode of ['block', 'exit'] as const) {
    test(`a worker that ${mode === 'block' ? 'blocks its event loop is SIGKILLed and' : 'exits'} is replaced`, async () => {
      const port = await freePort();
      const lines: string[] = [];
      let spawned = 0;
      const sup = new Supervisor({
        name: 'worker-1',
        healthUrl: `http://127.0.0.1:${port}/healthz`,
        log: (m) => lines.push(m),
        // Only the first process misbehaves.
        spawn: () => spawn(process.execPath, ['-e', FAKE_WORKER], { env: { PORT: String(port), MODE: spawned++ === 0 ? mode : 'ok' }, stdio: 'ignore' }),
        probeEveryMs: 100,
        probeTimeoutMs: 200,
        unresponsiveMs: 1_000,
        startupGraceMs: 5_000,
      }).start();
      const first = sup.child;
      try {
        await eventually(async () => (lines.some((l) => l.includes('restarted')) ? true : undefined), 15_000, 50);
        if (mode === 'block') {
          expect(first.signalCode).toBe('SIGKILL');
          expect(lines[0]).toMatch(/^worker-1 \(pid \d+\) has not answered \/healthz for 1\.\d s: SIGKILL$/);
        } else {
          expect(first.exitCode).toBe(3);
        }
        expect(lines.some((l) => /exited \((3|SIGKILL)\): starting a new one$/.test(l))).toBe(true);
        expect(sup.child.pid).not.toBe(first.pid);
        await eventually(async () => ((await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.ok ? true : undefined), 5_000, 50);
      } finally {
        sup.stop();
        for (const c of [first, sup.child]) c.kill('SIGKILL');
      }
      expect(spawned).toBe(2);
    });
  }
});
