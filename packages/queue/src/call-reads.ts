import { Job } from 'bullmq';
import { DEFAULT_TENANT, RequestError, type CallJobData, type CallOutput, type CallRecord, type CallStatus, type SerializedError } from '@toolplane/core';
import type { RedisConnection } from './connection.js';
import type { Keys } from './keys.js';
import { toCallRecord, tombstoneRecord } from './call-record.js';
import type { ToolQueueCache } from './tool-queue-cache.js';

/** A page of a tenant's archived calls: what {@link CallHistory.listCalls} is asked. */
export type HistoryCallQuery = {
  tenant: string;
  tool?: string;
  status?: CallStatus;
  errorCode?: string;
  argsHash?: string;
  /** Created at or after (ms since epoch). */
  since?: number;
  /** Created at or before (ms since epoch). */
  until?: number;
  limit: number;
  /** Only calls strictly after this position in (createdAt desc, id desc) order. */
  after?: { createdAt: number; id: string };
};

/**
 * The read side of the call history store (`@toolplane/history` implements it): calls that have
 * left Redis. Every listing is of one tenant.
 */
export type CallHistory = {
  getCall(id: string): Promise<CallRecord | undefined>;
  /** Newest first by (createdAt, id); `more` when calls past the page exist. */
  listCalls(q: HistoryCallQuery): Promise<{ calls: CallRecord[]; more: boolean }>;
};

/** One run of a call that failed and was retried: its attempts and when the last of them ran. */
export type EarlierRun = {
  /** Attempts BullMQ made in that run (its own retries included). */
  attempts: number;
  starts?: number;
  error?: SerializedError;
  /** Epoch ms the run's last attempt started and ended. */
  startedAt?: number;
  finishedAt?: number;
  /** Run time of that last attempt. */
  runMs: number | null;
  /** Epoch ms of the retry that ended this run. */
  retriedAt: number;
};

export type CallFilter = {
  /** Whose calls: the listing reads this tenant's own index and nothing of any other tenant. */
  tenant: string;
  /** Only calls of this tool. */
  tool?: string;
  status?: CallStatus;
  /** Only calls created at or after this time (ms since epoch). */
  since?: number;
  /** Only calls created at or before this time (ms since epoch). */
  until?: number;
  /** Only failed calls with this error code. */
  errorCode?: string;
  /** Only calls whose arguments hash to this (sha256 of their canonical JSON). */
  argsHash?: string;
  limit: number;
  /** From a previous page's `nextCursor`. */
  cursor?: string;
};

/** Index entries one listing request looks at, at most. */
const MAX_LIST_SCAN = 5_000;

export type CallReadsOptions = {
  /**
   * Where finished calls live once an archiver has moved them out of Redis: {@link CallReads.get}
   * and {@link CallReads.list} read through to it. Without it, only what Redis holds is read.
   */
  history?: CallHistory;
};

/**
 * The read model: calls as the API shows them, by id and as a tenant's audit trail, from Redis while
 * they are hot and from the history store after. Reads only; nothing here changes a call.
 */
export class CallReads {
  private readonly history: CallHistory | undefined;

  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: Keys,
    private readonly queues: ToolQueueCache,
    opts: CallReadsOptions = {},
  ) {
    this.history = opts.history;
  }

  /** The tool a call belongs to, or `undefined` when the id is unknown or expired. */
  toolOf(id: string): Promise<string | null> {
    return this.redis.get(this.keys.callIndex(id));
  }

  /**
   * The call as the API shows it, from Redis while it is hot and from the history store after,
   * or `undefined` when unknown or expired.
   */
  async get(id: string, tool?: string): Promise<CallRecord | undefined> {
    return (await this.getHot(id, tool)) ?? (await this.history?.getCall(id));
  }

  /**
   * The call as Redis holds it, or `undefined` once archived (or unknown, or expired). `knownTool`:
   * the tool the caller itself enqueued the call for, which saves looking it up.
   */
  async getHot(id: string, knownTool?: string): Promise<CallRecord | undefined> {
    const tool = knownTool ?? (await this.toolOf(id));
    if (tool === null) return undefined;
    const queue = this.queues.queue(tool);
    let job = await Job.fromId<CallJobData, CallOutput>(queue, id);
    if (!job) return tombstoneRecord(id, await this.redis.get(this.keys.cancelMarker(tool, id)));
    // A finished job says how it ended in its own hash (BullMQ keeps a return value only on
    // completion): no need to ask which set it is in — one round trip less for every `wait` answer.
    let state: string = job.finishedOn ? (job.returnvalue == null ? 'failed' : 'completed') : await job.getState();
    // The call may have finished between the two reads: read the job again to get its outcome.
    if ((state === 'completed' || state === 'failed') && !job.finishedOn) {
      job = (await Job.fromId<CallJobData, CallOutput>(queue, id)) ?? job;
    }
    if (state === 'delayed' && (await this.redis.exists(this.keys.approvalPending(tool, id)))) {
      state = 'awaiting_approval';
    }
    return toCallRecord(job, state);
  }

  /** The runs of a call before its retries, oldest first (empty when never retried, or past the retention). */
  async earlierRuns(tool: string, id: string): Promise<EarlierRun[]> {
    const raws = await this.redis.lrange(this.keys.callEarlierRuns(tool, id), 0, -1);
    return raws.map((raw) => JSON.parse(raw) as EarlierRun);
  }

  /**
   * The audit trail of one tenant, newest first, read from that tenant's own index (or its index of
   * one tool), so the cost of a listing never depends on other tenants' calls. Records are read a
   * page at a time and filtered by status; the opaque cursor is the position after the last entry
   * looked at. A listing reads at most {@link MAX_LIST_SCAN} entries: a sparse status filter may
   * answer fewer calls than `limit` with a `nextCursor` to go on from.
   */
  async list(filter: CallFilter): Promise<{ calls: CallRecord[]; nextCursor?: string }> {
    if (!this.history) return this.listHot(filter);
    return mergePages(filter, await Promise.all([this.listHot(filter), this.listArchived(filter)]));
  }

  /** One page of the tenant's archived calls, in the same order and cursor form as {@link listHot}. */
  private async listArchived(filter: CallFilter): Promise<{ calls: CallRecord[]; nextCursor?: string }> {
    const [maxScore, afterId] = decodeCursor(filter.cursor);
    const page = await this.history!.listCalls({
      tenant: filter.tenant,
      limit: filter.limit,
      ...(filter.tool ? { tool: filter.tool } : {}),
      ...(filter.status ? { status: filter.status } : {}),
      ...(filter.errorCode ? { errorCode: filter.errorCode } : {}),
      ...(filter.argsHash ? { argsHash: filter.argsHash } : {}),
      ...(filter.since !== undefined ? { since: filter.since } : {}),
      ...(filter.until !== undefined ? { until: filter.until } : {}),
      ...(afterId !== undefined ? { after: { createdAt: maxScore, id: afterId } } : {}),
    });
    const last = page.calls.at(-1);
    return { calls: page.calls, ...(page.more && last ? { nextCursor: encodeCursor(Date.parse(last.createdAt), last.id) } : {}) };
  }

  /** The tenant's calls Redis holds (hot), newest first; see {@link list}. */
  private async listHot(filter: CallFilter): Promise<{ calls: CallRecord[]; nextCursor?: string }> {
    const index = filter.tool ? this.keys.tenantToolCalls(filter.tenant, filter.tool) : this.keys.tenantCalls(filter.tenant);
    let [maxScore, afterId] = decodeCursor(filter.cursor);
    if (filter.until !== undefined && filter.until < maxScore) [maxScore, afterId] = [filter.until, undefined];
    const minScore = filter.since ?? 0;
    const batch = Math.min(Math.max(filter.limit * 2, 20), 500);
    const out: CallRecord[] = [];
    let scanned = 0;
    let skip = 0;
    let exhausted = false;
    while (out.length < filter.limit && scanned < MAX_LIST_SCAN) {
      const max = Number.isFinite(maxScore) ? maxScore : '+inf';
      const flat = await this.redis.zrevrangebyscore(index, max, minScore, 'WITHSCORES', 'LIMIT', skip, batch);
      const entries: Array<{ id: string; score: number }> = [];
      for (let i = 0; i < flat.length; i += 2) entries.push({ id: flat[i]!, score: Number(flat[i + 1]) });
      scanned += entries.length;
      // Ties sort by id, descending: those at the cursor's score down to its id were on earlier pages.
      const fresh = entries.filter((e) => afterId === undefined || e.score < maxScore || e.id < afterId);
      if (fresh.length === 0) {
        if (entries.length < batch) {
          exhausted = true;
          break;
        }
        skip += entries.length;
        continue;
      }
      skip = 0;
      const records = await Promise.all(fresh.map((e) => this.getHot(e.id)));
      let used = 0;
      for (const [i, e] of fresh.entries()) {
        used++;
        maxScore = e.score;
        afterId = e.id;
        const record = records[i];
        // Expired, or (never, but checked all the same) not this tenant's.
        if (!record || (record.tenant ?? DEFAULT_TENANT) !== filter.tenant) continue;
        if (filter.status && record.status !== filter.status) continue;
        if (filter.errorCode && record.error?.code !== filter.errorCode) continue;
        if (filter.argsHash && record.argsHash !== filter.argsHash) continue;
        out.push(record);
        if (out.length === filter.limit) break;
      }
      if (entries.length < batch && used === fresh.length) {
        exhausted = true;
        break;
      }
    }
    const more = !exhausted && afterId !== undefined;
    return { calls: out, ...(more ? { nextCursor: encodeCursor(maxScore, afterId!) } : {}) };
  }
}

/**
 * Merges a page of hot calls (Redis) and a page of archived calls (history), both newest first by
 * (createdAt, id), into one page. A call in both (archived, not yet dropped) appears once. When a
 * source has more than its page, nothing past its last position is answered, so the next page,
 * which starts there, neither repeats nor skips a call.
 */
function mergePages(filter: CallFilter, pages: Array<{ calls: CallRecord[]; nextCursor?: string }>): { calls: CallRecord[]; nextCursor?: string } {
  const pos = (r: CallRecord): [number, string] => [Date.parse(r.createdAt), r.id];
  const after = (a: [number, string], b: [number, string]) => a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);
  // The least advanced of the sources' cursors: everything at or above it has been looked at by both.
  let bound: [number, string] | undefined;
  for (const p of pages) {
    if (!p.nextCursor) continue;
    const [score, id] = decodeCursor(p.nextCursor);
    const c: [number, string] = [score, id!];
    if (!bound || after(bound, c)) bound = c;
  }
  const seen = new Set<string>();
  const merged = pages
    .flatMap((p) => p.calls)
    .filter((r) => (seen.has(r.id) ? false : (seen.add(r.id), true)))
    .filter((r) => !bound || !after(pos(r), bound))
    .sort((a, b) => (after(pos(a), pos(b)) ? 1 : after(pos(b), pos(a)) ? -1 : 0));
  const calls = merged.slice(0, filter.limit);
  const last = calls.at(-1);
  if (merged.length > filter.limit && last) return { calls, nextCursor: encodeCursor(...pos(last)) };
  return bound ? { calls, nextCursor: encodeCursor(...bound) } : { calls };
}

function encodeCursor(score: number, id: string): string {
  return Buffer.from(`${score}:${id}`).toString('base64url');
}

function decodeCursor(cursor: string | undefined): [number, string | undefined] {
  if (!cursor) return [Number.POSITIVE_INFINITY, undefined];
  const m = /^(\d+):([0-9a-z]+)$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!m) throw new RequestError('INVALID_REQUEST', 'cursor is invalid');
  return [Number(m[1]), m[2]];
}
