-- Once per closed period: tell the board's viewers (``period_closed`` with the final top 10
-- and the next period) and show them the new period's board, in one message.
-- KEYS: 1 names, 2 version, 3 the closed period's announced flag
-- ARGV: 1 channel, 2 board ttl, 3 board, 4 the period_closed JSON, 5 the new period's base
--       ('' when none is open), 6 its key
-- Returns the version published, or 0 when the period was announced already.
if not redis.call('SET', KEYS[3], '1', 'NX') then return 0 end
local version = bump_version(KEYS[2])
local boards = ''
if ARGV[5] ~= '' and redis.call('EXISTS', ARGV[5] .. ':ready') == 1 then
  local body10 = store_and_compare(ARGV[5], KEYS[1], ARGV[3], ARGV[6], version, tonumber(ARGV[2]))
  boards = json_text(ARGV[3]) .. ':' .. body10
end
redis.call('PUBLISH', ARGV[1], string.format('{"version":%.0f,"closed":[%s],"boards":{%s},"personal":[]}',
  version, ARGV[4], boards))
return version
