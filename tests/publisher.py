"""Publish messages shaped as ``scoreboard/lua/publish.lua`` publishes them, for tests and
benchmarks that need more (or bigger) events than real submissions give quickly."""

from __future__ import annotations

import orjson

from scoreboard.redis_client import Keys

_PUBLISH = """
local t = redis.call('TIME')
local v = math.max(tonumber(redis.call('GET', KEYS[1]) or '0') + 1, tonumber(t[1]) * 1000000 + tonumber(t[2]))
local vs = string.format('%.0f', v)
redis.call('SET', KEYS[1], vs)
local boards = ''
if ARGV[2] ~= '' then
  local board = '{"board":"all-time","period":"all","entries":' .. ARGV[2] .. ',"version":' .. vs ..
    ',"generated_at":' .. t[1] .. '000}'
  redis.call('SET', KEYS[3], board, 'EX', 5)
  boards = '"all-time":' .. board
end
local personal = {}
for i = 3, #ARGV, 3 do
  local id = vs .. '-' .. string.format('%d', (i - 3) / 3 + 1)
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', 10000, id, 'user', ARGV[i], 'event', ARGV[i + 1], 'data', ARGV[i + 2])
  personal[#personal + 1] = '{"id":"' .. id .. '","user_id":' .. ARGV[i] .. ',"event":"' .. ARGV[i + 1] ..
    '","data":' .. ARGV[i + 2] .. '}'
end
redis.call('PUBLISH', ARGV[1], '{"version":' .. vs .. ',"boards":{' .. boards .. '},"personal":[' ..
  table.concat(personal, ',') .. ']}')
return vs
"""


class Publisher:
    """Bumps the board version, appends to the capped stream, caches the board, publishes."""

    def __init__(self, r, settings):
        self.keys = Keys(settings.redis_prefix)
        self.script = r.register_script(_PUBLISH)

    def publish(self, entries: list[dict] | None = None, personal: list[tuple[int, str, dict]] = ()) -> int:
        args = [self.keys.events_channel, orjson.dumps(entries).decode() if entries is not None else ""]
        for user_id, event, data in personal:
            args += [user_id, event, orjson.dumps(data).decode()]
        k = self.keys
        return int(self.script(keys=[k.board_version, k.events_log, k.board_top10("all-time", "all")], args=args))


def board_entries(scores: list[int], name: str = "player") -> list[dict]:
    return [{"rank": i + 1, "user_id": 1000 + i, "username": f"{name}{i}", "score": s} for i, s in enumerate(scores)]
