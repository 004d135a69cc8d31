-- Fill a board period's cache from its ranking if it is missing (one fill, however many ask).
-- KEYS: 1 names, 2 version.  ARGV: 1 base, 2 board, 3 period, 4 cache ttl, 5 'force' to rebuild
-- even when present.
-- Returns {'notready'} while the ranking is being rebuilt, else
-- {'ok', top10 body, top body, 1 if this call filled the cache else 0}.
local base = ARGV[1]
if redis.call('EXISTS', base .. ':ready') == 0 then return {'notready'} end
if ARGV[5] ~= 'force' then
  local top10 = redis.call('GET', base .. ':top10')
  local top = redis.call('GET', base .. ':top')
  if top10 and top then return {'ok', top10, top, 0} end
end
local version = tonumber(redis.call('GET', KEYS[2]) or '0')
if version == 0 then version = bump_version(KEYS[2]) end
local body10 = store_board(base, KEYS[1], ARGV[2], ARGV[3], version, tonumber(ARGV[4]))
return {'ok', body10, redis.call('GET', base .. ':top'), 1}
