--[[
  The deadline sweep's lease, and the tools the sweep looks at this time: a page of each of the
  scheduler's sets (every tool with a queued call is in one of them: runnable, claimed by a worker,
  on a timer, or with calls running) and the tools whose deadline index has an entry due. Only the
  lease holder sweeps; it renews the lease on each sweep, another process takes over when it lapses.

  KEYS[1] lease           the sweeping process's owner id
  KEYS[2] ready           zset tool -> when it became runnable (ms)
  KEYS[3] claimed         zset tool -> when the worker's claim lapses (ms)
  KEYS[4] timers          zset tool -> when it may have work (ms)
  KEYS[5] busy            zset tool -> when a worker last said it runs calls of it (ms)
  KEYS[6] deadline tools  zset tool -> earliest entry of its deadline index (ms)

  ARGV[1] owner id
  ARGV[2] lease duration (ms)
  ARGV[3] now (ms)
  ARGV[4] tools read per set, about (ZSCAN's COUNT; a small set is read whole)
  ARGV[5..8] ZSCAN cursors of KEYS[2..5] ('0' to start over)

  Returns nil when another process holds the lease; else {cursor x4, tool...} (a tool may repeat).
]]
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
elseif not redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
  return nil
end
local out = {'0', '0', '0', '0'}
for i = 2, 5 do
  local page = redis.call('ZSCAN', KEYS[i], ARGV[i + 3], 'COUNT', ARGV[4])
  out[i - 1] = page[1]
  local members = page[2]
  for j = 1, #members, 2 do out[#out + 1] = members[j] end
end
local due = redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', ARGV[3], 'LIMIT', 0, ARGV[4])
for _, tool in ipairs(due) do out[#out + 1] = tool end
return out
