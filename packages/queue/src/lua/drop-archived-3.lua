--[[
  Drops calls of one tool from Redis once the history store has acknowledged them. A call is dropped
  only if it is still where the archiver read it, with the same score (its finish time): a failed call
  retried in between has left the failed set and stays, and is archived again when it ends again.

  Input:
    KEYS[1] the tool queue's completed set (zset: job id -> finished ms)
    KEYS[2] the tool queue's failed set (zset: job id -> finished ms)
    KEYS[3] the tool's tombstones (zset: call id -> ms it was cancelled or rejected)

    ARGV[1] BullMQ key prefix of the tool's queue (`<prefix>:{tool}:`): job hashes are ARGV[1]..id
    ARGV[2] prefix of the tool's per-call keys (`<prefix>:{tool}:`): cancel markers and approvals
    ARGV[3..] triples: set index (1, 2 or 3), call id, score as read

  All keys named here and built from ARGV[1], ARGV[2] carry the tool's `{tool}` hash tag: one slot.

  Output: ids dropped
]]
local dropped = {}
for i = 3, #ARGV, 3 do
  local set = KEYS[tonumber(ARGV[i])]
  local id = ARGV[i + 1]
  local score = redis.call('ZSCORE', set, id)
  if score and tonumber(score) == tonumber(ARGV[i + 2]) then
    redis.call('ZREM', set, id)
    redis.call('DEL', ARGV[1] .. id, ARGV[1] .. id .. ':logs', ARGV[2] .. 'cancel:' .. id, ARGV[2] .. 'approved:' .. id)
    dropped[#dropped + 1] = id
  end
end
return dropped
