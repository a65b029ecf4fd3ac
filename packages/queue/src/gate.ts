import type { Tool } from '@toolplane/core';
import type { RedisConnection } from './connection.js';
import { BREAKER_GATE_LUA, breakerGateKeys, readBreakerState, trialTokenTtlMs, type BreakerState } from './breaker.js';
import type { Keys } from './keys.js';
import { LuaScript } from './lua-script.js';
import { TickBatcher } from './tick-batcher.js';

/*
 * admit-batch: the gate for several calls of one tool version at once, in arrival order, as if each
 * ran alone: what several calls read alike (time, breaker, hold, window sizes) is read once, what
 * they add to a window goes in one ZADD, and cancel markers are looked up together.
 * KEYS[1..3] the breaker's open, tripped and trial keys (breaker.ts: its step of this script, `breaker.*`)
 * KEYS[4] rate hold (Retry-After from downstream)
 * KEYS[5] tool sliding window (zset)
 * then per call i (1-based): KEYS[4 + 2i] its cancel marker, KEYS[5 + 2i] its tenant's sliding window
 * ARGV[1] tool max (0 = no limit)  ARGV[2] tool window ms  ARGV[3] breaker trial token ttl ms
 * then per call i: ARGV[1 + 3i] member (call id + nonce), ARGV[2 + 3i] tenant max, ARGV[3 + 3i] tenant window ms
 * Returns {verdict1, waitMs1, verdict2, waitMs2, …, nowMs}. Nothing is recorded for a call unless its
 * verdict is run or trial, so a refused call costs no slot in any window.
 */
const ADMIT = new LuaScript(`${BREAKER_GATE_LUA}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = (#KEYS - 5) / 2
local out = {}
local cancelKeys = {}
for i = 1, n do cancelKeys[i] = KEYS[4 + 2 * i] end
local someCancelled = redis.call('EXISTS', unpack(cancelKeys)) > 0
-- One read for the breaker's two states and the hold; their times only for the ones present (rare).
local states = redis.call('MGET', KEYS[1], KEYS[2], KEYS[4])
breaker.load(KEYS[1], KEYS[2], KEYS[3], ARGV[3], states[1], states[2])
local open, hold = breaker.wait(), 0
if open <= 0 and states[3] then hold = redis.call('PTTL', KEYS[4]) end
local windows = {}
local function window(key, length)
  local w = windows[key]
  if not w then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - length)
    w = { count = redis.call('ZCARD', key), adds = {}, length = length }
    windows[key] = w
  end
  return w
end
local function full(key, max, length)
  if max <= 0 then return 0 end
  local w = window(key, length)
  if w.count < max then return 0 end
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  local since = now
  if oldest[2] then since = tonumber(oldest[2]) end
  return math.max(1, since + length - now)
end
local function take(key, max, length, member)
  if max <= 0 then return end
  local w = window(key, length)
  w.count = w.count + 1
  w.adds[#w.adds + 1] = now
  w.adds[#w.adds + 1] = member
end
local toolMax, toolWindow = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 1, n do
  local member, tenantMax, tenantWindow = ARGV[1 + 3 * i], tonumber(ARGV[2 + 3 * i]), tonumber(ARGV[3 + 3 * i])
  local verdict, wait = 'run', 0
  if someCancelled and redis.call('EXISTS', KEYS[4 + 2 * i]) == 1 then
    verdict = 'cancelled'
  elseif open > 0 then
    verdict, wait = 'open', open
  elseif hold > 0 then
    verdict, wait = 'hold', hold
  else
    wait = full(KEYS[5], toolMax, toolWindow)
    if wait > 0 then
      verdict = 'tool_limit'
    else
      wait = full(KEYS[5 + 2 * i], tenantMax, tenantWindow)
      if wait > 0 then verdict = 'tenant_limit' end
    end
  end
  if verdict == 'run' then verdict, wait = breaker.pass(member) end
  if verdict == 'run' or verdict == 'trial' then
    take(KEYS[5], toolMax, toolWindow, member)
    take(KEYS[5 + 2 * i], tenantMax, tenantWindow, member)
  end
  out[#out + 1] = verdict
  out[#out + 1] = wait
end
for key, w in pairs(windows) do
  if #w.adds > 0 then
    redis.call('ZADD', key, unpack(w.adds))
    redis.call('PEXPIRE', key, w.length)
  end
end
out[#out + 1] = now
return out
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

export type { BreakerState } from './breaker.js';

/** Tenant-level limit of a tool; the same mechanism as the tool's own limit, keyed by tenant. */
export type TenantRateLimit = { max: number; perMs: number };

type AdmitRequest = { tool: Tool; callId: string; tenant: string; tenantLimit: TenantRateLimit | undefined };

/**
 * The fleet-wide gate every call passes before it runs, one Redis script round trip: cancellation,
 * the tool's shared breaker state (one trial call fleet-wide while half-open), downstream holds
 * (Retry-After), and true sliding-window rate limits per tool and per tenant. All its keys carry the
 * tool's hash tag, so it works unchanged on Redis Cluster.
 */
export class CallGate {
  private readonly admissions = new TickBatcher<AdmitRequest, Admission>((_key, requests) => this.admitBatch(requests));

  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: Keys,
  ) {}

  /**
   * The gate's verdict for one call. Calls of the same tool version that ask in the same event-loop
   * turn share one script run ({@link TickBatcher}); each still gets the verdict it would get alone,
   * in the order they asked.
   */
  admit(tool: Tool, callId: string, tenant: string, tenantLimit?: TenantRateLimit): Promise<Admission> {
    return this.admissions.add(`${tool.name}@${tool.version}`, { tool, callId, tenant, tenantLimit });
  }

  private async admitBatch(requests: AdmitRequest[]): Promise<Admission[]> {
    const k = this.keys;
    const { tool } = requests[0]!;
    const keys = [...breakerGateKeys(k, tool.name), k.rateHold(tool.name), k.rateWindow(tool.name)];
    const args: Array<string | number> = [tool.rateLimit?.max ?? 0, tool.rateLimit?.perMs ?? 1, trialTokenTtlMs(tool)];
    for (const r of requests) {
      keys.push(k.cancelMarker(tool.name, r.callId), k.tenantWindow(tool.name, r.tenant));
      args.push(`${r.callId}:${Math.random().toString(36).slice(2, 8)}`, r.tenantLimit?.max ?? 0, r.tenantLimit?.perMs ?? 1);
    }
    const out = (await ADMIT.run(this.redis, keys, args)) as Array<string | number>;
    const nowMs = out[out.length - 1] as number;
    return requests.map((_, i) => ({ verdict: out[2 * i], waitMs: out[2 * i + 1], nowMs }) as Admission);
  }

  /** The tool's breaker state fleet-wide (its transitions: `ToolBreakers` of breaker.ts). */
  breakerState(tool: string): Promise<BreakerState> {
    return readBreakerState(this.redis, this.keys, tool);
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
