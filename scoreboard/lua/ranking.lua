-- Shared: the ranking of one board period, under a base key '<prefix>b:<board>:<period>'.
--   <base>:z       sorted set: score = points; member = 12 bytes, 7 of (2^53 - 1 - reached-at
--                  microseconds) then 5 of the user id, big-endian (ZREVRANGE: equal scores,
--                  who reached them first first, then the higher user id; as PostgreSQL orders)
--   <base>:g:<n>   the guard of users n*128 .. n*128+127 (small hashes: field uid % 128, value
--                  the user's member then their history id, or '-' then the history id when the
--                  user is off the board). An entry only moves forward: an update older than
--                  what Redis holds (a lower history id) is ignored, so batches published out
--                  of order, and rebuilds racing with batches, converge on PostgreSQL.
--   <base>:ready   set once the ranking holds every entry of PostgreSQL (after a rebuild)
-- The usernames are kept once for all boards, in one hash (uid -> name).

local MEMBER_LEN = 12

-- One command over a long list of arguments, in slices that Lua's unpack can take
-- (``step`` even, so that pairs stay together).
local function call_sliced(cmd, key, list, step)
  for first = 1, #list, step do
    redis.call(cmd, key, unpack(list, first, math.min(first + step - 1, #list)))
  end
end

local function guard_of(base, uid)
  local n = tonumber(uid)
  return base .. ':g:' .. string.format('%d', math.floor(n / 128)), string.format('%d', n % 128)
end

-- The user id in a member (its last 5 bytes).
local function member_uid(member)
  local a, b, c, d, e = string.byte(member, MEMBER_LEN - 4, MEMBER_LEN)
  return (((a * 256 + b) * 256 + c) * 256 + d) * 256 + e
end

-- A user's guard: their member (false when off the board or unknown) and history id (nil: none).
local function read_guard(base, uid)
  local key, f = guard_of(base, uid)
  local value = redis.call('HGET', key, f)
  if not value then return false, nil end
  if string.sub(value, 1, 1) == '-' then return false, tonumber(string.sub(value, 2)) end
  return string.sub(value, 1, MEMBER_LEN), tonumber(string.sub(value, MEMBER_LEN + 1))
end

-- Set the entries of ``count`` users, given in ``args`` from ``first`` on as groups of 5
-- (uid, history id, score, member or '' to take off the board, name); ``force`` rewrites
-- an entry at the same history id too (reconcile: its content is what is wrong).
-- Returns how many were set, each user's member now on the board (false: off), and the
-- score of the ones set, by uid.
local function set_entries(base, names, args, first, count, force)
  local zkey = base .. ':z'
  local zadd, zrem, hnames = {}, {}, {}
  local now, scores, n = {}, {}, 0
  for j = 1, count do
    local i = first + 5 * (j - 1)
    local uid, seq, score, member, name = args[i], tonumber(args[i + 1]), args[i + 2], args[i + 3], args[i + 4]
    local old, old_seq = read_guard(base, uid)
    if old_seq ~= nil and (old_seq > seq or (old_seq == seq and not force)) then
      now[uid] = old
    else
      if old then zrem[#zrem + 1] = old end
      local key, f = guard_of(base, uid)
      if member == '' then
        redis.call('HSET', key, f, '-' .. string.format('%.0f', seq))
        now[uid] = false
      else
        zadd[#zadd + 1] = score
        zadd[#zadd + 1] = member
        redis.call('HSET', key, f, member .. string.format('%.0f', seq))
        now[uid] = member
        scores[uid] = tonumber(score)
      end
      hnames[#hnames + 1] = uid
      hnames[#hnames + 1] = name
      n = n + 1
    end
  end
  call_sliced('ZREM', zkey, zrem, 1000)
  call_sliced('ZADD', zkey, zadd, 1000)
  call_sliced('HSET', names, hnames, 1000)
  return n, now, scores
end

-- Competition rank (1, 2, 2, 4) of ``score`` on the board, for user ``uid`` whose own entry
-- (``own`` score, or false) may be on it: others with more points, plus one.
local function rank_of(zkey, score, own)
  local n = redis.call('ZCOUNT', zkey, '(' .. string.format('%.0f', score), '+inf')
  if own and own > score then n = n - 1 end
  return n + 1
end
