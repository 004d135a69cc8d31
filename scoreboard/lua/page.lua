-- A page of a board period's ranking, after a cursor (or from the top), or around a user.
-- KEYS: 1 names.  ARGV: 1 base, 2 limit, 3 mode ('after' or 'around'),
--   after:  4 cursor score ('' for the first page), 5 cursor member
--   around: 4 user id
-- Returns {total, start index, then per entry (member, score, rank, username)}; for
-- 'around' when the user is off the board, {total, -1}.
local base, limit, mode = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local zkey = base .. ':z'
local total = redis.call('ZCARD', zkey)

-- Members compare as (first 7 bytes, last 5 bytes) numbers, each exact in a double.
local function key_of(member)
  local t, u = 0, 0
  for k = 1, 7 do t = t * 256 + string.byte(member, k) end
  for k = 8, 12 do u = u * 256 + string.byte(member, k) end
  return t, u
end
local function after(a, b)  -- whether member a comes after member b among equal scores (ZREVRANGE order)
  local ta, ua = key_of(a)
  local tb, ub = key_of(b)
  return ta < tb or (ta == tb and ua < ub)
end

local start = 0
if mode == 'around' then
  local member = read_guard(base, ARGV[4])
  local index = member and redis.call('ZREVRANK', zkey, member)
  if not index then return {total, -1} end
  start = index - math.floor((limit - 1) / 2)
  if start + limit > total then start = total - limit end
  if start < 0 then start = 0 end
elseif ARGV[4] ~= '' then
  local score, member = ARGV[4], ARGV[5]
  local now = redis.call('ZSCORE', zkey, member)
  if now and tonumber(now) == tonumber(score) then
    start = redis.call('ZREVRANK', zkey, member) + 1
  else  -- the cursor's entry moved or left: start after where it was
    local lo = redis.call('ZCOUNT', zkey, '(' .. score, '+inf')
    local hi = lo + redis.call('ZCOUNT', zkey, score, score)
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if after(redis.call('ZREVRANGE', zkey, mid, mid)[1], member) then hi = mid else lo = mid + 1 end
    end
    start = lo
  end
end

local raw = redis.call('ZREVRANGE', zkey, start, start + limit - 1, 'WITHSCORES')
local out = {total, start}
if #raw == 0 then return out end
local uids = {}
for i = 1, #raw, 2 do uids[#uids + 1] = string.format('%.0f', member_uid(raw[i])) end
local names = redis.call('HMGET', KEYS[1], unpack(uids))
local rank, prev = 0, nil
for j = 1, #uids do
  local score = raw[2 * j]
  if score ~= prev then rank = redis.call('ZCOUNT', zkey, '(' .. score, '+inf') + 1; prev = score end
  out[#out + 1] = raw[2 * j - 1]
  out[#out + 1] = score
  out[#out + 1] = rank
  out[#out + 1] = names[j] or ''
end
return out
