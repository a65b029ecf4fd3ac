import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { isToolExecError } from '@toolplane/core';
import { SandboxFleet, type ToolSource } from '../index.js';

/**
 * The fleet against real host processes: tool code that blocks or bloats its host ends with a code,
 * the host is replaced, other calls go on, and this process's event loop never waits on any of it.
 */
let n = 0;
const tool = (code: string, limits: Partial<ToolSource> = {}): ToolSource => ({
  key: `f${++n}@1`,
  code,
  timeoutMs: 2_000,
  memoryMb: 32,
  maxResultBytes: 64 * 1024,
  ...limits,
});

async function outcome(p: Promise<{ value: unknown }>): Promise<unknown> {
  try {
    return (await p).value;
  } catch (err: unknown) {
    return isToolExecError(err) ? err.code : err;
  }
}

describe('SandboxFleet', () => {
  let fleet: SandboxFleet;
  const failures: string[] = [];
  const lag = monitorEventLoopDelay({ resolution: 10 });
  const add = tool('export default (a) => a.x + a.y');

  beforeAll(async () => {
    fleet = new SandboxFleet({ hosts: 1, memoryBudgetMb: 128, hostMemoryLimitMb: 400, onHostFailure: (r) => failures.push(r) });
    await fleet.ready();
    lag.enable();
  });
  afterAll(async () => {
    lag.disable();
    await fleet.close();
  });

  test('runs calls in a host process; the code crosses once per host', async () => {
    expect(await fleet.run(add, { x: 1, y: 2 })).toMatchObject({ value: 3 });
    expect(await fleet.run(add, { x: 2, y: 2 })).toMatchObject({ value: 4 });
    expect(await outcome(fleet.run(tool('export default () => { throw new Error("no") }'), {}))).toBe('TOOL_ERROR');
    expect(fleet.stats()).toMatchObject({ shared: 1, spare: 1 });
  });

  test('a tool its host let go is sent again with the call that needs it', async () => {
    // Room for one tool's code at a time: every switch between the two finds the other one gone.
    const small = new SandboxFleet({ hosts: 1, spare: false, hostCodeBytes: 40 });
    try {
      const [a, b] = [tool('export default (x) => x.n + 1'), tool('export default (x) => x.n * 10')];
      const values: unknown[] = [];
      for (const n of [1, 2, 3]) for (const t of [a, b]) values.push((await small.run(t, { n })).value);
      expect(values).toEqual([2, 10, 3, 20, 4, 30]);
    } finally {
      await small.close();
    }
  });

  /** Name, code, the codes that are right, and whether the host must be replaced (else the isolate's own limits end it). */
  const BLOCKERS: Array<[string, string, unknown[], boolean]> = [
    // Started from a module factory, the call's first spin is inside the synchronous attempt, whose
    // own limit may end it before the watchdog has to: either is contained.
    ['microtask recursion with spins', 'export default () => { function bad() { Promise.resolve().then(function () { bad(); for (;;); }); } bad(); for (;;); }', ['TIMEOUT'], false],
    // V8 may end this one itself (heap limit) before the watchdog has to: either is contained.
    ['one huge native allocation', 'export default () => { void new Array(2 ** 27).fill(0); return 1 }', ['OUT_OF_MEMORY', 'TIMEOUT'], false],
    ['a getter on a rejected value', 'export default () => { Promise.reject({ get message() { for (;;) {} } }); return 1 }', ['TIMEOUT', 1], true],
    ['a thenable that spins', 'export default () => ({ then() { for (;;) {} } })', ['TIMEOUT'], false],
  ];
  for (const [name, code, codes, replaced] of BLOCKERS) {
    test(`${name}: ends with a code, the host is replaced, the next call succeeds`, async () => {
      const before = failures.length;
      lag.reset();
      const started = performance.now();
      const [bad, good] = await Promise.all([
        outcome(fleet.run(tool(code, { timeoutMs: 1_000 }), {})),
        outcome(fleet.run(add, { x: 1, y: 1 })),
      ]);
      expect(codes).toContain(bad);
      expect(good).toBe(2);
      expect(performance.now() - started).toBeLessThan(6_000);
      expect(await outcome(fleet.run(add, { x: 5, y: 5 }))).toBe(10);
      // This process never waited on the tool.
      expect(lag.max / 1e6).toBeLessThan(500);
      if (replaced) expect(failures.length).toBeGreaterThan(before);
    });
  }

  test('a call that crashes two hosts ends POISONED; the calls beside it succeed', async () => {
    // A stall with several calls in flight leaves the culprit unknown: each runs again alone.
    const spin = tool('export default () => { function bad() { Promise.resolve().then(function () { bad(); for (;;); }); } bad(); for (;;); }', { timeoutMs: 20_000 });
    const results = await Promise.all([
      outcome(fleet.run(spin, {})),
      ...[1, 2, 3].map((x) => outcome(fleet.run(add, { x, y: 0 }))),
    ]);
    expect(results.slice(1)).toEqual([1, 2, 3]);
    // Its microtask recursion allocates too: on a loaded machine the isolate's heap limit may end it first.
    expect(['TIMEOUT', 'POISONED', 'OUT_OF_MEMORY']).toContain(results[0]);
  });

  test('registration checks run in a host, bounded', async () => {
    expect(await fleet.check('export default () => 1')).toEqual({ ok: true });
    const started = performance.now();
    const hung = await fleet.check('function bad() { Promise.resolve().then(function () { bad(); for (;;); }); } bad(); for (;;); export default () => 1');
    // Bounded by its own CPU time (wall time would refuse valid code on a busy machine).
    expect(hung).toEqual({ ok: false, message: expect.stringMatching(/more than 200 ms of CPU time/) });
    expect(performance.now() - started).toBeLessThan(2_500);
    expect(await fleet.check('export default () => 2')).toEqual({ ok: true });
  });

  test('registration checks: every way top-level code can spin ends on its CPU bound, and the checking process stays responsive', async () => {
    const spinning = [
      'const p = new Proxy({}, { get() { for (;;); } }); const v = p.x; export default () => v',
      'const o = { get x() { for (;;); } }; const v = o.x; export default () => v',
      'await { then() { for (;;); } }; export default () => 1',
      'Promise.resolve().then(() => { for (;;); }); export default () => 1',
      'queueMicrotask(() => { for (;;); }); export default () => 1',
      'export default () => 1; (async () => { await null; for (;;); })()',
      'const spin = () => Promise.resolve().then(spin); spin(); export default () => 1',
      // Native work: a regular expression backtracking for ever.
      'const v = /(a+)+$/.test("a".repeat(40) + "b"); export default () => v',
    ];
    let maxLagMs = 0;
    let last = performance.now();
    const lag = setInterval(() => {
      const now = performance.now();
      maxLagMs = Math.max(maxLagMs, now - last - 10);
      last = now;
    }, 10);
    try {
      for (const code of spinning) {
        const started = performance.now();
        // A promise chain piles its promises up too: the check's 16 MB heap limit may end it first.
        const bound = code.includes('const spin') ? /more than 200 ms of CPU time|memory limit/ : /more than 200 ms of CPU time/;
        expect(await fleet.check(code), code).toEqual({ ok: false, message: expect.stringMatching(bound) });
        expect(performance.now() - started, code).toBeLessThan(2_500);
      }
    } finally {
      clearInterval(lag);
    }
    expect(maxLagMs).toBeLessThan(1_000);
  });

  test('a burst of registration checks of valid code all pass: each gets its host and its time bound to itself', async () => {
    // Each evaluates 5 M additions at its top level: fine alone, but forty sharing one host's
    // CPU (and each other's time bound) failed as "blocked its checker" before checks took turns.
    const busy = (i: number) => `let x = ${i}; for (let k = 0; k < 5e6; k++) x += k; export default () => x;`;
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => fleet.check(busy(i))));
    expect(results.filter((r) => !r.ok)).toEqual([]);
  });

  test('cancel ends a running call at once', async () => {
    const abort = new AbortController();
    const p = outcome(fleet.run(tool('export default () => new Promise(() => {})', { timeoutMs: 10_000 }), {}, { signal: abort.signal }));
    setTimeout(() => abort.abort(), 50);
    expect(await p).toBe('CANCELLED');
  });
});
