--[[
  Admits one request of an API key if fewer than the limit were admitted in the last second, a
  sliding second estimated from two one-second counters: this second's, and the previous second's
  weighted by the share of it that lies within the last second. A fixed window let up to twice the
  limit through across its boundary; a log of each request's time would hold up to the limit's
  number of entries per key.

  KEYS[1] the key's counter for this second
  KEYS[2] the key's counter for the previous second (same hash tag)

  ARGV[1] the limit per second
  ARGV[2] thousandths of the previous second that lie within the last second (1000 - ms into this one)
  ARGV[3] how long a counter lives (ms): through the second after its own

  Returns 1 when admitted (and counted), 0 when refused. Refusals are not counted, so a client over
  the limit still gets the limit through.
]]
local counts = redis.call('MGET', KEYS[1], KEYS[2])
local current = tonumber(counts[1] or '0')
local previous = tonumber(counts[2] or '0')
if current + previous * tonumber(ARGV[2]) / 1000 >= tonumber(ARGV[1]) then return 0 end
if redis.call('INCR', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return 1
