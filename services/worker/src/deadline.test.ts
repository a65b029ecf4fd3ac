import { describe, expect, test } from 'vitest';
import { deadlineMessage, deferCall, isPastDeadline } from './deadline.js';

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

  test('DEADLINE_EXCEEDED reads the same from the processor and the sweep: when, and the last attempt if any', () => {
    expect(deadlineMessage(Date.UTC(2026, 10, 30, 18, 0, 0))).toBe('call could not start before its deadline (2026-11-30T18:00:00.000Z)');
    expect(deadlineMessage(Date.UTC(2026, 10, 30, 18, 0, 0), 'downstream is down')).toBe(
      'call reached its deadline (2026-11-30T18:00:00.000Z) before another attempt; last attempt: downstream is down',
    );
  });
});
