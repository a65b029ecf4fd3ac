--[[
  Counts one request of an API key in its one-second window; the window's counter expires on its own.

  KEYS[1] the key's counter for this second

  ARGV[1] how long the counter lives (ms), a little over its second

  Returns the requests counted in the window, this one included.
]]
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return count
