import { afterAll, describe, expect, test } from 'vitest';
import { Sandbox, SandboxFleet, type ProgressReport, type ToolSource } from './index.js';

/**
 * `ctx.progress` in real isolates, in this process and through a sandbox host process: reports
 * arrive in order with the log lines written between them, and hostile use (tight loops, objects
 * with getters, Proxies, thenables, huge strings, NaN) is refused or bounded inside the isolate.
 */
const tool = (key: string, code: string, timeoutMs = 5_000): ToolSource => ({ key, code, timeoutMs, memoryMb: 32, maxResultBytes: 1 << 20 });

const sandbox = new Sandbox();
const fleet = new SandboxFleet({ hosts: 1 });
afterAll(async () => {
  await sandbox.close();
  await fleet.close();
});

const STEPS = `export default async (a, ctx) => {
  for (let i = 1; i <= 4; i++) {
    ctx.log('step', i);
    ctx.progress(i / 4, 'step ' + i);
    await new Promise((r) => setTimeout(r, 120));
  }
  return 'done';
}`;

describe.each([
  ['in process', () => sandbox],
  ['through a host process', () => fleet],
])('ctx.progress %s', (_name, runner) => {
  test('reports arrive in order, each with the log lines written before it', async () => {
    const reports: ProgressReport[] = [];
    const { value, logs } = await runner().run(tool('steps@1', STEPS), {}, { onProgress: (r) => reports.push(r) });
    expect(value).toBe('done');
    expect(reports.map((r) => [r.fraction, r.message])).toEqual([[0.25, 'step 1'], [0.5, 'step 2'], [0.75, 'step 3'], [1, 'step 4']]);
    expect(reports.map((r) => r.logs)).toEqual([['step 1'], ['step 2'], ['step 3'], ['step 4']]);
    // The outcome still has every line.
    expect(logs).toEqual(['step 1', 'step 2', 'step 3', 'step 4']);
  });

  test('a tight loop crosses to the host at most 10 times a second, latest report last', async () => {
    const reports: ProgressReport[] = [];
    const code = `export default async (a, ctx) => {
      const end = Date.now() + 350;
      let n = 0;
      while (Date.now() < end) { ctx.progress((n % 1000) / 1000, 'n' + n); n++; if (n % 5000 === 0) await null }
      ctx.progress(1, 'last');
      await new Promise((r) => setTimeout(r, 150));
      return n;
    }`;
    const { value } = await runner().run(tool('loop@1', code), {}, { onProgress: (r) => reports.push(r) });
    expect(value).toBeGreaterThan(10_000);
    // 500 ms of calls: at most 6 crossings (one at once, then one per 100 ms), the last one the latest.
    expect(reports.length).toBeGreaterThanOrEqual(2);
    expect(reports.length).toBeLessThanOrEqual(6);
    expect(reports.at(-1)).toMatchObject({ fraction: 1, message: 'last' });
  });

  test('bad fractions and non-string messages throw a TypeError in the tool; no report leaves', async () => {
    const reports: ProgressReport[] = [];
    const code = `export default (a, ctx) => {
      let getterRan = false;
      const bad = [
        [NaN, 'x'], [-0.1, 'x'], [1.5, 'x'], [Infinity, 'x'], ['0.5', 'x'], [{ valueOf() { getterRan = true; return 0.5 } }, 'x'],
        [0.5, { get toString() { getterRan = true; return () => 'x' } }],
        [0.5, new Proxy({}, { get() { getterRan = true; return () => 'x' } })],
        [0.5, { then(r) { getterRan = true; r('x') } }],
        [0.5, 42],
      ];
      const errors = bad.map(([f, m]) => { try { ctx.progress(f, m); return 'accepted' } catch (e) { return e instanceof TypeError ? e.message : 'other' } });
      return { errors, getterRan };
    }`;
    const { value } = await runner().run(tool('bad@1', code), {}, { onProgress: (r) => reports.push(r) });
    const { errors, getterRan } = value as { errors: string[]; getterRan: boolean };
    expect(errors.slice(0, 6)).toEqual(Array(6).fill('ctx.progress: fraction must be a number from 0 to 1'));
    expect(errors.slice(6)).toEqual(Array(4).fill('ctx.progress: message must be a string'));
    expect(getterRan).toBe(false);
    expect(reports).toEqual([]);
  });

  test('an uncaught bad call fails the call as TOOL_ERROR with the reason', async () => {
    await expect(runner().run(tool('nan@1', 'export default (a, ctx) => ctx.progress(NaN)'), {})).rejects.toMatchObject({
      code: 'TOOL_ERROR',
      message: expect.stringContaining('fraction must be a number from 0 to 1'),
    });
  });

  test('a huge message is cut to 500 characters; secrets are redacted', async () => {
    const reports: ProgressReport[] = [];
    const code = `export default async (a, ctx) => { ctx.progress(0.5, 'k=' + ctx.secrets.KEY + ' ' + 'x'.repeat(10_000_000)); await new Promise((r) => setTimeout(r, 20)); return 1 }`;
    await runner().run(tool('huge@1', code), {}, { secrets: { KEY: 'sk-very-secret' }, onProgress: (r) => reports.push(r) });
    expect(reports).toHaveLength(1);
    expect(reports[0]!.message.length).toBeLessThanOrEqual(501);
    expect(reports[0]!.message.startsWith('k=[REDACTED] xxx')).toBe(true);
    expect(reports[0]!.message.endsWith('…')).toBe(true);
  });

  test('nothing is reported after the call ends, and a leftover report does not reach the next call', async () => {
    const first: ProgressReport[] = [];
    const second: ProgressReport[] = [];
    // Two reports within 100 ms: the second waits for the interval, which the call's end cuts short.
    const code = `export default async (a, ctx) => { ctx.progress(0.1, 'a'); ctx.progress(0.9, 'late'); await new Promise((r) => setTimeout(r, 20)); return a.n }`;
    await runner().run(tool('left@1', code), { n: 1 }, { onProgress: (r) => first.push(r) });
    await runner().run(tool('left@1', code), { n: 2 }, { onProgress: (r) => second.push(r) });
    await new Promise((r) => setTimeout(r, 200));
    expect(first.map((r) => r.message)).toEqual(['a']);
    expect(second.map((r) => r.message)).toEqual(['a']);
  });
});
