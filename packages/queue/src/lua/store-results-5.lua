--[[
  Calls of one tenant produced their results, in order: each call leaves the calls in flight, and its
  result is charged to the tenant's stored-result quota, unless that would take the tenant past the
  quota. Results charged before whose time is up are given back first, and so is an earlier charge of
  a call that runs again (its worker died before the result was kept). The total is changed only here
  and in release-calls-5, in the same script as the entries, so it cannot drift from them. What the
  calls change alike goes in one command each (ZADD, HSET, ZREM with every member).

  Input:
    KEYS[1] calls in flight (zset)
    KEYS[2] stored results (zset: call id -> ms when the result expires)
    KEYS[3] stored result sizes (hash: call id -> bytes)
    KEYS[4] stored bytes in total (string)
    KEYS[5] result quota full marker (string)

    ARGV[1] quota in bytes (0 = none)
    then per call i (1-based): ARGV[3i - 1] call id, ARGV[3i] bytes of the result,
                               ARGV[3i + 1] ms the result is kept (the call's retention)

  Output: per call, {1, usedBytes, 0} charged or {0, usedBytes, retryAfterMs} refused, flattened;
          while anything is stored after a refusal, the full marker is set until the oldest stored
          result expires (retryAfterMs, else 0)
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local quota = tonumber(ARGV[1])
local n = (#ARGV - 1) / 3
local before = tonumber(redis.call('GET', KEYS[4]) or '0')
local used = before

local ids = {}
for i = 1, n do ids[i] = ARGV[3 * i - 1] end
redis.call('ZREM', KEYS[1], unpack(ids))

-- At most 1000 expired per run keeps the script short; the rest go on the next runs.
local giveBack = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)
for i = 1, n do giveBack[#giveBack + 1] = ids[i] end
local sizes = redis.call('HMGET', KEYS[3], unpack(giveBack))
local sized = {}
for i, id in ipairs(giveBack) do
  if sizes[i] and not sized[id] then
    sized[id] = true
    used = used - tonumber(sizes[i])
  end
end
local dropped = {}
for id in pairs(sized) do dropped[#dropped + 1] = id end
if #dropped > 0 then redis.call('HDEL', KEYS[3], unpack(dropped)) end
redis.call('ZREM', KEYS[2], unpack(giveBack))
if used < 0 then used = 0 end

local out = {}
local entries, sizesOut = {}, {}
local keep = 0
local refused = false
for i = 1, n do
  local id, bytes, keepMs = ids[i], tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1])
  if quota > 0 and used + bytes > quota then
    refused = true
    out[#out + 1] = 0
    out[#out + 1] = used
    out[#out + 1] = -1
  else
    used = used + bytes
    entries[#entries + 1] = now + keepMs
    entries[#entries + 1] = id
    sizesOut[#sizesOut + 1] = id
    sizesOut[#sizesOut + 1] = bytes
    if keepMs > keep then keep = keepMs end
    out[#out + 1] = 1
    out[#out + 1] = used
    out[#out + 1] = 0
  end
end

if #entries > 0 then
  redis.call('ZADD', KEYS[2], unpack(entries))
  redis.call('HSET', KEYS[3], unpack(sizesOut))
  redis.call('SET', KEYS[4], used, 'KEEPTTL')
  -- The bookkeeping lives as long as its latest entry, so an idle tenant's keys go away by themselves.
  for i = 2, 4 do
    if redis.call('PTTL', KEYS[i]) < keep then redis.call('PEXPIRE', KEYS[i], keep) end
  end
elseif used ~= before and redis.call('EXISTS', KEYS[4]) == 1 then
  -- An absent total is 0 and stays absent, so nothing is left behind without a time to live.
  redis.call('SET', KEYS[4], used, 'KEEPTTL')
end

if refused then
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  local wait = 0
  if oldest[2] then
    wait = math.max(1, tonumber(oldest[2]) - now)
    redis.call('SET', KEYS[5], '1', 'PX', wait)
  end
  for i = 3, #out, 3 do
    if out[i] == -1 then out[i] = wait end
  end
end
return out
