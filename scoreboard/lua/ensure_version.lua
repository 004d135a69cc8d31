-- The board version; when Redis lost it, start it again from the clock (see version.lua),
-- so it never goes back to 0.  KEYS: 1 version
local current = redis.call('GET', KEYS[1])
if current then return current end
return string.format('%.0f', bump_version(KEYS[1]))
