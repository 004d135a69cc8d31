-- Accept one checked submission, atomically: burn the action token, store the
-- submission, and put it in the open batch (opening a new one when full).
-- KEYS: 1 token, 2 submission, 3 batch:open, 4 batch:seq, 5 batches, 6 pending count
-- ARGV: 1 user_id, 2 batch max, 3 now ms, 4 batch key prefix, 5 submission id,
--       6 pending cap (0 = none), 7.. submission fields (name, value, ...)
local used = redis.call('HGET', KEYS[1], 'used')
if not used then return {'token_unknown'} end
if redis.call('HGET', KEYS[1], 'user_id') ~= ARGV[1] then return {'token_unknown'} end
if used ~= '0' then return {'token_used'} end
local cap = tonumber(ARGV[6])
if cap > 0 and tonumber(redis.call('GET', KEYS[6]) or '0') >= cap then return {'queue_full'} end
redis.call('HSET', KEYS[1], 'used', '1')
local bid = redis.call('GET', KEYS[3])
local new = 0
if bid and redis.call('LLEN', ARGV[4] .. bid) >= tonumber(ARGV[2]) then bid = false end
if not bid then
  bid = tostring(redis.call('INCR', KEYS[4]))
  redis.call('SET', KEYS[3], bid)
  redis.call('ZADD', KEYS[5], ARGV[3], bid)
  new = 1
end
redis.call('HSET', KEYS[2], 'batch', bid, unpack(ARGV, 7))
redis.call('RPUSH', ARGV[4] .. bid, ARGV[5])
redis.call('INCR', KEYS[6])
return {'ok', bid, new}
