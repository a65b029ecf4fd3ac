import { describe, expect, test } from 'vitest';
import { deferCall, isPastDeadline } from './deadline.js';

describe('call deadlines', () => {
  const now = 1_000_000;

  test('a call without a deadline is never late and waits as long as it is told', () => {
    expect(isPastDeadline(undefined, now)).toBe(false);
    expect(deferCall(undefined, now, 60_000, 'delay')).toEqual({ action: 'put_back', waitMs: 60_000 });
    expect(deferCall(undefined, now, 60_000, 'pause')).toEqual({ action: 'put_back', waitMs: 60_000 });
  });

  test('a call is late from its deadline on', () => {
    expect(isPastDeadline(now + 1, now)).toBe(false);
    expect(isPastDeadline(now, now)).toBe(true);
    expect(isPastDeadline(now - 1, now)).toBe(true);
  });

  test('a late call ends instead of being put back', () => {
    expect(deferCall(now, now, 10, 'delay')).toEqual({ action: 'expire' });
    expect(deferCall(now - 5, now, 10, 'pause')).toEqual({ action: 'expire' });
  });

  test('a delayed put-back never lasts past the deadline', () => {
    expect(deferCall(now + 1_500, now, 60_000, 'delay')).toEqual({ action: 'put_back', waitMs: 1_500 });
    expect(deferCall(now + 1_500, now, 200, 'delay')).toEqual({ action: 'put_back', waitMs: 200 });
  });

  test('a pause that ends past the deadline ends the call now; one that ends in time puts it back', () => {
    expect(deferCall(now + 1_500, now, 60_000, 'pause')).toEqual({ action: 'expire' });
    expect(deferCall(now + 1_500, now, 1_500, 'pause')).toEqual({ action: 'put_back', waitMs: 1_500 });
    expect(deferCall(now + 1_500, now, 200, 'pause')).toEqual({ action: 'put_back', waitMs: 200 });
  });
});
