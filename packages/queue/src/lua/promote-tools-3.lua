--[[
  Makes tools whose wait is over runnable again, for the workers' scheduler: tools whose timer is
  due (a delayed call, a retry's backoff, a rate limit or hold running out) and tools a worker
  claimed and did not give back in time (it died between taking the tool and releasing it).

  KEYS[1] ready    zset tool -> when it became runnable (ms); workers pop the oldest
  KEYS[2] timers   zset tool -> when it may have work (ms)
  KEYS[3] claimed  zset tool -> when the worker's claim lapses (ms)

  ARGV[1] now (ms)

  Returns the number of tools in ready afterwards.
]]
local now = tonumber(ARGV[1])
for _, key in ipairs({KEYS[2], KEYS[3]}) do
  local due = redis.call('ZRANGEBYSCORE', key, '-inf', now, 'WITHSCORES', 'LIMIT', 0, 1000)
  for i = 1, #due, 2 do
    -- LT keeps an earlier place in line if the tool is already waiting there.
    redis.call('ZADD', KEYS[1], 'LT', due[i + 1], due[i])
    redis.call('ZREM', key, due[i])
  end
end
return redis.call('ZCARD', KEYS[1])
