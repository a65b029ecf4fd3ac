import { describe, expect, test } from 'vitest';
import { CallJobData, readCallJobData } from './call.js';

const written: CallJobData = {
  tool: 'add',
  version: 3,
  arguments: { a: 1 },
  tenant: 'acme',
  enqueuedAt: 1_700_000_000_000,
  argsHash: 'a'.repeat(64),
};

describe('readCallJobData', () => {
  test('reads what the producer writes as the schema does', () => {
    for (const data of [
      written,
      { ...written, deadlineAt: 1_700_000_001_000, callbackUrl: 'https://example.com/hook', awaited: true as const },
      { ...written, trace: { traceparent: '00-abc-def-01', tracestate: 'k=v' } },
      { ...written, arguments: undefined },
    ]) {
      expect(readCallJobData(data)).toEqual({ ok: true, data: CallJobData.parse(data) });
    }
  });

  test('anything else goes through the schema: its message, its stripping and its dropped trace', () => {
    const bad = readCallJobData({ ...written, version: 0 });
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.message).toContain('version');
    for (const raw of [null, 'job', [], { ...written, argsHash: 'short' }, { ...written, tool: 'no spaces' }, { ...written, enqueuedAt: 1.5 }, { ...written, awaited: false }]) {
      expect(readCallJobData(raw).ok).toBe(false);
    }
    expect(readCallJobData({ ...written, extra: 1 })).toEqual({ ok: true, data: written });
    expect(readCallJobData({ ...written, trace: { traceparent: 'x'.repeat(300) } })).toEqual({ ok: true, data: written });
    expect(readCallJobData({ ...written, trace: { traceparent: 1 } })).toEqual({ ok: true, data: written });
  });
});
