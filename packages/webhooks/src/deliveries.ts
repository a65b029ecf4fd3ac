import { Queue, UnrecoverableError, Worker, type Job, type WorkerOptions } from 'bullmq';
import { z } from 'zod';
import { silentLogger, type Logger } from '@toolplane/core';
import type { RedisConnection } from '@toolplane/queue';
import type { WebhookKeys } from './keys.js';
import type { WebhookSecrets } from './secrets.js';
import { webhookHeaders } from './signature.js';

/** What finished: a call (`GET /v1/calls/{id}`) or an agent run (`GET /v1/runs/{id}`). */
export const WebhookKind = z.enum(['call', 'run']);
export type WebhookKind = z.infer<typeof WebhookKind>;

/** The finish of one call or run to tell its `callbackUrl` about. */
export type WebhookEvent = {
  kind: WebhookKind;
  id: string;
  tenant: string;
  url: string;
  /** The final record, as `GET /v1/calls/{id}` (or `/v1/runs/{id}`) shows it. */
  data: Record<string, unknown>;
  /** When it finished (ms): with the id, names the delivery, so a call retried and finished again is told again. */
  finishedAt: number;
};

/** The body every delivery POSTs (Standard Webhooks' recommended envelope). */
export type WebhookPayload = {
  /** `call.finished` or `run.finished`. */
  type: `${WebhookKind}.finished`;
  /** When it finished, ISO 8601. */
  timestamp: string;
  data: Record<string, unknown>;
};

/** What a delivery job carries: the body is fixed at enqueue, so every attempt sends (and signs) the same bytes. */
const DeliveryJob = z.object({ kind: WebhookKind, id: z.string().min(1), tenant: z.string().min(1), url: z.string().min(1), body: z.string() });
type DeliveryJob = z.infer<typeof DeliveryJob>;

/** One POST of a delivery, as the call or run shows it. */
export type WebhookAttempt = {
  /** When the attempt was made, ISO 8601. */
  at: string;
  /** The receiver's HTTP status; absent when no answer came (then `error` says why). */
  status?: number;
  error?: string;
  durationMs: number;
};

/**
 * - `pending`: not delivered yet; another attempt will come.
 * - `delivered`: the receiver answered 2xx.
 * - `failed`: attempts ran out, or the URL is refused by the egress rules (never retried).
 */
export type WebhookState = 'pending' | 'delivered' | 'failed';

/** The `webhook` field of a call or run that has a `callbackUrl`. */
export type WebhookStatus = { state: WebhookState; attempts: WebhookAttempt[] };

/** What a sender answers: the status, a refusal by the egress rules, or a transport error. */
export type WebhookSendResult = { status: number } | { denied: true; message: string } | { error: string };

/**
 * Sends one POST. The worker service gives the sandbox's egress-checked fetch, so a delivery reaches
 * exactly what a tool's `ctx.fetch` could (no private ranges unless the operator opened them).
 */
export type WebhookSender = (req: {
  url: string;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
}) => Promise<WebhookSendResult>;

export type WebhookDeliveriesOptions = {
  /**
   * Attempts per delivery, the first included.
   * @default 10
   */
  maxAttempts?: number;
  /**
   * Delay before the second attempt; each later one waits twice the one before (with BullMQ's
   * exponential backoff), so 10 attempts from 1 s span about 8.5 minutes.
   * @default 1_000
   */
  backoffMs?: number;
  /**
   * How long the attempts of a delivery stay readable on the call or run.
   * @default 7 days
   */
  retentionMs?: number;
  /**
   * Bodies larger than this are sent without the record's large fields (`truncated: true`); the
   * receiver reads the whole record with `GET`. Keeps every delivery under the egress fetch's
   * request-body cap and Redis free of a second copy of every large result.
   * @default 256 KiB
   */
  maxBodyBytes?: number;
};

export type DeliveryWorkerOptions = {
  /** A connection for BullMQ's worker (`maxRetriesPerRequest: null`, as `createRedisConnection(url, 'worker')`). */
  connection: RedisConnection;
  secrets: WebhookSecrets;
  send: WebhookSender;
  /**
   * Deliveries in flight at once per process.
   * @default 16
   */
  concurrency?: number;
  /** The fleet's lock and stalled-check settings (`jobLockOptions` of the service config); BullMQ's defaults otherwise. */
  jobLocks?: Pick<WorkerOptions, 'lockDuration' | 'stalledInterval' | 'maxStalledCount'>;
  /**
   * How long a receiver may take to answer one attempt.
   * @default 10_000
   */
  timeoutMs?: number;
  logger?: Logger;
};

const DAY_MS = 86_400_000;
/** A field larger than this is left out of a truncated body. */
const MAX_KEPT_FIELD_BYTES = 1_024;

/**
 * Completion webhooks: a BullMQ queue of deliveries with attempts and exponential backoff, each
 * attempt logged where the call or run shows it. Any service may {@link enqueue}; workers run
 * {@link startWorker}.
 */
export class WebhookDeliveries {
  readonly queue: Queue<DeliveryJob>;
  private readonly maxAttempts: number;
  private readonly backoffMs: number;
  private readonly retentionMs: number;
  private readonly maxBodyBytes: number;

  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: WebhookKeys,
    opts: WebhookDeliveriesOptions = {},
  ) {
    this.maxAttempts = opts.maxAttempts ?? 10;
    this.backoffMs = opts.backoffMs ?? 1_000;
    this.retentionMs = opts.retentionMs ?? 7 * DAY_MS;
    this.maxBodyBytes = opts.maxBodyBytes ?? 256 * 1024;
    this.queue = new Queue<DeliveryJob>(keys.queueName, { connection: redis, prefix: keys.bullPrefix });
    // Errors surface on the enqueue that hit them; an unhandled 'error' event would crash the process.
    this.queue.on('error', () => {});
  }

  /**
   * Queues the POST of a finish. The same finish queued twice (two events for one call) is one
   * delivery. Returns its `webhook-id`.
   */
  async enqueue(event: WebhookEvent): Promise<string> {
    const jobId = `${event.kind}-${event.id}-${event.finishedAt}`;
    const payload: WebhookPayload = { type: `${event.kind}.finished`, timestamp: new Date(event.finishedAt).toISOString(), data: event.data };
    let body = JSON.stringify(payload);
    if (Buffer.byteLength(body) > this.maxBodyBytes) body = JSON.stringify({ ...payload, data: truncated(event.data) });
    await this.queue.add(
      'deliver',
      { kind: event.kind, id: event.id, tenant: event.tenant, url: event.url, body },
      {
        jobId,
        attempts: this.maxAttempts,
        backoff: { type: 'exponential', delay: this.backoffMs },
        removeOnComplete: { age: Math.ceil(DAY_MS / 1000) },
        removeOnFail: { age: Math.ceil(this.retentionMs / 1000) },
      },
    );
    return webhookIdOf(jobId);
  }

  /** The attempts to deliver a finish of this call or run so far, and where that stands; `pending` before the first. */
  async status(kind: WebhookKind, id: string): Promise<WebhookStatus> {
    const raw = await this.redis.lrange(this.keys.attempts(kind, id), 0, -1);
    const attempts: WebhookAttempt[] = [];
    let state: WebhookState = 'pending';
    for (const line of raw) {
      const { final, ...attempt } = JSON.parse(line) as WebhookAttempt & { final?: boolean };
      attempts.push(attempt);
      if (attempt.status !== undefined && attempt.status >= 200 && attempt.status < 300) state = 'delivered';
      else if (final) state = 'failed';
      else state = 'pending';
    }
    return { state, attempts };
  }

  /** Delivers queued finishes in this process until the returned worker is closed. */
  startWorker(opts: DeliveryWorkerOptions): Worker<DeliveryJob> {
    const logger = opts.logger ?? silentLogger();
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const worker = new Worker<DeliveryJob>(
      this.keys.queueName,
      async (job: Job<DeliveryJob>) => {
        const parsed = DeliveryJob.safeParse(job.data);
        if (!parsed.success) throw new UnrecoverableError('delivery job data is invalid');
        const d = parsed.data;
        const secrets = await opts.secrets.signing(d.tenant);
        const started = Date.now();
        const headers = {
          ...webhookHeaders(secrets, webhookIdOf(job.id!), d.body, started),
          'content-type': 'application/json',
          'user-agent': 'Toolplane-Webhooks/1',
        };
        const outcome = await opts.send({ url: d.url, headers, body: d.body, timeoutMs }).catch((err: unknown) => ({
          error: err instanceof Error ? err.message : 'request failed',
        }));
        const ok = 'status' in outcome && outcome.status >= 200 && outcome.status < 300;
        const denied = 'denied' in outcome;
        const lastTry = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
        const attempt: WebhookAttempt & { final?: true } = {
          at: new Date(started).toISOString(),
          ...('status' in outcome ? { status: outcome.status } : {}),
          ...(!ok ? { error: errorOf(outcome) } : {}),
          durationMs: Date.now() - started,
          ...(!ok && (denied || lastTry) ? { final: true as const } : {}),
        };
        const key = this.keys.attempts(d.kind, d.id);
        await this.redis.multi().rpush(key, JSON.stringify(attempt)).pexpire(key, this.retentionMs).exec();
        const log = { kind: d.kind, id: d.id, attempt: job.attemptsMade + 1, status: attempt.status };
        if (ok) return void logger.debug(log, 'webhook delivered');
        logger.info({ ...log, error: attempt.error }, 'webhook attempt failed');
        // A refused URL stays refused: no point in retrying it.
        if (denied) throw new UnrecoverableError(attempt.error);
        throw new Error(attempt.error);
      },
      { connection: opts.connection, prefix: this.keys.bullPrefix, concurrency: opts.concurrency ?? 16, ...opts.jobLocks },
    );
    worker.on('error', (err: Error) => logger.warn({ err: err.message }, 'webhook worker error'));
    return worker;
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}

/** Standard Webhooks' `webhook-id`: the same for every attempt of one delivery. */
function webhookIdOf(jobId: string): string {
  return `msg_${jobId}`;
}

function errorOf(outcome: WebhookSendResult): string {
  if ('status' in outcome) return `receiver answered ${outcome.status}`;
  if ('denied' in outcome) return `refused by the egress rules: ${outcome.message}`;
  return outcome.error;
}

/** The record without its large fields (results, logs, steps), marked so the receiver knows to read it whole. */
function truncated(data: Record<string, unknown>): Record<string, unknown> {
  const kept: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(data)) {
    if (v === undefined || Buffer.byteLength(JSON.stringify(v) ?? '') <= MAX_KEPT_FIELD_BYTES) kept[k] = v;
  }
  return { ...kept, truncated: true };
}
