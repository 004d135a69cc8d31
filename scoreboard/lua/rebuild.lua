-- Merge a chunk of entries read from PostgreSQL into a board period's ranking (ranking.lua).
-- KEYS: 1 names.  ARGV: 1 base, then groups of 5 (uid, history id, score, member, name)
return (set_entries(ARGV[1], KEYS[1], ARGV, 2, (#ARGV - 1) / 5, false))
