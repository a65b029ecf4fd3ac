--[[
  Takes the due entries of one tool's deadline index. A call still waiting (waiting, prioritized,
  delayed, or paused) is taken off BullMQ's list or set and put in the active list under the
  sweeper's lock, so that BullMQ's own moveToFinished ends it failed (the sweeper does that next,
  with the same lock token): the failed set, finishedOn, removeOnFail, the events stream all as
  when a worker fails a call. A call the sweeper took before and did not get to end (its process
  died) is answered again. Entries of calls running (locked by a worker: the processor's business),
  finished or gone are dropped. Entries of the calls answered stay until the sweeper has ended them.

  KEYS[1] deadlines    zset call id -> deadline (ms)
  KEYS[2] wait         BullMQ's wait list of the tool
  KEYS[3] paused       BullMQ's paused list
  KEYS[4] prioritized  BullMQ's prioritized zset
  KEYS[5] delayed      BullMQ's delayed zset
  KEYS[6] active       BullMQ's active list

  ARGV[1] now (ms)
  ARGV[2] due entries looked at, at most
  ARGV[3] job key prefix (`<prefix>:{<tool>}:`)
  ARGV[4] the sweeper's lock token
  ARGV[5] lock duration (ms)
  ARGV[6] approval marker prefix (`<prefix>:{<tool>}:approval:`)
  ARGV[7] long list scans at most: a call in neither set is looked for among the 1,000 oldest of
          the wait list first (due calls are mostly the oldest), then in the whole wait and paused
          lists; past this many whole-list scans, the rest waits for the next run

  Returns {next, more, id...}: the earliest deadline still ahead in the index (ms, -1 when none),
  1 when more entries are due than were looked at, and the calls to end.
]]
local now = tonumber(ARGV[1])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local token = ARGV[4]
local out = {-1, 0}
local drop = {}
local scans = tonumber(ARGV[7])
for _, id in ipairs(due) do
  local jobKey = ARGV[3] .. id
  local lockKey = jobKey .. ':lock'
  local take = false
  -- Finished (or gone) and running calls are read from the job and its lock first: the list scan
  -- below is only for calls in the wait list, which it reads from the oldest end.
  if redis.call('EXISTS', jobKey) == 1 and redis.call('HEXISTS', jobKey, 'finishedOn') == 0 then
    local lock = redis.call('GET', lockKey)
    if lock == token then
      take = true
    elseif not lock then
      local found = redis.call('ZREM', KEYS[4], id) == 1 or redis.call('ZREM', KEYS[5], id) == 1
      if not found and redis.call('LPOS', KEYS[2], id, 'RANK', -1, 'MAXLEN', 1000) then
        found = redis.call('LREM', KEYS[2], -1, id) == 1
      end
      if not found then
        if scans <= 0 then
          out[2] = 1
          break
        end
        scans = scans - 1
        found = redis.call('LREM', KEYS[2], -1, id) == 1 or redis.call('LREM', KEYS[3], -1, id) == 1
      end
      if found then
        redis.call('LPUSH', KEYS[6], id)
        redis.call('SET', lockKey, token, 'PX', ARGV[5])
        -- A call awaiting approval is no longer: approving it now is a conflict.
        redis.call('DEL', ARGV[6] .. id)
        take = true
      end
    end
  end
  if take then out[#out + 1] = id else drop[#drop + 1] = id end
end
if #drop > 0 then redis.call('ZREM', KEYS[1], unpack(drop)) end
if #due == tonumber(ARGV[2]) then out[2] = 1 end
local ahead = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
if ahead[2] then out[1] = tonumber(ahead[2]) end
return out
