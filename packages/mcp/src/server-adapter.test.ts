import { describe, expect, test } from 'vitest';
import { toCallToolResult } from './server-adapter.js';

describe('toCallToolResult', () => {
  test('objects come as text and structured content; other values as text only', () => {
    expect(toCallToolResult({ ok: true, result: { sum: 3 } })).toEqual({
      content: [{ type: 'text', text: '{"sum":3}' }],
      structuredContent: { sum: 3 },
    });
    expect(toCallToolResult({ ok: true, result: 'plain' })).toEqual({ content: [{ type: 'text', text: 'plain' }] });
    expect(toCallToolResult({ ok: true, result: [1, 2] })).toEqual({ content: [{ type: 'text', text: '[1,2]' }] });
    expect(toCallToolResult({ ok: true, result: undefined })).toEqual({ content: [{ type: 'text', text: 'null' }] });
  });

  test('failures are tool errors whose text starts with the stable code', () => {
    const r = toCallToolResult({ ok: false, code: 'INVALID_ARGUMENTS', message: 'bad', details: { errors: [] } });
    expect(r.isError).toBe(true);
    expect(r.content).toEqual([{ type: 'text', text: 'INVALID_ARGUMENTS: bad\n{"errors":[]}' }]);
    expect(r.structuredContent).toEqual({ error: { code: 'INVALID_ARGUMENTS', message: 'bad' } });
  });
});
