-- Merge a chunk of users read from PostgreSQL into the ranking (see ranking.lua).
-- KEYS: 1 rank, 2 seqs, 3 members, 4 names.  ARGV: groups of 5 (uid, seq, score, member, name)
local n = 0
for i = 1, #ARGV, 5 do
  n = n + set_entry(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4])
end
return n
