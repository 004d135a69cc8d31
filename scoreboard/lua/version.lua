-- Shared: move the board version forward, never back: max(current + 1, Redis time in us),
-- the rule publish.lua follows, so versions written by every path compare.
local function bump_version(key)
  local t = redis.call('TIME')
  local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local version = math.max(tonumber(redis.call('GET', key) or '0') + 1, now_us)
  redis.call('SET', key, string.format('%.0f', version))
  return version
end
