import { defineTool } from '@toolplane/sdk';
import { addDays, differenceInCalendarDays, format, isValid, isWeekend, parseISO } from 'date-fns';
import * as z from 'zod';

/**
 * When is something due, counted in business days? Skips weekends and the holidays given, the way
 * a support or finance team counts an SLA ("answer within 5 business days").
 */
export default defineTool({
  name: 'due_date',
  description: 'The date N business days after a start date, skipping weekends and the listed holidays',
  parameters: z.object({
    start: z.string().describe('ISO date the clock starts, e.g. 2026-12-23'),
    businessDays: z.number().int().min(0).max(3650),
    holidays: z.array(z.string()).max(366).default([]).describe('ISO dates that are not business days'),
  }),
  limits: { timeoutMs: 1000, memoryMb: 32 },
  cacheTtlMs: 3_600_000,
  run: ({ start, businessDays, holidays }, ctx) => {
    const from = parseISO(start);
    if (!isValid(from)) throw new Error(`start '${start}' is not an ISO date (YYYY-MM-DD)`);
    const off = new Set(holidays.map((h) => format(parseISO(h), 'yyyy-MM-dd')));
    let due = from;
    let skipped = 0;
    for (let left = businessDays; left > 0; ) {
      due = addDays(due, 1);
      if (isWeekend(due) || off.has(format(due, 'yyyy-MM-dd'))) skipped++;
      else left--;
    }
    ctx.log(`skipped ${skipped} non-business days`);
    return {
      due: format(due, 'yyyy-MM-dd'),
      weekday: format(due, 'EEEE'),
      calendarDays: differenceInCalendarDays(due, from),
      skipped,
    };
  },
});
