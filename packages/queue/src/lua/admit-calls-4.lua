--[[
  Admits new calls of one tenant, or refuses them all: past the tenant's cap of calls in flight, or
  while its stored results fill its quota. Admitted calls are counted in flight and, when recorded,
  entered in the tenant's call index (the audit trail `GET /v1/calls` pages through), so a refused
  call leaves no trace and an idempotent repeat is recognised before anything is counted.

  Input:
    KEYS[1] calls in flight (zset: call id -> ms after which the entry is dropped as stale)
    KEYS[2] the tenant's call index (zset: call id -> created ms)
    KEYS[3] the tenant's call index of this tool (zset: call id -> created ms)
    KEYS[4] result quota full marker (string; lives until the tenant's oldest result expires)

    ARGV[1] created ms (the calls' score in the indexes)
    ARGV[2] most calls in flight (0 = no cap)
    ARGV[3] retention ms: index entries older than created - retention are trimmed, and an id
            indexed within it is an idempotent repeat
    ARGV[4] ms an in-flight entry lives at most (the call's delay plus the retention): the entry of a
            call whose end was never reported (a crashed process) goes away by itself
    ARGV[5] '1' to enter the calls in the indexes (enqueue), '0' to count them in flight only (retry)
    ARGV[6..] call ids

  Output:
    {'admitted', n}
    {'duplicate', 0}              one id, already indexed: the same call again, not counted twice
    {'calls_in_flight', count}    count = calls in flight now
    {'result_bytes', ms}          ms until the tenant's oldest stored result expires
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local created = tonumber(ARGV[1])
local max = tonumber(ARGV[2])
local retention = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local record = ARGV[5] == '1'
local n = #ARGV - 5

if record and n == 1 then
  local seen = redis.call('ZSCORE', KEYS[2], ARGV[6])
  if seen and tonumber(seen) >= created - retention then return {'duplicate', 0} end
end

local full = redis.call('PTTL', KEYS[4])
if full > 0 then return {'result_bytes', full} end

local ids = {}
for i = 6, #ARGV do ids[#ids + 1] = ARGV[i] end

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if max > 0 then
  -- An id already in flight (a retry racing its own report) takes no second slot.
  local new = 0
  for from = 1, #ids, 1000 do
    for _, score in ipairs(redis.call('ZMSCORE', KEYS[1], unpack(ids, from, math.min(from + 999, #ids)))) do
      if not score then new = new + 1 end
    end
  end
  local count = redis.call('ZCARD', KEYS[1])
  if count + new > max then return {'calls_in_flight', count} end
end
-- One command per key for each thousand ids (Lua's unpack takes a few thousand values at most).
local function zaddAll(key, score, nx)
  for from = 1, #ids, 1000 do
    local args = {}
    if nx then args[1] = 'NX' end
    for i = from, math.min(from + 999, #ids) do
      args[#args + 1] = score
      args[#args + 1] = ids[i]
    end
    redis.call('ZADD', key, unpack(args))
  end
end
zaddAll(KEYS[1], now + ttl, false)
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end

if record then
  for i = 2, 3 do
    zaddAll(KEYS[i], created, true)
    -- Trimmed here, so the index stays bounded by the retention without a sweeper; an index nobody
    -- adds to any more expires whole.
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', created - retention)
    redis.call('PEXPIRE', KEYS[i], retention)
  end
end
return {'admitted', n}
