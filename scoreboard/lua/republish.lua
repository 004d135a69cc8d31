-- After a board period's ranking changed outside a batch (reconcile): bump the version,
-- cache its top 100 and top 10, and publish the top 10 if it changed, in the message shape
-- of publish.lua (no personal events).
-- KEYS: 1 names, 2 version.  ARGV: 1 channel, 2 board ttl, 3 base, 4 board, 5 period
-- Returns {version, 1 if the top 10 changed else 0}.
local version = bump_version(KEYS[2])
local body10, changed = store_and_compare(ARGV[3], KEYS[1], ARGV[4], ARGV[5], version, tonumber(ARGV[2]))
if changed then
  redis.call('PUBLISH', ARGV[1], string.format('{"version":%.0f,"boards":{%s:%s},"personal":[]}', version,
    json_text(ARGV[4]), body10))
end
return {string.format('%.0f', version), changed and 1 or 0}
