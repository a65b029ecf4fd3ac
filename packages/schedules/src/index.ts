/**
 * Calls made on a schedule: per tenant, on BullMQ's job schedulers (a cron pattern in a time zone,
 * or every N ms). Each firing is handed to a {@link FireSchedule} the planner gives, which submits an
 * ordinary call (audit, limits, metrics, tenant) through the same path as `POST /v1/calls`.
 *
 * @example
 * ```ts
 * const store = new ScheduleStore(redis, createScheduleKeys('toolplane'));
 * await store.put('acme', 'nightly-report', ScheduleRequest.parse({ tool: 'report', cron: '0 2 * * *', timezone: 'Europe/Paris' }));
 * const runner = store.startRunner({ connection: workerRedis, fire: async (s, firing) => submit(s, firing) });
 * await store.list('acme');   // [{ name, tool, arguments, cron, timezone, nextRunAt, lastRun }]
 * ```
 */
export { ScheduleName, ScheduleRequest, MIN_EVERY_MS } from './schedule.js';
export type { Schedule, ScheduleRun } from './schedule.js';
export { ScheduleStore, createScheduleKeys } from './schedule-store.js';
export type { ScheduleKeys, FireSchedule, ScheduleStoreOptions, ScheduleRunnerOptions } from './schedule-store.js';
