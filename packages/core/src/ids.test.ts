import { expect, test } from 'vitest';
import { CALL_ID_PATTERN, newCallId } from './ids.js';

test('call ids are unique across many random pool refills, well-formed, and sort by creation time', () => {
  const ids = Array.from({ length: 10_000 }, (_, i) => newCallId(1_700_000_000_000 + i));
  expect(new Set(ids).size).toBe(ids.length);
  expect(ids.every((id) => CALL_ID_PATTERN.test(id))).toBe(true);
  expect([...ids].sort()).toEqual(ids);
  // The random part uses all 32 characters about evenly (160,000 draws: ~5,000 each).
  const counts = new Map<string, number>();
  for (const id of ids) for (const c of id.slice(10)) counts.set(c, (counts.get(c) ?? 0) + 1);
  expect(counts.size).toBe(32);
  for (const n of counts.values()) expect(Math.abs(n - 5_000)).toBeLessThan(500);
});
