-- Correct ranking entries that differ from PostgreSQL (reconcile_ranking).
-- Unlike set_entry (ranking.lua), an entry at the same history id is rewritten, since its
-- content is what is wrong; an entry at a newer history id than was read is left alone.
-- KEYS: 1 rank, 2 seqs, 3 members, 4 names
-- ARGV: 1 n fixes, then per fix (uid, seq, score, member or '' to unrank, name),
--       then per orphan (uid, member): a sorted set member its user does not own.
-- Returns {fixed, orphans removed}.
local n = tonumber(ARGV[1])
local fixed, removed = 0, 0
local i = 2
for _ = 1, n do
  local uid, seq, score, member, name = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  i = i + 5
  local cur = redis.call('HGET', KEYS[2], uid)
  if not cur or tonumber(cur) <= tonumber(seq) then
    local old = redis.call('HGET', KEYS[3], uid)
    if old then redis.call('ZREM', KEYS[1], old) end
    if member == '' then
      redis.call('HDEL', KEYS[3], uid)
    else
      redis.call('ZADD', KEYS[1], score, member)
      redis.call('HSET', KEYS[3], uid, member)
    end
    redis.call('HSET', KEYS[2], uid, seq)
    redis.call('HSET', KEYS[4], uid, name)
    fixed = fixed + 1
  end
end
while i < #ARGV do
  local uid, member = ARGV[i], ARGV[i + 1]
  i = i + 2
  if redis.call('HGET', KEYS[3], uid) ~= member then
    removed = removed + redis.call('ZREM', KEYS[1], member)
  end
end
return {fixed, removed}
