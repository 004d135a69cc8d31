-- Accept one checked submission, atomically: burn the action token, store the
-- submission, and put it in the open batch (opening a new one when full).
-- It is accepted at Redis's clock, read here: one clock for every web process, read in the
-- step that puts the submission in a batch, so that no submission is accepted before the
-- closing watermark (``scoreboard/closing.py``) once that has been read.
-- KEYS: 1 token, 2 submission, 3 batch:open, 4 batch:seq, 5 batches, 6 pending count
-- ARGV: 1 user_id, 2 batch max, 3 batch key prefix, 4 submission id,
--       5 pending cap (0 = none), 6.. submission fields (name, value, ...)
-- Returns {'ok', batch id, 1 when it opened the batch, accepted at (unix ms)} or {error}.
local used = redis.call('HGET', KEYS[1], 'used')
if not used then return {'token_unknown'} end
if redis.call('HGET', KEYS[1], 'user_id') ~= ARGV[1] then return {'token_unknown'} end
if used ~= '0' then return {'token_used'} end
local cap = tonumber(ARGV[5])
if cap > 0 and tonumber(redis.call('GET', KEYS[6]) or '0') >= cap then return {'queue_full'} end
redis.call('HSET', KEYS[1], 'used', '1')
local time = redis.call('TIME')
local now = string.format('%d%03d', time[1], math.floor(tonumber(time[2]) / 1000))
local bid = redis.call('GET', KEYS[3])
local new = 0
if bid and redis.call('LLEN', ARGV[3] .. bid) >= tonumber(ARGV[2]) then bid = false end
if not bid then
  bid = tostring(redis.call('INCR', KEYS[4]))
  redis.call('SET', KEYS[3], bid)
  redis.call('ZADD', KEYS[5], now, bid)
  new = 1
end
redis.call('HSET', KEYS[2], 'batch', bid, 'accepted_at', now, unpack(ARGV, 6))
redis.call('RPUSH', ARGV[3] .. bid, ARGV[4])
redis.call('INCR', KEYS[6])
return {'ok', bid, new, now}
