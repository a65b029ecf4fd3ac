import { describe, expect, test } from 'vitest';
import { CallErrorCode, RETRYABLE_CODES, ToolExecError, ToolSpec, silentLogger, type Tool } from '@toolplane/core';
import { ToolBreakers } from './breakers.js';

/**
 * Which failures the breaker counts, with real opossum breakers and no processes: exactly the
 * retryable ones of the code table, plus POISONED; anything thrown without a code counts as the
 * platform's SANDBOX_ERROR.
 */
let versions = 0;
function tool(): Tool {
  const spec = ToolSpec.parse({
    description: 'test',
    parameters: { type: 'object' },
    code: 'export default () => 1',
    // Trips on the fifth failure in a row.
    breaker: { errorThresholdPercentage: 50, volumeThreshold: 5, resetTimeoutMs: 10_000 },
  });
  return { ...spec, name: 'flaky', tenant: 'default', version: ++versions, createdAt: new Date(0).toISOString() };
}

/** Whether five failures of `thrown` in a row trip the breaker. */
async function trips(thrown: () => unknown): Promise<boolean> {
  let tripped = false;
  const breakers = new ToolBreakers(() => (tripped = true), silentLogger());
  const t = tool();
  try {
    for (let i = 0; i < 5; i++) await breakers.fire(t, () => Promise.reject(thrown() as Error)).catch(() => {});
    return tripped;
  } finally {
    breakers.shutdown();
  }
}

describe('ToolBreakers: what counts against a tool', () => {
  test.each(CallErrorCode.options)('%s', async (code) => {
    expect(await trips(() => new ToolExecError(code, 'failed'))).toBe(RETRYABLE_CODES[code] || code === 'POISONED');
  });

  test('anything thrown without a code is the platform failing: it counts', async () => {
    expect(await trips(() => new Error('redis went away'))).toBe(true);
    expect(await trips(() => 'a thrown string')).toBe(true);
  });

  test('successes do not trip it', async () => {
    let tripped = false;
    const breakers = new ToolBreakers(() => (tripped = true), silentLogger());
    const t = tool();
    for (let i = 0; i < 10; i++) expect(await breakers.fire(t, () => Promise.resolve(i))).toBe(i);
    breakers.shutdown();
    expect(tripped).toBe(false);
  });
});
