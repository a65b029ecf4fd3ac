import type { Tool } from '@toolplane/core';
import type { CallGate, RedisConnection, ToolQueueCache } from '@toolplane/queue';
import { ToolAvailabilityReader, type Availability } from './tool-availability.js';

/**
 * Figures of the recent past: the window the console's calls/min, error rate and latencies cover.
 * It matches the default `CALL_HOT_RETENTION_MS` (5 min): finished calls stay in BullMQ's sets that
 * long before the archiver moves them to history, so the window is read from Redis alone.
 */
export const STATS_WINDOW_MS = 300_000;
/** Latencies come from at most this many of the window's latest calls of each outcome. */
const LATENCY_SAMPLE = 100;

/** What the console shows of one tool's traffic, from the planner's own data (not Prometheus). */
export type ToolStats = {
  /** Calls that finished within the window: succeeded and failed. */
  calls: number;
  errors: number;
  callsPerMin: number;
  /** errors / calls, null without calls. */
  errorRate: number | null;
  /** Run time in the sandbox of the sample's calls. */
  p50Ms: number | null;
  p95Ms: number | null;
  sample: number;
};

export type QueueCounts = { waiting: number; active: number; delayed: number; prioritized: number; completed: number; failed: number };

/** One tool's state and traffic as the console's tool list shows it. */
export type ToolHealth = Availability & {
  breaker: 'closed' | 'half_open' | 'open';
  /** ms left of a downstream's Retry-After hold; 0 without one. */
  holdMs: number;
  /** ms left of the fleet-wide pause after the tool reached its rate limit; 0 without one. */
  rateLimitMs: number;
  queue: QueueCounts;
  stats: ToolStats;
};

/**
 * Reads a tool's health: breaker, holds and queue counts as the gate and BullMQ keep them, and
 * traffic from BullMQ's finished sets, which are scored by finish time: two ZCOUNTs give the
 * window's counts whatever the trail's size, and the latencies read two fields of at most
 * {@link LATENCY_SAMPLE} jobs per outcome. Every key read shares the tool's hash tag.
 */
export class ToolHealthReader {
  private readonly availability: ToolAvailabilityReader;

  constructor(private readonly deps: { redis: RedisConnection; gate: CallGate; queues: ToolQueueCache }) {
    this.availability = new ToolAvailabilityReader(deps);
  }

  async of(tool: Tool, now = Date.now()): Promise<ToolHealth> {
    const queue = this.deps.queues.queue(tool.name);
    const [availability, breaker, holdMs, rateLimitTtl, counts, stats] = await Promise.all([
      this.availability.of(tool),
      this.deps.gate.breakerState(tool.name),
      this.deps.gate.holdRemaining(tool.name),
      queue.getRateLimitTtl(),
      queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed'),
      this.stats(tool.name, now),
    ]);
    return {
      ...availability,
      breaker,
      holdMs,
      rateLimitMs: Math.max(0, rateLimitTtl),
      queue: {
        waiting: counts.waiting ?? 0,
        active: counts.active ?? 0,
        delayed: counts.delayed ?? 0,
        prioritized: counts.prioritized ?? 0,
        completed: counts.completed ?? 0,
        failed: counts.failed ?? 0,
      },
      stats,
    };
  }

  private async stats(name: string, now: number): Promise<ToolStats> {
    const queue = this.deps.queues.queue(name);
    const since = now - STATS_WINDOW_MS;
    const sets = [queue.keys['completed']!, queue.keys['failed']!];
    const [succeeded, failed, ...latest] = await Promise.all([
      ...sets.map((key) => this.deps.redis.zcount(key, since, '+inf')),
      ...sets.map((key) => this.deps.redis.zrevrangebyscore(key, '+inf', since, 'LIMIT', 0, LATENCY_SAMPLE)),
    ]);
    const ids = (latest as string[][]).flat();
    const times = await Promise.all(ids.map((id) => this.deps.redis.hmget(queue.toKey(id), 'processedOn', 'finishedOn')));
    const runs = times
      .map(([started, finished]) => Number(finished) - Number(started))
      .filter((ms) => Number.isFinite(ms) && ms >= 0)
      .sort((a, b) => a - b);
    const calls = (succeeded as number) + (failed as number);
    return {
      calls,
      errors: failed as number,
      callsPerMin: Math.round((calls / (STATS_WINDOW_MS / 60_000)) * 10) / 10,
      errorRate: calls > 0 ? (failed as number) / calls : null,
      p50Ms: percentile(runs, 0.5),
      p95Ms: percentile(runs, 0.95),
      sample: runs.length,
    };
  }
}

function percentile(sorted: number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}
