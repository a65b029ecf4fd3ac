import { describe, expect, runTool, test } from '@toolplane/cli/testing';

const tool = new URL('./due-date.ts', import.meta.url);

describe('due_date', () => {
  test('skips the weekend and the holidays', async () => {
    // Wed 23 Dec 2026 + 5 business days, with 25 Dec and 1 Jan off: 24, 28, 29, 30, 31 → Thu 31 Dec.
    const { value, logs } = await runTool(tool, { start: '2026-12-23', businessDays: 5, holidays: ['2026-12-25', '2027-01-01'] });
    expect(value).toEqual({ due: '2026-12-31', weekday: 'Thursday', calendarDays: 8, skipped: 3 });
    expect(logs.join('\n')).toContain('skipped 3 non-business days');
  });

  test('a Friday plus one business day is the Monday', async () => {
    const { value } = await runTool(tool, { start: '2026-12-04', businessDays: 1, holidays: [] });
    expect(value).toMatchObject({ due: '2026-12-07', weekday: 'Monday', calendarDays: 3 });
  });

  test('a bad date is a TOOL_ERROR that says what is wrong', async () => {
    await expect(runTool(tool, { start: 'next week', businessDays: 1, holidays: [] })).rejects.toMatchObject({
      code: 'TOOL_ERROR',
      message: expect.stringContaining("start 'next week' is not an ISO date"),
    });
  });

  test('registers a JSON Schema made from the zod parameters', async () => {
    const { definition } = await runTool(tool, { start: '2026-01-01', businessDays: 0, holidays: [] });
    expect(definition).toMatchObject({
      name: 'due_date',
      cacheTtlMs: 3_600_000,
      parameters: { type: 'object', required: expect.arrayContaining(['start', 'businessDays']) },
    });
  });
});
