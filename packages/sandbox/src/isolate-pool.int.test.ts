import { afterAll, expect, test } from 'vitest';
import { Sandbox, type ToolSource } from './index.js';

/**
 * How many isolates a tool gets: each runs one call at a time, so a call that waits on I/O holds
 * one, but fast calls arriving together take turns on one isolate (each gives it back before the
 * next starts) instead of each starting or taking one of their own.
 */
const sandbox = new Sandbox({ maxIsolatesPerTool: 8 });
afterAll(() => sandbox.close());

const tool = (key: string, code: string): ToolSource => ({ key, code, timeoutMs: 2_000, memoryMb: 32, maxResultBytes: 64 * 1024 });

test('a batch of fast calls arriving together runs on one warm isolate', async () => {
  const fast = tool('fast@1', 'export default async function (args) { return args.a + args.b }');
  await sandbox.run(fast, { a: 0, b: 0 });
  const starts: string[] = [];
  const results = await Promise.all(
    Array.from({ length: 50 }, (_, i) => sandbox.run(fast, { a: 1, b: i }, { onWait: () => starts.push(`wait ${i}`) })),
  );
  expect(results.map((r) => r.value)).toEqual(Array.from({ length: 50 }, (_, i) => 1 + i));
  expect(sandbox.stats()['fast@1']).toBe(1);
  // Taking turns within the turn is not waiting: the host tells its parent nothing about it.
  expect(starts).toEqual([]);
});

test('fast calls arriving together run on one isolate even when the pool has grown', async () => {
  // The instance is reused, so each isolate counts the calls it ran.
  const counting = { ...tool('counting@1', 'let n = 0\nexport default async function (args) { if (args.slow) await new Promise((r) => setTimeout(r, 50)); return ++n }'), isolation: 'isolate' as const };
  const grown = await Promise.all(Array.from({ length: 8 }, () => sandbox.run(counting, { slow: true })));
  expect(grown.map((r) => r.value)).toEqual(Array.from({ length: 8 }, () => 1));
  expect(sandbox.stats()['counting@1']).toBe(8);
  const fast = await Promise.all(Array.from({ length: 50 }, () => sandbox.run(counting, {})));
  // One isolate ran all 50 in turn (its count went from 1 to 51), the other seven none.
  expect(fast.map((r) => r.value)).toEqual(Array.from({ length: 50 }, (_, i) => 2 + i));
});

test('calls that wait on I/O still get an isolate each, up to the limit', async () => {
  const slow = tool('slow@1', 'export default async function () { await new Promise((r) => setTimeout(r, 50)); return 1 }');
  const waited: number[] = [];
  const results = await Promise.all(Array.from({ length: 12 }, (_, i) => sandbox.run(slow, {}, { onWait: () => waited.push(i) })));
  expect(results.every((r) => r.value === 1)).toBe(true);
  expect(sandbox.stats()['slow@1']).toBe(8);
  // The first call started the pool; the others that found no isolate free said they waited.
  expect(waited.length).toBeGreaterThanOrEqual(4);
});

/** ~3 ms of synchronous work: under the sync budget, so each call runs to its end in one go. */
const SPIN_3MS = 'const end = Date.now() + 3; while (Date.now() < end);';

/**
 * The same ~3 ms reached every way a call can keep its isolate busy within its synchronous attempt:
 * each call ends within the turn and hands the isolate to the next, so all of them chain.
 */
const NEAR_BUDGET: Array<[string, string, unknown]> = [
  ['a plain loop', `export default () => { ${SPIN_3MS} return 1 }`, 1],
  ['a microtask chain', 'export default () => { const end = Date.now() + 3; const step = () => (Date.now() < end ? Promise.resolve().then(step) : 1); return step() }', 1],
  ['a thenable', `export default () => ({ then(resolve) { ${SPIN_3MS} resolve(1) } })`, 1],
  ['a getter read when the result is copied out', `export default () => ({ get v() { ${SPIN_3MS} return 1 } })`, { v: 1 }],
  ['toJSON', `export default () => ({ toJSON() { ${SPIN_3MS} return 1 } })`, 1],
  ['a Proxy read when the result is copied out', `export default () => new Proxy({}, { ownKeys() { ${SPIN_3MS} return [] } })`, {}],
  ['the top level, run again per call', `${SPIN_3MS}\nexport default () => 1`, 1],
  ['native operations in a loop', `const big = Array.from({ length: 200 }, (_, i) => ({ i, s: 'x'.repeat(20) }));\nexport default () => { const end = Date.now() + 3; while (Date.now() < end) JSON.parse(JSON.stringify(big)); return 1 }`, 1],
];

test.each(NEAR_BUDGET)('calls queued for one isolate take turns with the event loop instead of holding it: %s', async (name, code, expected) => {
  const one = new Sandbox({ maxIsolatesPerTool: 1 });
  try {
    const busy = tool(`busy-${name.replaceAll(' ', '-')}@1`, code);
    await one.run(busy, {});
    let longest = 0;
    let last = performance.now();
    const probe = setInterval(() => {
      const now = performance.now();
      longest = Math.max(longest, now - last);
      last = now;
    }, 1);
    const started = performance.now();
    const results = await Promise.all(Array.from({ length: 100 }, () => one.run(busy, {})));
    const took = performance.now() - started;
    clearInterval(probe);
    longest = Math.max(longest, performance.now() - last);
    expect(results.map((r) => r.value)).toEqual(Array.from({ length: 100 }, () => expected));
    // 100 calls back to back hold ~300 ms; the loop gets a turn about every 10 ms of them.
    expect(took).toBeGreaterThan(250);
    expect(longest).toBeLessThan(100);
  } finally {
    await one.close();
  }
});
