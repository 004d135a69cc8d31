-- Shared by the scripts that change the ranking. A user's entry only moves forward:
-- an update older than what Redis holds (lower history id) is ignored, so batches
-- published out of order, and rebuilds racing with batches, converge on PostgreSQL.
-- Entry: sorted set member '<inverted reached-at us>:<user id>' (ties: earlier first),
-- with the user's history id and member in hashes, and the username for the board.
local function set_entry(rank, seqs, members, names, uid, seq, score, member, name)
  local cur = redis.call('HGET', seqs, uid)
  if cur and tonumber(cur) >= tonumber(seq) then return 0 end
  local old = redis.call('HGET', members, uid)
  if old then redis.call('ZREM', rank, old) end
  if member == '' then
    redis.call('HDEL', members, uid)
  else
    redis.call('ZADD', rank, score, member)
    redis.call('HSET', members, uid, member)
  end
  redis.call('HSET', seqs, uid, seq)
  redis.call('HSET', names, uid, name)
  return 1
end
