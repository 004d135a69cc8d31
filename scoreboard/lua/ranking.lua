-- Shared by the scripts that change the ranking. A user's entry only moves forward:
-- an update older than what Redis holds (lower history id) is ignored, so batches
-- published out of order, and rebuilds racing with batches, converge on PostgreSQL.
-- Entry: sorted set member '<inverted reached-at us>:<user id>' (ties: earlier first),
-- with the user's history id and member in hashes, and the username for the board.

-- One command over a long list of arguments, in slices that Lua's unpack can take
-- (``step`` even, so that pairs stay together); returns the reply of each slice.
local function call_sliced(cmd, key, list, step)
  local replies = {}
  for first = 1, #list, step do
    replies[#replies + 1] = redis.call(cmd, key, unpack(list, first, math.min(first + step - 1, #list)))
  end
  return replies
end

local function hmget_all(key, fields)
  local out = {}
  for _, part in ipairs(call_sliced('HMGET', key, fields, 1000)) do
    for _, v in ipairs(part) do out[#out + 1] = v end
  end
  return out
end

-- Set the entries of ``count`` distinct users, given in ``args`` from ``first`` on as groups
-- of 5 (uid, seq, score, member or '' to unrank, name), with a few commands for all of
-- them. Returns how many were set, and each user's member now in the ranking (false:
-- not ranked), and the score of the ones set, by uid.
local function set_entries(rank, seqs, members, names, args, first, count)
  local uids = {}
  for j = 1, count do uids[j] = args[first + 5 * (j - 1)] end
  if count == 0 then return 0, {}, {} end
  local curs, olds = hmget_all(seqs, uids), hmget_all(members, uids)
  local zrem, zadd, hdel, hmembers, hseqs, hnames = {}, {}, {}, {}, {}, {}
  local now, scores, n = {}, {}, 0
  for j, uid in ipairs(uids) do
    local i = first + 5 * (j - 1)
    local seq, score, member, name = args[i + 1], args[i + 2], args[i + 3], args[i + 4]
    if curs[j] and tonumber(curs[j]) >= tonumber(seq) then
      now[uid] = olds[j]
    else
      if olds[j] then zrem[#zrem + 1] = olds[j] end
      if member == '' then
        hdel[#hdel + 1] = uid
        now[uid] = false
      else
        zadd[#zadd + 1] = score
        zadd[#zadd + 1] = member
        hmembers[#hmembers + 1] = uid
        hmembers[#hmembers + 1] = member
        now[uid] = member
        scores[uid] = tonumber(score)
      end
      hseqs[#hseqs + 1] = uid
      hseqs[#hseqs + 1] = seq
      hnames[#hnames + 1] = uid
      hnames[#hnames + 1] = name
      n = n + 1
    end
  end
  call_sliced('ZREM', rank, zrem, 1000)
  call_sliced('HDEL', members, hdel, 1000)
  call_sliced('ZADD', rank, zadd, 1000)
  call_sliced('HSET', members, hmembers, 1000)
  call_sliced('HSET', seqs, hseqs, 1000)
  call_sliced('HSET', names, hnames, 1000)
  return n, now, scores
end
