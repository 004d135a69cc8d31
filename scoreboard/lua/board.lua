-- Shared: JSON is built with an encoder. Text goes through cjson.encode (quotes, escapes);
-- numbers are formatted with %.0f, since cjson writes integers above 10^14 in exponent form.
local function json_text(s) return cjson.encode(s) end

-- Shared: build the cached board from the ranking. Competition ranks (1, 2, 2, 4);
-- the sorted set already orders equal scores by who reached them first.
local function board_entries(rank, names, limit)
  local raw = redis.call('ZREVRANGE', rank, 0, limit - 1, 'WITHSCORES')
  local uids = {}
  for i = 1, #raw, 2 do
    uids[#uids + 1] = string.format('%.0f', tonumber(string.match(raw[i], ':(%d+)$')))
  end
  local parts = {}
  if #uids == 0 then return parts end
  local usernames = redis.call('HMGET', names, unpack(uids))
  local pos, prev = 0, nil
  for j = 1, #uids do
    local score = tonumber(raw[2 * j])
    if score ~= prev then pos = j; prev = score end
    parts[j] = string.format('{"rank":%d,"user_id":%.0f,"username":%s,"score":%.0f}',
      pos, tonumber(uids[j]), json_text(usernames[j] or ''), score)
  end
  return parts
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Write both cached bodies (top 100 and the ready-made top 10); return the top 10 body
-- and its entries alone (to tell whether the top 10 changed).
local function store_board(rank, names, top_key, top10_key, version, ttl)
  local parts = board_entries(rank, names, 100)
  local tail = string.format('],"version":%.0f,"generated_at":%.0f}', version, now_ms())
  local ten = {}
  for j = 1, math.min(10, #parts) do ten[j] = parts[j] end
  local entries10 = table.concat(ten, ',')
  local body10 = '{"entries":[' .. entries10 .. tail
  redis.call('SET', top_key, '{"entries":[' .. table.concat(parts, ',') .. tail, 'EX', ttl)
  redis.call('SET', top10_key, body10, 'EX', ttl)
  return body10, entries10
end
