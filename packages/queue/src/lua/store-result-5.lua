--[[
  A call of one tenant produced its result: the call leaves the calls in flight, and its result is
  charged to the tenant's stored-result quota, unless that would take the tenant past the quota.
  Results charged before whose time is up are given back first. The total is changed only here and
  in release-calls-5, in the same script as the entries, so it cannot drift from them.

  Input:
    KEYS[1] calls in flight (zset)
    KEYS[2] stored results (zset: call id -> ms when the result expires)
    KEYS[3] stored result sizes (hash: call id -> bytes)
    KEYS[4] stored bytes in total (string)
    KEYS[5] result quota full marker (string)

    ARGV[1] call id
    ARGV[2] bytes of the result
    ARGV[3] ms the result is kept (the call's retention)
    ARGV[4] quota in bytes (0 = none)

  Output:
    {1, usedBytes}                   charged
    {0, usedBytes, retryAfterMs}     refused; while anything is stored the full marker is set until
                                     the oldest stored result expires (retryAfterMs, else 0)
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local used = tonumber(redis.call('GET', KEYS[4]) or '0')

local function giveBack(id)
  local size = redis.call('HGET', KEYS[3], id)
  if size then
    used = used - tonumber(size)
    redis.call('HDEL', KEYS[3], id)
  end
  redis.call('ZREM', KEYS[2], id)
end

redis.call('ZREM', KEYS[1], ARGV[1])
-- At most 1000 per call keeps the script short; the rest go on the next calls.
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)) do giveBack(id) end
-- A call that runs again (its worker died before the result was kept) replaces its earlier charge.
giveBack(ARGV[1])
if used < 0 then used = 0 end

local bytes = tonumber(ARGV[2])
local keep = tonumber(ARGV[3])
local quota = tonumber(ARGV[4])
if quota > 0 and used + bytes > quota then
  -- An absent total is 0 and stays absent, so nothing is left behind without a time to live.
  if redis.call('EXISTS', KEYS[4]) == 1 then redis.call('SET', KEYS[4], used, 'KEEPTTL') end
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  local wait = 0
  if oldest[2] then
    wait = math.max(1, tonumber(oldest[2]) - now)
    redis.call('SET', KEYS[5], '1', 'PX', wait)
  end
  return {0, used, wait}
end

redis.call('ZADD', KEYS[2], now + keep, ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], bytes)
used = used + bytes
redis.call('SET', KEYS[4], used, 'KEEPTTL')
-- The bookkeeping lives as long as its latest entry, so an idle tenant's keys go away by themselves.
for i = 2, 4 do
  if redis.call('PTTL', KEYS[i]) < keep then redis.call('PEXPIRE', KEYS[i], keep) end
end
return {1, used}
