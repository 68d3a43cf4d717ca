-- Whether the entry ARGV[3] is pending with consumer ARGV[2] in group
-- ARGV[1] of stream KEYS[1] (jobs_progress and jobs_finish check it).
local function owned(KEYS, ARGV)
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], '1')
  return #p == 1 and p[1][2] == ARGV[2]
end

-- KEYS: the topic's subscribers, the snapshot. ARGV: user to leave out
-- ('' = none), snapshot TTL ms. Returns the snapshot's size.
register('jobs_snapshot', function(KEYS, ARGV)
  redis.call('DEL', KEYS[2])
  if redis.call('COPY', KEYS[1], KEYS[2]) == 0 then return 0 end
  if ARGV[1] ~= '' then redis.call('ZREM', KEYS[2], ARGV[1]) end
  local n = redis.call('ZCARD', KEYS[2])
  if n == 0 then
    redis.call('DEL', KEYS[2])
  else
    redis.call('PEXPIRE', KEYS[2], ARGV[2])
  end
  return n
end)

-- KEYS: the job hash, the stream. ARGV: job id, topic, message JSON,
-- total, status TTL ms. A job with nobody to reach is done at once.
register('jobs_enqueue', function(KEYS, ARGV)
  local total = tonumber(ARGV[4])
  local state = 'queued'
  if total == 0 then state = 'done' end
  redis.call('HSET', KEYS[1], 'topic', ARGV[2], 'message', ARGV[3], 'total', total,
    'done', 0, 'state', state)
  if total == 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[5])
  else
    redis.call('XADD', KEYS[2], '*', 'job', ARGV[1])
  end
  return 1
end)

-- KEYS: the stream. ARGV: group, consumer, claim timeout ms, job hash key
-- prefix. Claims an entry idle past the timeout, else reads a new one.
-- Returns false, or {entry id, job id, deliveries, topic, message, total,
-- done}. An entry whose job hash is gone is dropped (false).
register('jobs_take', function(KEYS, ARGV)
  redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')
  local entry
  local claimed = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], '0-0', 'COUNT', '1')
  for _, e in ipairs(claimed[2]) do entry = e end
  if not entry then
    local read = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', '1', 'STREAMS', KEYS[1], '>')
    if not read then return false end
    entry = read[1][2][1]
  end
  local id, job = entry[1], entry[2][2]
  local key = ARGV[4] .. job
  local state = redis.call('HGET', key, 'state')
  if not state or state == 'done' or state == 'failed' then
    redis.call('XACK', KEYS[1], ARGV[1], id)
    redis.call('XDEL', KEYS[1], id)
    return false
  end
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, '1')
  redis.call('HSET', key, 'state', 'running')
  local f = redis.call('HMGET', key, 'topic', 'message', 'total', 'done')
  return {id, job, pending[1][4], f[1], f[2], f[3], f[4]}
end)

-- KEYS: the stream, the job hash. ARGV: group, consumer, entry id, done.
-- 1 if recorded, 0 if the entry is not this consumer's any more.
register('jobs_progress', function(KEYS, ARGV)
  if not owned(KEYS, ARGV) then return 0 end
  redis.call('HSET', KEYS[2], 'done', ARGV[4])
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], '0', ARGV[3], 'JUSTID')
  return 1
end)

-- KEYS: the stream, the job hash. ARGV: group, consumer, entry id, state,
-- status TTL ms. 1 if ended, 0 if the entry is not this consumer's.
register('jobs_finish', function(KEYS, ARGV)
  if not owned(KEYS, ARGV) then return 0 end
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
  redis.call('XDEL', KEYS[1], ARGV[3])
  if ARGV[4] == 'done' then
    redis.call('HSET', KEYS[2], 'done', redis.call('HGET', KEYS[2], 'total'))
  end
  redis.call('HSET', KEYS[2], 'state', ARGV[4])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
  return 1
end)

-- KEYS: the stream. ARGV: group, idle ms, then the consumers to keep (the
-- caller and the nodes presence knows alive). Deletes the group's other
-- consumers that hold no entry and were idle at least that long: a node
-- that died leaves its consumer behind (its entries are XAUTOCLAIMed by
-- others, the consumer stays). A consumer with entries is never deleted
-- (DELCONSUMER would drop them), and the check and the delete are one
-- script, so an entry taken just before cannot be lost; a live one deleted
-- while idle is created again when its XREADGROUP next reads an entry.
-- Returns how many went.
register('jobs_forget_idle', function(KEYS, ARGV)
  local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
  if not ok then return 0 end
  local keep = {}
  for i = 3, #ARGV do keep[ARGV[i]] = true end
  local idle, gone = tonumber(ARGV[2]), 0
  for _, c in ipairs(consumers) do
    local f = {}
    for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
    if f['pending'] == 0 and f['idle'] >= idle and not keep[f['name']] then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
      gone = gone + 1
    end
  end
  return gone
end)

-- KEYS: the stream. ARGV: group. {consumers, pending entries} of the
-- group; {0, 0} before the stream or the group exists.
register('jobs_group', function(KEYS, ARGV)
  local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1])
  if not ok then return {0, 0} end
  for _, g in ipairs(groups) do
    local f = {}
    for i = 1, #g, 2 do f[g[i]] = g[i + 1] end
    if f['name'] == ARGV[1] then return {f['consumers'], f['pending']} end
  end
  return {0, 0}
end)
