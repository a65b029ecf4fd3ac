import { afterAll, beforeAll, expect, test } from 'vitest';
import { SandboxFleet } from '../index.js';

/** Registration checks on one host: they run one at a time, and tenants with checks waiting take turns. */
let fleet: SandboxFleet;

beforeAll(async () => {
  fleet = new SandboxFleet({ hosts: 1, spare: false, memoryBudgetMb: 64 });
  await fleet.ready();
});
afterAll(() => fleet.close());

// Valid code whose top level takes a moment, well inside the check's evaluation bound even on a
// loaded machine (1e6 additions, interpreted in a fresh isolate, ran out of it under the full suite).
// The order does not need slow checks: all are sent in one turn, so all but the first wait their turn.
const busy = (i: number) => `let x = ${i}; for (let k = 0; k < 1e5; k++) x += k; export default () => x;`;

/** Sends the checks in one turn of the event loop; resolves with their labels in the order they finished. */
async function finishOrder(checks: Array<{ label: string; tenant: string }>): Promise<string[]> {
  const order: string[] = [];
  const results = await Promise.all(
    checks.map(({ label, tenant }, i) => fleet.check(busy(i), { tenant }).then((r) => (order.push(label), r))),
  );
  expect(results.filter((r) => !r.ok)).toEqual([]);
  return order;
}

test("one tenant's burst of registrations does not hold back another tenant's", async () => {
  const burst = Array.from({ length: 8 }, (_, i) => ({ label: `a${i}`, tenant: 'a' }));
  const order = await finishOrder([...burst, { label: 'b0', tenant: 'b' }, { label: 'c0', tenant: 'c' }, { label: 'b1', tenant: 'b' }]);
  // a0 was already running; then a, b and c take turns: a1, b0, c0, a2, b1, then the rest of a's.
  expect(order).toEqual(['a0', 'a1', 'b0', 'c0', 'a2', 'b1', 'a3', 'a4', 'a5', 'a6', 'a7']);
});

test("one tenant's checks keep their order", async () => {
  const order = await finishOrder(Array.from({ length: 5 }, (_, i) => ({ label: `t${i}`, tenant: 't' })));
  expect(order).toEqual(['t0', 't1', 't2', 't3', 't4']);
});
