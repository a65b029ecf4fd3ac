--[[
  Start-time fair queueing of a tool's calls across tenants, and the tool's deadline index.

  Each new call without an explicit priority gets a start tag: one past the later of its tenant's
  last tag and the tool's virtual time (the tag of the next call to start). BullMQ orders its
  prioritized set by priority, then by arrival, so using the tag as the BullMQ priority hands out
  starts round robin between the tenants with calls waiting, in each tenant's own order, and a
  tenant back from idle joins the round instead of jumping ahead with tags from the past.

  KEYS[1] fair         hash tenant -> tag of its last call; `~v` the virtual time; `~max` highest tag
  KEYS[2] prioritized  BullMQ's prioritized zset of the tool (score = priority * 2^32 + arrival)
  KEYS[3] deadlines    zset call id -> deadline (ms)

  ARGV[1] tenant
  ARGV[2] number of calls to tag (0: explicit priority, nothing to tag)
  ARGV[3] tag limit: tags above it are clamped (BullMQ priorities stop at 2^21)
  ARGV[4] tag count at which numbering restarts, once no tagged call waits
  ARGV[5..] deadline, call id pairs to index

  Returns the first call's tag (the others follow one by one), or 0 when nothing was tagged.
]]
for i = 5, #ARGV, 2 do
  redis.call('ZADD', KEYS[3], ARGV[i], ARGV[i + 1])
end

local n = tonumber(ARGV[2])
if n == 0 then return 0 end
local limit = tonumber(ARGV[3])

local v = tonumber(redis.call('HGET', KEYS[1], '~v') or '0')
local head = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
local headTag = head[2] and math.floor(tonumber(head[2]) / 0x100000000)
if headTag and headTag > 0 and headTag <= limit then
  -- Monotonic: a retried call coming back with an old tag must not pull the clock back.
  v = math.max(v, headTag - 1)
else
  -- No tagged call waits: every tenant is served up to the highest tag handed out.
  v = tonumber(redis.call('HGET', KEYS[1], '~max') or '0')
  if v >= tonumber(ARGV[4]) then
    redis.call('DEL', KEYS[1])
    v = 0
  end
end

local last = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local first = math.min(math.max(last, v) + 1, limit)
local final = math.min(first + n - 1, limit)
local max = tonumber(redis.call('HGET', KEYS[1], '~max') or '0')
redis.call('HSET', KEYS[1], ARGV[1], final, '~v', v, '~max', math.max(max, final))
return first
