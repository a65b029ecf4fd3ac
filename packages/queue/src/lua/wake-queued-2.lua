--[[
  Puts a tool in the fleet's ready set if its new call's job exists. Sent right behind the job's add
  on the same connection of a single Redis node, it finds the job, since Redis runs a connection's
  commands in order; it finds none when the add was not ahead of it after all (BullMQ had not sent
  it yet, or sent it again after NOSCRIPT), and the caller wakes the tool once the add is done.
  Never on a cluster: the two keys live in different slots.

  KEYS[1] the call's job hash
  KEYS[2] the ready set

  ARGV[1] now (ms)
  ARGV[2] the tool

  Returns 1 when the tool was woken, 0 when the job does not exist (yet).
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], 'LT', ARGV[1], ARGV[2])
return 1
