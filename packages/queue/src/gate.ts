import type { Tool } from '@toolplane/core';
import type { RedisConnection } from './connection.js';
import type { Keys } from './keys.js';
import { LuaScript } from './lua-script.js';

/*
 * admit-7
 * KEYS[1] cancel marker of the call     KEYS[2] breaker open (PX = reset time)
 * KEYS[3] breaker tripped (half-open    KEYS[4] breaker trial token (one trial fleet-wide)
 *         once KEYS[2] expired)         KEYS[5] rate hold (Retry-After from downstream)
 * KEYS[6] tool sliding window (zset)    KEYS[7] tenant sliding window (zset)
 * ARGV[1] member (call id + nonce)      ARGV[2] tool max (0 = no limit)   ARGV[3] tool window ms
 * ARGV[4] tenant max (0 = no limit)     ARGV[5] tenant window ms          ARGV[6] trial token ttl ms
 * Returns {verdict, waitMs, nowMs}. Nothing is recorded unless the verdict is run or trial, so a
 * refused call costs no slot in any window.
 */
const ADMIT = new LuaScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('EXISTS', KEYS[1]) == 1 then return {'cancelled', 0, now} end
local open = redis.call('PTTL', KEYS[2])
if open > 0 then return {'open', open, now} end
local hold = redis.call('PTTL', KEYS[5])
if hold > 0 then return {'hold', hold, now} end
local function full(key, max, window)
  if max <= 0 then return 0 end
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) < max then return 0 end
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + window - now)
end
local toolMax, toolWindow = tonumber(ARGV[2]), tonumber(ARGV[3])
local tenantMax, tenantWindow = tonumber(ARGV[4]), tonumber(ARGV[5])
local wait = full(KEYS[6], toolMax, toolWindow)
if wait > 0 then return {'tool_limit', wait, now} end
wait = full(KEYS[7], tenantMax, tenantWindow)
if wait > 0 then return {'tenant_limit', wait, now} end
local verdict = 'run'
if redis.call('EXISTS', KEYS[3]) == 1 then
  if redis.call('SET', KEYS[4], ARGV[1], 'NX', 'PX', ARGV[6]) then
    verdict = 'trial'
  else
    -- The trial usually ends long before its token expires: look again soon.
    return {'busy_trial', math.min(math.max(redis.call('PTTL', KEYS[4]), 50), 250), now}
  end
end
if toolMax > 0 then
  redis.call('ZADD', KEYS[6], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[6], toolWindow)
end
if tenantMax > 0 then
  redis.call('ZADD', KEYS[7], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[7], tenantWindow)
end
return {verdict, 0, now}
`);

/*
 * hold-1: KEYS[1] rate hold; ARGV[1] ms. Extends the hold, never shortens it.
 */
const HOLD = new LuaScript(`
local current = redis.call('PTTL', KEYS[1])
if current < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) end
return redis.call('PTTL', KEYS[1])
`);

/** What {@link CallGate.admit} decided for a call. */
export type Admission =
  | { verdict: 'run' | 'trial'; nowMs: number }
  | { verdict: 'cancelled'; nowMs: number }
  | { verdict: 'open' | 'busy_trial' | 'hold' | 'tool_limit' | 'tenant_limit'; waitMs: number; nowMs: number };

export type BreakerState = 'closed' | 'half_open' | 'open';

/** Tenant-level limit of a tool; the same mechanism as the tool's own limit, keyed by tenant. */
export type TenantRateLimit = { max: number; perMs: number };

const TRIPPED_TTL_MS = 86_400_000;

/**
 * The fleet-wide gate every call passes before it runs, one Redis script round trip: cancellation,
 * the tool's shared breaker state (one trial call fleet-wide while half-open), downstream holds
 * (Retry-After), and true sliding-window rate limits per tool and per tenant. All its keys carry the
 * tool's hash tag, so it works unchanged on Redis Cluster.
 */
export class CallGate {
  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: Keys,
  ) {}

  async admit(tool: Tool, callId: string, tenant: string, tenantLimit?: TenantRateLimit): Promise<Admission> {
    const k = this.keys;
    const member = `${callId}:${Math.random().toString(36).slice(2, 8)}`;
    const [verdict, waitMs, nowMs] = (await ADMIT.run(
      this.redis,
      [
        k.cancelMarker(tool.name, callId),
        k.breakerOpen(tool.name),
        k.breakerTripped(tool.name),
        k.breakerTrial(tool.name),
        k.rateHold(tool.name),
        k.rateWindow(tool.name),
        k.tenantWindow(tool.name, tenant),
      ],
      [
        member,
        tool.rateLimit?.max ?? 0,
        tool.rateLimit?.perMs ?? 1,
        tenantLimit?.max ?? 0,
        tenantLimit?.perMs ?? 1,
        tool.limits.timeoutMs + 5_000,
      ],
    )) as [Admission['verdict'], number, number];
    return { verdict, waitMs, nowMs } as Admission;
  }

  /** Opens the tool's breaker for every replica until `resetTimeoutMs` from now. */
  async trip(tool: Tool): Promise<void> {
    await this.redis
      .multi()
      .set(this.keys.breakerOpen(tool.name), '1', 'PX', tool.breaker.resetTimeoutMs)
      .set(this.keys.breakerTripped(tool.name), '1', 'PX', TRIPPED_TTL_MS)
      .del(this.keys.breakerTrial(tool.name))
      .exec();
  }

  /** The outcome of a half-open trial call: closes the breaker fleet-wide, or opens it for another period. */
  async settleTrial(tool: Tool, ok: boolean): Promise<void> {
    if (ok) {
      await this.redis
        .multi()
        .del(this.keys.breakerOpen(tool.name))
        .del(this.keys.breakerTripped(tool.name))
        .del(this.keys.breakerTrial(tool.name))
        .exec();
    } else {
      await this.trip(tool);
    }
  }

  /** Gives the trial token back without a verdict (the trial ended for a reason that says nothing about health). */
  async releaseTrial(tool: Tool): Promise<void> {
    await this.redis.del(this.keys.breakerTrial(tool.name));
  }

  async breakerState(tool: string): Promise<BreakerState> {
    const [open, tripped] = await Promise.all([
      this.redis.pttl(this.keys.breakerOpen(tool)),
      this.redis.exists(this.keys.breakerTripped(tool)),
    ]);
    if (open > 0) return 'open';
    return tripped ? 'half_open' : 'closed';
  }

  /** Holds every call of the tool back for `ms` fleet-wide (a downstream said Retry-After). */
  async hold(tool: string, ms: number): Promise<number> {
    return (await HOLD.run(this.redis, [this.keys.rateHold(tool)], [Math.ceil(ms)])) as number;
  }

  /** Remaining hold in ms, 0 when none. */
  async holdRemaining(tool: string): Promise<number> {
    return Math.max(0, await this.redis.pttl(this.keys.rateHold(tool)));
  }
}
