import { Queue, Worker, type Job, type WorkerOptions } from 'bullmq';
import { RequestError, silentLogger, type Logger } from '@toolplane/core';
import type { RedisConnection } from '@toolplane/queue';
import type { Schedule, ScheduleRequest, ScheduleRun } from './schedule.js';

/**
 * Every Redis key of schedules. A tenant's schedules live under its `{tenant:<name>}` tag; the
 * BullMQ queue `{~schedules}` cannot be a tool's (`{<tool>}`: tool names have no `~`).
 */
export function createScheduleKeys(prefix: string) {
  return {
    bullPrefix: prefix,
    queueName: '{~schedules}',
    /** Hash of schedule name → the stored schedule (JSON). */
    schedules: (tenant: string) => `${prefix}:{tenant:${tenant}}:schedules`,
    /** Hash of schedule name → its last run (JSON). */
    lastRuns: (tenant: string) => `${prefix}:{tenant:${tenant}}:schedule-runs`,
  };
}
export type ScheduleKeys = ReturnType<typeof createScheduleKeys>;

/** What a scheduled job carries: only who it belongs to. The schedule itself is read when it fires. */
type FireJob = { tenant: string; name: string };

/** Makes the call of one firing; returns its id. Throws a {@link RequestError} when the call is refused. */
export type FireSchedule = (schedule: Schedule & { tenant: string }, firing: { id: string; at: number }) => Promise<string>;

export type ScheduleStoreOptions = {
  /**
   * Schedules one tenant may have; one more is refused with `QUOTA_EXCEEDED`.
   * @default 100
   */
  maxPerTenant?: number;
};

export type ScheduleRunnerOptions = {
  /** A connection for BullMQ's worker (`maxRetriesPerRequest: null`). */
  connection: RedisConnection;
  fire: FireSchedule;
  /** @default 4 */
  concurrency?: number;
  /** The fleet's lock and stalled-check settings (`jobLockOptions` of the service config); BullMQ's defaults otherwise. */
  jobLocks?: Pick<WorkerOptions, 'lockDuration' | 'stalledInterval' | 'maxStalledCount'>;
  logger?: Logger;
};

/**
 * Schedules of calls, per tenant, on BullMQ's job schedulers: one scheduler per schedule (id
 * `<tenant>/<name>`; tenant names have no `/`), which puts a job on `{~schedules}` at each due
 * time; a runner turns each job into an ordinary call. The schedule's definition is kept in the
 * tenant's hash, so listing a tenant reads only that tenant's keys.
 */
export class ScheduleStore {
  readonly queue: Queue<FireJob>;
  private readonly maxPerTenant: number;

  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: ScheduleKeys,
    opts: ScheduleStoreOptions = {},
  ) {
    this.maxPerTenant = opts.maxPerTenant ?? 100;
    this.queue = new Queue<FireJob>(keys.queueName, { connection: redis, prefix: keys.bullPrefix });
    this.queue.on('error', () => {});
  }

  /**
   * Creates or replaces a schedule (a replaced one keeps its `createdAt` and its next due time is
   * computed afresh). The tool and arguments must have been checked by the caller.
   * @throws RequestError `INVALID_REQUEST` for a cron pattern BullMQ cannot read, `QUOTA_EXCEEDED` past the tenant's cap.
   */
  async put(tenant: string, name: string, req: ScheduleRequest): Promise<{ schedule: Schedule; created: boolean }> {
    const key = this.keys.schedules(tenant);
    const previous = await this.redis.hget(key, name);
    if (previous === null && (await this.redis.hlen(key)) >= this.maxPerTenant) {
      throw new RequestError('QUOTA_EXCEEDED', `a tenant may have at most ${this.maxPerTenant} schedules`, { quota: 'schedules', limit: this.maxPerTenant });
    }
    const now = new Date().toISOString();
    const schedule: Schedule = {
      name,
      tool: req.tool,
      arguments: req.arguments,
      ...(req.cron !== undefined ? { cron: req.cron } : {}),
      ...(req.everyMs !== undefined ? { everyMs: req.everyMs } : {}),
      ...(req.timezone !== undefined ? { timezone: req.timezone } : {}),
      createdAt: previous ? (JSON.parse(previous) as Schedule).createdAt : now,
      updatedAt: now,
    };
    // Stored first: a job the scheduler fires at once reads the new definition.
    await this.redis.hset(key, name, JSON.stringify(schedule));
    try {
      await this.queue.upsertJobScheduler(
        schedulerId(tenant, name),
        req.cron !== undefined ? { pattern: req.cron, ...(req.timezone ? { tz: req.timezone } : {}) } : { every: req.everyMs! },
        { name: 'fire', data: { tenant, name }, opts: { removeOnComplete: true, removeOnFail: { count: 100 } } },
      );
    } catch (err: unknown) {
      // The definition goes back to what it was: a schedule BullMQ refused never half exists.
      if (previous === null) await this.redis.hdel(key, name);
      else await this.redis.hset(key, name, previous);
      throw new RequestError('INVALID_REQUEST', `the schedule cannot be made: ${(err as Error).message}`, { field: 'cron' });
    }
    return { schedule: (await this.get(tenant, name))!, created: previous === null };
  }

  /** The tenant's schedule, with its next due time and last run; `undefined` when it has none of that name. */
  async get(tenant: string, name: string): Promise<Schedule | undefined> {
    const [raw, last] = await Promise.all([this.redis.hget(this.keys.schedules(tenant), name), this.redis.hget(this.keys.lastRuns(tenant), name)]);
    if (raw === null) return undefined;
    return this.view(tenant, JSON.parse(raw) as Schedule, last);
  }

  /** Every schedule of the tenant, by name. */
  async list(tenant: string): Promise<Schedule[]> {
    const [all, last] = await Promise.all([this.redis.hgetall(this.keys.schedules(tenant)), this.redis.hgetall(this.keys.lastRuns(tenant))]);
    const names = Object.keys(all).sort();
    return Promise.all(names.map((n) => this.view(tenant, JSON.parse(all[n]!) as Schedule, last[n] ?? null)));
  }

  /** Deletes the schedule and its pending firing; `false` when the tenant has none of that name. */
  async delete(tenant: string, name: string): Promise<boolean> {
    const removed = await this.redis.hdel(this.keys.schedules(tenant), name);
    await this.queue.removeJobScheduler(schedulerId(tenant, name));
    await this.redis.hdel(this.keys.lastRuns(tenant), name);
    return removed > 0;
  }

  /**
   * Turns due jobs into calls in this process until the returned worker is closed. A firing whose
   * schedule was deleted meanwhile makes no call. A refused call (tool deleted, arguments no longer
   * valid, quota) is kept as the schedule's `lastRun.error`; the schedule goes on.
   */
  startRunner(opts: ScheduleRunnerOptions): Worker<FireJob> {
    const logger = opts.logger ?? silentLogger();
    const worker = new Worker<FireJob>(
      this.keys.queueName,
      async (job: Job<FireJob>) => {
        const { tenant, name } = job.data;
        const raw = await this.redis.hget(this.keys.schedules(tenant), name);
        if (raw === null) return;
        const schedule = JSON.parse(raw) as Schedule;
        // A scheduler's job carries its delay in its options (job.delay stays 0): due time = creation + delay.
        const at = job.timestamp + (job.opts.delay ?? 0);
        let run: ScheduleRun;
        try {
          const callId = await opts.fire({ ...schedule, tenant }, { id: job.id!, at });
          run = { at: new Date(at).toISOString(), callId };
        } catch (err: unknown) {
          const code = err instanceof RequestError ? err.code : 'INTERNAL';
          run = { at: new Date(at).toISOString(), error: { code, message: (err as Error).message } };
          logger.warn({ tenant, schedule: name, code }, 'scheduled call refused');
        }
        await this.redis.hset(this.keys.lastRuns(tenant), name, JSON.stringify(run));
      },
      { connection: opts.connection, prefix: this.keys.bullPrefix, concurrency: opts.concurrency ?? 4, ...opts.jobLocks },
    );
    worker.on('error', (err: Error) => logger.warn({ err: err.message }, 'schedule runner error'));
    return worker;
  }

  async close(): Promise<void> {
    await this.queue.close();
  }

  private async view(tenant: string, schedule: Schedule, lastRaw: string | null): Promise<Schedule> {
    const scheduler = await this.queue.getJobScheduler(schedulerId(tenant, schedule.name));
    return {
      ...schedule,
      ...(scheduler?.next ? { nextRunAt: new Date(scheduler.next).toISOString() } : {}),
      ...(lastRaw ? { lastRun: JSON.parse(lastRaw) as ScheduleRun } : {}),
    };
  }
}

function schedulerId(tenant: string, name: string): string {
  return `${tenant}/${name}`;
}
