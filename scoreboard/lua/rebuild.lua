-- Merge a chunk of users read from PostgreSQL into the ranking (see ranking.lua).
-- KEYS: 1 rank, 2 seqs, 3 members, 4 names.  ARGV: groups of 5 (uid, seq, score, member, name)
return (set_entries(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV, 1, #ARGV / 5))
