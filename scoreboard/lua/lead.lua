-- Take a lock, or keep it if we hold it.  KEYS: 1 lock.  ARGV: 1 owner, 2 ttl seconds
-- Returns 1 while the caller holds the lock, 0 when someone else does.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 1
end
return 0
