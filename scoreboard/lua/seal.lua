-- Seal a batch (no more submissions join it) and return its submission ids.
-- KEYS: 1 batch:open, 2 the batch list.  ARGV: 1 batch id
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return redis.call('LRANGE', KEYS[2], 0, -1)
