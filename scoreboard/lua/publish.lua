-- After a batch (or an admin's decision) has committed: move the ranking of every board
-- period it touched, bump the version, cache each board, record each submission's result
-- with its place on every board, append personal events to the replay log, publish one
-- message with the changed top 10s and the personal events, and settle the batch.
-- KEYS: 1 names, 2 version, 3 events log, 4 batch list, 5 batches, 6 pending count, 7 failed batches
-- ARGV: 1 channel, 2 result ttl, 3 board ttl, 4 submission key prefix, 5 done key prefix,
--       6 batch id ('' outside a batch), 7 events log length,
--       8 n board periods, then per board period (board, period, base, n users, then per
--       user (uid, history id, score, member or '', name)),
--       then n results, then per result (submission id, uid, state, delta, score, flagged,
--       error json, n boards, then per board (board, period, score there after it, 'True' when
--       it is the user's first entry there))
-- Returns {'notready', board, period} when a ranking is being rebuilt (nothing changed),
-- else {'ok', version, n boards whose top 10 changed, n applied}.
local i = 9
local periods = {}
for p = 1, tonumber(ARGV[8]) do
  local entry = {board = ARGV[i], period = ARGV[i + 1], base = ARGV[i + 2], n = tonumber(ARGV[i + 3]), first = i + 4}
  if redis.call('EXISTS', entry.base .. ':ready') == 0 then return {'notready', entry.board, entry.period} end
  periods[p] = entry
  i = entry.first + 5 * entry.n
end

local version = bump_version(KEYS[2])

-- Each user's rank on each board period before the batch (for previous_rank), then the move.
local by_period, changed_bodies = {}, {}
for _, p in ipairs(periods) do
  local zkey = p.base .. ':z'
  local before = {}
  for j = 1, p.n do
    local uid = ARGV[p.first + 5 * (j - 1)]
    local member = read_guard(p.base, uid)
    if member then
      local own = tonumber(redis.call('ZSCORE', zkey, member))
      if own then before[uid] = rank_of(zkey, own, false) end
    end
  end
  local _, members, scores = set_entries(p.base, KEYS[1], ARGV, p.first, p.n, false)
  p.before, p.members, p.scores, p.last = before, members, scores, {}
  by_period[p.board .. '/' .. p.period] = p
  local body10, changed = store_and_compare(p.base, KEYS[1], p.board, p.period, version, tonumber(ARGV[3]))
  if changed then changed_bodies[#changed_bodies + 1] = json_text(p.board) .. ':' .. body10 end
end

-- A user's place on one board period after the batch, with ``score`` there.
local function place(p, uid, score)
  local own = p.scores[uid]
  if own == nil then
    local member = p.members[uid]
    if member == nil then member = read_guard(p.base, uid) end
    own = member and tonumber(redis.call('ZSCORE', p.base .. ':z', member)) or false
    p.scores[uid] = own
  end
  if own == false then return 'null' end
  return string.format('%d', rank_of(p.base .. ':z', tonumber(score), own))
end

local result_ttl = tonumber(ARGV[2])
local nresults = tonumber(ARGV[i]); i = i + 1
local personal = {}
local applied = 0
for k = 1, nresults do
  local sid, uid, state = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local delta, score, flagged, err = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
  local nb = tonumber(ARGV[i + 7])
  local places = {}
  local rank_value = 'null'
  for b = 1, nb do
    local at = i + 8 + 4 * (b - 1)
    local board, period, there, first = ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3]
    local p = by_period[board .. '/' .. period]
    if p then
      local rank = place(p, uid, there)
      local previous = p.last[uid]
      if first == 'True' then
        previous = 'null'
      elseif previous == nil then
        previous = p.before[uid] and string.format('%d', p.before[uid]) or 'null'
      end
      p.last[uid] = rank
      places[#places + 1] = string.format('%s:{"period":%s,"score":%s,"rank":%s,"previous_rank":%s}',
        json_text(board), json_text(period), there, rank, previous)
      if board == 'all-time' then rank_value = rank end
    end
  end
  i = i + 8 + 4 * nb
  local result, event, data
  if state == 'applied' then
    applied = applied + 1
    local boards = '{' .. table.concat(places, ',') .. '}'
    result = string.format('{"job_id":%s,"state":"applied","user_id":%s,"score":%s,"rank":%s,"score_delta":%s,"flagged":%s,"boards":%s}',
      json_text(sid), uid, score, rank_value, delta, flagged, boards)
    event = 'score'
    data = string.format('{"job_id":%s,"score":%s,"rank":%s,"score_delta":%s,"flagged":%s,"boards":%s}',
      json_text(sid), score, rank_value, delta, flagged, boards)
    redis.call('HSET', ARGV[4] .. sid, 'state', 'applied', 'result', result)
  else
    result = string.format('{"job_id":%s,"state":%s,"error":%s}', json_text(sid), json_text(state), err)
    event = 'rejected'
    data = string.format('{"job_id":%s,"error":%s}', json_text(sid), err)
    redis.call('HSET', ARGV[4] .. sid, 'state', state, 'error', err)
  end
  redis.call('EXPIRE', ARGV[4] .. sid, result_ttl)
  redis.call('LPUSH', ARGV[5] .. sid, result)
  redis.call('EXPIRE', ARGV[5] .. sid, 60)
  local id = string.format('%.0f-%d', version, k)
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], id, 'user', uid, 'event', event, 'data', data)
  personal[#personal + 1] = string.format('{"id":%s,"user_id":%s,"event":%s,"data":%s}', json_text(id), uid,
    json_text(event), data)
end

redis.call('PUBLISH', ARGV[1], string.format('{"version":%.0f,"boards":{%s},"personal":[%s]}',
  version, table.concat(changed_bodies, ','), table.concat(personal, ',')))
if ARGV[6] ~= '' then
  local pending = redis.call('LLEN', KEYS[4])
  redis.call('DEL', KEYS[4])
  local settled = redis.call('ZREM', KEYS[5], ARGV[6]) + redis.call('ZREM', KEYS[7], ARGV[6])
  if settled > 0 and pending > 0 then
    redis.call('DECRBY', KEYS[6], pending)
  end
end
return {'ok', string.format('%.0f', version), #changed_bodies, applied}
