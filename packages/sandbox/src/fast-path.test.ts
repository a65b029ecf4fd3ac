import { afterEach, expect, test, vi } from 'vitest';
import { FastPath } from './fast-path.js';

afterEach(() => {
  vi.useRealTimers();
});

test('one overrun among fast calls keeps the fast path; overruns in a row hold it back 1 s, 2 s, 4 s… up to a minute', () => {
  vi.useFakeTimers();
  const path = new FastPath(4);
  // A pause of the tool's own making is at least half the budget of CPU; less is the machine's doing.
  expect(path.overran(1)).toBeUndefined();
  expect(path.overran(3)).toBeUndefined();
  expect(path.useSync()).toBe(true);
  path.succeeded();
  expect(path.overran(3)).toBeUndefined();
  expect(path.overran(3)).toBe(1_000);
  expect(path.useSync()).toBe(false);
  vi.advanceTimersByTime(1_000);
  expect(path.useSync()).toBe(true);
  const holds = Array.from({ length: 8 }, () => path.overran(4));
  expect(holds).toEqual([2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]);
  path.succeeded();
  vi.advanceTimersByTime(60_000);
  expect(path.overran(4)).toBeUndefined();
});

test('no sync budget: never the fast path', () => {
  expect(new FastPath(0).useSync()).toBe(false);
});
