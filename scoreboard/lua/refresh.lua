-- Fill the board cache from the ranking if it is missing (one fill, however many ask).
-- KEYS: 1 rank, 2 names, 3 ready, 4 version, 5 board top, 6 board top10
-- ARGV: 1 cache ttl, 2 'force' to rebuild even when present
-- Returns {'notready'} while the ranking is being rebuilt, else
-- {'ok', top10 body, top body, 1 if this call filled the cache else 0}.
if redis.call('EXISTS', KEYS[3]) == 0 then return {'notready'} end
if ARGV[2] ~= 'force' then
  local top10 = redis.call('GET', KEYS[6])
  local top = redis.call('GET', KEYS[5])
  if top10 and top then return {'ok', top10, top, 0} end
end
local version = tonumber(redis.call('GET', KEYS[4]) or '0')
if version == 0 then version = bump_version(KEYS[4]) end
local body10 = store_board(KEYS[1], KEYS[2], KEYS[5], KEYS[6], version, tonumber(ARGV[1]))
return {'ok', body10, redis.call('GET', KEYS[5]), 1}
