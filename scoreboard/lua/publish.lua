-- After a batch has committed: move the ranking, bump the version, cache the board,
-- record each submission's result, append personal events to the replay log, and
-- publish one message with the changed top 10 and the personal events.
-- KEYS: 1 rank, 2 seqs, 3 members, 4 names, 5 ready, 6 version, 7 board top,
--       8 board top10, 9 last published top 10, 10 events log, 11 batch list,
--       12 batches, 13 pending count
-- ARGV: 1 channel, 2 result ttl, 3 board ttl, 4 submission key prefix,
--       5 done key prefix, 6 batch id, 7 events log length, 8 n users, then per user
--       (uid, seq, score, member, name), then n results, then per result
--       (submission id, uid, state, delta, score, flagged, error json)
if redis.call('EXISTS', KEYS[5]) == 0 then return {'notready'} end
local nusers = tonumber(ARGV[8])
local _, members, scores = set_entries(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV, 9, nusers)
local i = 9 + 5 * nusers
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local version = math.max(tonumber(redis.call('GET', KEYS[6]) or '0') + 1, now_us)
redis.call('SET', KEYS[6], string.format('%.0f', version))
local body10, entries10 = store_board(KEYS[1], KEYS[4], KEYS[7], KEYS[8], version, tonumber(ARGV[3]))
local changed = entries10 ~= redis.call('GET', KEYS[9])
if changed then redis.call('SET', KEYS[9], entries10) end

local result_ttl = tonumber(ARGV[2])
local nresults = tonumber(ARGV[i]); i = i + 1
local personal = {}
local applied = 0
for k = 1, nresults do
  local sid, uid, state = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local delta, score, flagged, err = ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
  i = i + 7
  local result, event, data
  if state == 'applied' then
    applied = applied + 1
    local rank_value = 'null'
    local member = members[uid]
    if member == nil then member = redis.call('HGET', KEYS[3], uid) end
    if member then
      local n = redis.call('ZCOUNT', KEYS[1], '(' .. score, '+inf')
      local own = scores[uid]
      if own == nil then
        own = tonumber(redis.call('ZSCORE', KEYS[1], member)) or false
        scores[uid] = own
      end
      if own and own > tonumber(score) then n = n - 1 end
      rank_value = tostring(n + 1)
    end
    result = string.format('{"job_id":%s,"state":"applied","user_id":%s,"score":%s,"rank":%s,"score_delta":%s,"flagged":%s}',
      json_text(sid), uid, score, rank_value, delta, flagged)
    event = 'score'
    data = string.format('{"job_id":%s,"score":%s,"rank":%s,"score_delta":%s,"flagged":%s}',
      json_text(sid), score, rank_value, delta, flagged)
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
  redis.call('XADD', KEYS[10], 'MAXLEN', '~', ARGV[7], id, 'user', uid, 'event', event, 'data', data)
  personal[#personal + 1] = string.format('{"id":%s,"user_id":%s,"event":%s,"data":%s}', json_text(id), uid, json_text(event), data)
end

local message = string.format('{"version":%.0f,"board":%s,"personal":[%s]}',
  version, changed and body10 or 'null', table.concat(personal, ','))
redis.call('PUBLISH', ARGV[1], message)
if ARGV[6] ~= '' then
  local pending = redis.call('LLEN', KEYS[11])
  redis.call('DEL', KEYS[11])
  if redis.call('ZREM', KEYS[12], ARGV[6]) == 1 and pending > 0 then
    redis.call('DECRBY', KEYS[13], pending)
  end
end
return {'ok', string.format('%.0f', version), changed and 1 or 0, applied}
