-- Correct entries of a board period's ranking that differ from PostgreSQL (reconcile).
-- Unlike a batch, an entry at the same history id is rewritten, since its content is what
-- is wrong; an entry at a newer history id than was read is left alone.
-- KEYS: 1 names
-- ARGV: 1 base, 2 n fixes, then per fix (uid, history id, score, member or '', name),
--       then members no user owns (to remove).
-- Returns {fixed, orphans removed}.
local n = tonumber(ARGV[2])
local fixed = set_entries(ARGV[1], KEYS[1], ARGV, 3, n, true)
local removed = 0
local zkey = ARGV[1] .. ':z'
for i = 3 + 5 * n, #ARGV do
  local member = ARGV[i]
  if read_guard(ARGV[1], string.format('%.0f', member_uid(member))) ~= member then
    removed = removed + redis.call('ZREM', zkey, member)
  end
end
return {fixed, removed}
