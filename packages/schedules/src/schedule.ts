import { z } from 'zod';
import { ToolName } from '@toolplane/core';

/** A schedule's name: unique within its tenant, the same form as a tool's. */
export const ScheduleName = z.string().regex(/^[a-zA-Z0-9_-][a-zA-Z0-9_.-]{0,63}$/, 'letters, digits, _ - . only, at most 64');
export type ScheduleName = z.infer<typeof ScheduleName>;

/** Shortest interval of an `everyMs` schedule: each run is a whole call, not a tight loop. */
export const MIN_EVERY_MS = 1_000;
const MAX_EVERY_MS = 366 * 86_400_000;

/** True when `tz` is an IANA time zone the runtime knows (`Europe/Paris`, `UTC`). */
function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/**
 * The body of `PUT /v1/schedules/{name}`: call `tool` with `arguments` on a cron pattern (in
 * `timezone`, UTC by default) or every `everyMs` milliseconds. Exactly one of `cron` and `everyMs`.
 */
export const ScheduleRequest = z
  .object({
    tool: ToolName,
    arguments: z.unknown().default({}),
    /** Five or six fields (seconds first when six), as BullMQ's job schedulers read them: `0 * * * *`. */
    cron: z.string().min(9).max(200).optional(),
    everyMs: z.number().int().min(MIN_EVERY_MS).max(MAX_EVERY_MS).optional(),
    /** IANA time zone the cron pattern is read in. */
    timezone: z.string().max(64).refine(isTimeZone, 'an IANA time zone, e.g. Europe/Paris').optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    if ((s.cron === undefined) === (s.everyMs === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['cron'], message: 'give exactly one of cron and everyMs' });
    }
    if (s.timezone !== undefined && s.cron === undefined) {
      ctx.addIssue({ code: 'custom', path: ['timezone'], message: 'timezone applies to cron schedules only' });
    }
  });
export type ScheduleRequest = z.infer<typeof ScheduleRequest>;

/** What the last run of a schedule did: the call it made, or why it made none. */
export type ScheduleRun = { at: string; callId?: string; error?: { code: string; message: string } };

/** A schedule as the API shows it. */
export type Schedule = ScheduleRequest & {
  name: string;
  createdAt: string;
  updatedAt: string;
  /** When the next call is due, ISO 8601, as BullMQ's job scheduler has it. */
  nextRunAt?: string;
  lastRun?: ScheduleRun;
};
