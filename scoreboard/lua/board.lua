-- Shared: JSON is built with an encoder. Text goes through cjson.encode (quotes, escapes);
-- numbers are formatted with %.0f, since cjson writes integers above 10^14 in exponent form.
local function json_text(s) return cjson.encode(s) end

-- Shared (needs ranking.lua): the entries of a board period's top ``limit`` as JSON objects.
-- Competition ranks (1, 2, 2, 4); the sorted set already orders equal scores by who
-- reached them first.
local function board_entries(base, names, limit)
  local raw = redis.call('ZREVRANGE', base .. ':z', 0, limit - 1, 'WITHSCORES')
  local uids = {}
  for i = 1, #raw, 2 do
    uids[#uids + 1] = string.format('%.0f', member_uid(raw[i]))
  end
  local parts = {}
  if #uids == 0 then return parts end
  local usernames = redis.call('HMGET', names, unpack(uids))
  local pos, prev = 0, nil
  for j = 1, #uids do
    local score = tonumber(raw[2 * j])
    if score ~= prev then pos = j; prev = score end
    parts[j] = string.format('{"rank":%d,"user_id":%s,"username":%s,"score":%.0f}',
      pos, uids[j], json_text(usernames[j] or ''), score)
  end
  return parts
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Write both cached bodies of a board period (<base>:top, the top 100, and <base>:top10,
-- the ready-made body of the first page); return the top 10 body and its entries alone
-- (to tell whether the top 10 changed).
local function store_board(base, names, board, period, version, ttl)
  local parts = board_entries(base, names, 100)
  local head = string.format('{"board":%s,"period":%s,"entries":[', json_text(board), json_text(period))
  local tail = string.format('],"version":%.0f,"generated_at":%.0f}', version, now_ms())
  local ten = {}
  for j = 1, math.min(10, #parts) do ten[j] = parts[j] end
  local entries10 = table.concat(ten, ',')
  local body10 = head .. entries10 .. tail
  redis.call('SET', base .. ':top', head .. table.concat(parts, ',') .. tail, 'EX', ttl)
  redis.call('SET', base .. ':top10', body10, 'EX', ttl)
  return body10, entries10
end

-- Cache a board period's bodies and tell whether its top 10 changed since it was last
-- published (<base>:last10 holds the entries last published); returns the top 10 body
-- and whether it changed.
local function store_and_compare(base, names, board, period, version, ttl)
  local body10, entries10 = store_board(base, names, board, period, version, ttl)
  local changed = entries10 ~= redis.call('GET', base .. ':last10')
  if changed then redis.call('SET', base .. ':last10', entries10) end
  return body10, changed
end
