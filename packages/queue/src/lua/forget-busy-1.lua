--[[
  Drops a tool from the busy set, only if nobody has marked it busy since the caller looked (a
  worker that takes a call of it marks it again first, so its entry is never dropped under it).

  KEYS[1] busy   zset tool -> when a worker last said it has calls running (ms)

  ARGV[1] tool
  ARGV[2] the score the caller read

  Returns 1 if dropped, 0 if not.
]]
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
