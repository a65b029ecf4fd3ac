--[[
  Start-time fair queueing of a tool's calls across tenants, and the tool's deadline index.

  While one tenant alone has calls waiting, its calls go on BullMQ's plain wait list, untagged (the
  cheapest path: a list, no priority counter). When another tenant's calls arrive while those wait,
  the waiting calls get start tags first, in their order, and from then on each new call without an
  explicit priority gets a start tag: one past the later of its tenant's last tag and the tool's
  virtual time (the tag of the next call to start). BullMQ orders its prioritized set by priority,
  then arrival, so with the tag as BullMQ priority starts go round robin between the tenants with
  calls waiting, each tenant's calls in its own order, and a tenant back from idle joins the round
  instead of spending tags from the past. Once no tagged call waits, the next tenant alone is back
  on the plain list.

  KEYS[1] fair         hash tenant -> tag of its last call; `~v` virtual time; `~max` highest tag;
                       `~solo` the tenant whose calls wait untagged
  KEYS[2] prioritized  BullMQ's prioritized zset of the tool (score = priority * 2^32 + arrival)
  KEYS[3] deadlines    zset call id -> deadline (ms)
  KEYS[4] wait         BullMQ's wait list of the tool (newest first)
  KEYS[5] pc           BullMQ's priority counter (the arrival part of a prioritized score)

  ARGV[1] tenant
  ARGV[2] number of calls to tag (0: explicit priority, nothing to tag)
  ARGV[3] tag limit: tags above it are clamped (BullMQ priorities stop at 2^21)
  ARGV[4] tag count at which numbering restarts, once no tagged call waits
  ARGV[5] BullMQ job key prefix of the tool's queue (`<prefix>:<queue>:`)
  ARGV[6..] deadline, call id pairs to index

  Returns the first call's tag (the others follow one by one), or 0 when the calls stay untagged.
]]
for i = 6, #ARGV, 2 do
  redis.call('ZADD', KEYS[3], ARGV[i], ARGV[i + 1])
end

local n = tonumber(ARGV[2])
if n == 0 then return 0 end
local tenant = ARGV[1]
local limit = tonumber(ARGV[3])

local v
local head = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local headTag = head[2] and math.floor(tonumber(head[2]) / 0x100000000)
if headTag and headTag > 0 and headTag <= limit then
  -- Monotonic: a retried call coming back with an old tag must not pull the clock back.
  v = math.max(tonumber(redis.call('HGET', KEYS[1], '~v') or '0'), headTag - 1)
else
  local solo = redis.call('HGET', KEYS[1], '~solo')
  local waiting = redis.call('LLEN', KEYS[4])
  if waiting == 0 or solo == tenant then
    if solo ~= tenant then redis.call('HSET', KEYS[1], '~solo', tenant) end
    return 0
  end
  -- No tagged call waits: every tenant is served up to the highest tag handed out.
  v = tonumber(redis.call('HGET', KEYS[1], '~max') or '0')
  if v >= tonumber(ARGV[4]) then
    redis.call('DEL', KEYS[1])
    v = 0
  end
  -- The calls waiting untagged (the lone tenant's) take the next tags in their order, as BullMQ's
  -- own priority change would move them: a counted score in the prioritized set, the job's field.
  local ids = redis.call('LRANGE', KEYS[4], 0, -1)
  local counter = redis.call('INCRBY', KEYS[5], #ids) - #ids
  local tag = v
  for i = #ids, 1, -1 do
    -- (BullMQ before v5 kept `0:` markers in the list: never a call.)
    if string.sub(ids[i], 1, 2) ~= '0:' then
      tag = math.min(tag + 1, limit)
      counter = counter + 1
      redis.call('ZADD', KEYS[2], tag * 0x100000000 + counter % 0x100000000, ids[i])
      redis.call('HSET', ARGV[5] .. ids[i], 'priority', tag)
    end
  end
  redis.call('DEL', KEYS[4])
  redis.call('HDEL', KEYS[1], '~solo')
  if solo then redis.call('HSET', KEYS[1], solo, tag) end
  redis.call('HSET', KEYS[1], '~max', tag)
end

local last = tonumber(redis.call('HGET', KEYS[1], tenant) or '0')
local first = math.min(math.max(last, v) + 1, limit)
local final = math.min(first + n - 1, limit)
local max = tonumber(redis.call('HGET', KEYS[1], '~max') or '0')
redis.call('HSET', KEYS[1], tenant, final, '~v', v, '~max', math.max(max, final))
return first
