-- Seal a batch (no more submissions join it) and return its submissions: for each id in
-- the batch list, {id, then the submission hash's values of the fields asked for}
-- (false for a field, or a whole record, that is gone).
-- KEYS: 1 batch:open, 2 the batch list.  ARGV: 1 batch id, 2 submission key prefix,
--       3.. the field names
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
local ids = redis.call('LRANGE', KEYS[2], 0, -1)
local fields = {unpack(ARGV, 3)}
local out = {}
for k, sid in ipairs(ids) do
  local values = redis.call('HMGET', ARGV[2] .. sid, unpack(fields))
  table.insert(values, 1, sid)
  out[k] = values
end
return out
