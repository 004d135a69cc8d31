-- After the ranking changed outside a batch (reconcile, and admin bans or reverts): bump
-- the version, cache the top 100 and top 10, and publish the top 10 if it changed, in the
-- message shape of publish.lua (no personal events).
-- KEYS: 1 rank, 2 names, 3 version, 4 board top, 5 board top10, 6 last published top 10
-- ARGV: 1 channel, 2 board ttl
-- Returns {version, 1 if the top 10 changed else 0}.
local version = bump_version(KEYS[3])
local body10, entries10 = store_board(KEYS[1], KEYS[2], KEYS[4], KEYS[5], version, tonumber(ARGV[2]))
local changed = entries10 ~= redis.call('GET', KEYS[6])
if changed then
  redis.call('SET', KEYS[6], entries10)
  redis.call('PUBLISH', ARGV[1], string.format('{"version":%.0f,"board":%s,"personal":[]}', version, body10))
end
return {string.format('%.0f', version), changed and 1 or 0}
