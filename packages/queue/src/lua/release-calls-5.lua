--[[
  Calls of one tenant ended without a result to keep (failed, cancelled, rejected, removed): they
  leave the calls in flight, and a result charged for them earlier is given back, which also lifts
  the full marker.

  Input:
    KEYS[1] calls in flight (zset)
    KEYS[2] stored results (zset: call id -> ms when the result expires)
    KEYS[3] stored result sizes (hash: call id -> bytes)
    KEYS[4] stored bytes in total (string)
    KEYS[5] result quota full marker (string)

    ARGV[1..] call ids

  Output: bytes given back
]]
local freed = 0
for i = 1, #ARGV do
  redis.call('ZREM', KEYS[1], ARGV[i])
  local size = redis.call('HGET', KEYS[3], ARGV[i])
  if size then
    freed = freed + tonumber(size)
    redis.call('HDEL', KEYS[3], ARGV[i])
    redis.call('ZREM', KEYS[2], ARGV[i])
  end
end
if freed > 0 then
  local used = redis.call('GET', KEYS[4])
  if used then redis.call('SET', KEYS[4], math.max(0, tonumber(used) - freed), 'KEEPTTL') end
  redis.call('DEL', KEYS[5])
end
return freed
