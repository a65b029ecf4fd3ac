import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, test } from 'vitest';
import { createLagMonitor } from './liveness.js';

describe('createLagMonitor', () => {
  test('one lag above the limit makes the process unhealthy for the window, then healthy again', () => {
    let clock = 0;
    const m = createLagMonitor({ maxLagMs: 1_000, windowMs: 2_000, intervalMs: 100, now: () => clock });
    try {
      for (let i = 0; i < 10; i++) (clock += 100), m.tick();
      expect(m.check()).toEqual({ healthy: true, lagMs: 0 });
      // A lag of exactly the limit is still fine.
      clock += 1_100;
      m.tick();
      expect(m.check().healthy).toBe(true);
      clock += 1_600; // 1.5 s late
      m.tick();
      expect(m.check()).toEqual({ healthy: false, lagMs: 1_500 });
      // The loop runs freely again, but the lag stays on record for the window.
      for (let i = 0; i < 19; i++) (clock += 100), m.tick();
      expect(m.check()).toEqual({ healthy: false, lagMs: 1_500 });
      for (let i = 0; i < 2; i++) (clock += 100), m.tick();
      expect(m.check()).toEqual({ healthy: true, lagMs: 0 });
    } finally {
      m.stop();
    }
  });

  test('an overdue timer counts before it fires: a probe answered right after a block is unhealthy', () => {
    let clock = 0;
    const m = createLagMonitor({ maxLagMs: 1_000, windowMs: 2_000, intervalMs: 100, now: () => clock });
    try {
      clock += 100;
      m.tick();
      clock += 1_050;
      expect(m.check()).toEqual({ healthy: true, lagMs: 950 });
      clock += 100;
      expect(m.check()).toEqual({ healthy: false, lagMs: 1_050 });
    } finally {
      m.stop();
    }
  });

  test('really blocking the event loop is seen, with the real clock and timer', async () => {
    const m = createLagMonitor({ maxLagMs: 200, windowMs: 500, intervalMs: 20 });
    try {
      await sleep(100);
      expect(m.check().healthy).toBe(true);
      const until = performance.now() + 400;
      while (performance.now() < until) {
        // blocked
      }
      expect(m.check().healthy).toBe(false);
      await sleep(50);
      expect(m.check()).toMatchObject({ healthy: false, lagMs: expect.any(Number) });
      expect(m.check().lagMs).toBeGreaterThanOrEqual(300);
      await sleep(700);
      expect(m.check().healthy).toBe(true);
    } finally {
      m.stop();
    }
  });
});
