-- KEYS: due, counts. ARGV: hash key prefix, user index key prefix, then
-- (id, next_at, JSON, user, index keep ms) per event. An id held already
-- (in any state) is left alone. Each armed one joins its user's index
-- (same tag), kept at least the time given. Returns how many were armed.
register('webhook_arm', function(KEYS, ARGV)
  local n = 0
  for i = 3, #ARGV, 5 do
    local key = ARGV[1] .. ARGV[i]
    if redis.call('EXISTS', key) == 0 then
      redis.call('HSET', key, 'state', 'armed', 'event', ARGV[i + 2])
      redis.call('ZADD', KEYS[1], ARGV[i + 1], ARGV[i])
      local index = ARGV[2] .. ARGV[i + 3]
      redis.call('SADD', index, ARGV[i])
      if redis.call('PTTL', index) < tonumber(ARGV[i + 4]) then
        redis.call('PEXPIRE', index, ARGV[i + 4])
      end
      n = n + 1
    end
  end
  if n > 0 then redis.call('HINCRBY', KEYS[2], 'armed', n) end
  return n
end)

-- KEYS: due. ARGV: now ms, limit, lease end ms, hash key prefix. Returns
-- the claimed events' JSON; a member whose hash is not open is dropped.
register('webhook_claim', function(KEYS, ARGV)
  local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', '0', ARGV[2])
  local out = {}
  for _, id in ipairs(ids) do
    local f = redis.call('HMGET', ARGV[4] .. id, 'state', 'event')
    if (f[1] == 'armed' or f[1] == 'pending') and f[2] then
      redis.call('ZADD', KEYS[1], ARGV[3], id)
      out[#out + 1] = f[2]
    else
      redis.call('ZREM', KEYS[1], id)
    end
  end
  return out
end)

-- Moves the event `id` (hash `key`, in state `from`) to state `to` with
-- JSON `json`: the index of due events (`next` ms, '' = out of it), the
-- dead list and its index by time (`dead_at` ms), the counts, the hash's
-- expiry (`keep` ms, '' = for good). K: due, dead, counts, dead_at.
local function webhook_move(K, key, id, from, to, json, next, keep, dead_at)
  redis.call('HSET', key, 'state', to, 'event', json)
  if next ~= '' then
    redis.call('ZADD', K[1], next, id)
  else
    redis.call('ZREM', K[1], id)
  end
  if to == 'dead' then
    redis.call('ZADD', K[2], '0', id)
    redis.call('ZADD', K[4], dead_at, id)
  else
    redis.call('ZREM', K[2], id)
    redis.call('ZREM', K[4], id)
  end
  if from ~= to then
    if from == 'armed' or from == 'pending' then
      redis.call('HINCRBY', K[3], from, '-1')
    end
    if to == 'armed' or to == 'pending' then
      redis.call('HINCRBY', K[3], to, '1')
    end
  end
  if keep ~= '' then
    redis.call('PEXPIRE', key, keep)
  else
    redis.call('PERSIST', key)
  end
end

-- KEYS: due, dead, counts, the event's hash, dead_at. ARGV: id, from
-- state, to state, JSON, next_at ('' = out of the index), keep ms ('' =
-- for good), dead_at ms (when `to` is dead). 0 (nothing changed) unless
-- the event is in state `from`.
register('webhook_settle', function(KEYS, ARGV)
  if redis.call('HGET', KEYS[4], 'state') ~= ARGV[2] then return 0 end
  webhook_move({KEYS[1], KEYS[2], KEYS[3], KEYS[5]}, KEYS[4], ARGV[1], ARGV[2], ARGV[3],
    ARGV[4], ARGV[5], ARGV[6], ARGV[7])
  return 1
end)

-- KEYS: due, dead, counts, the event's hash, dead_at. ARGV: id, the
-- pending JSON, its next_at, the dead JSON, max pending, the dead one's
-- keep ms, its dead_at ms. An armed event becomes pending (1), or dead
-- (2) when `counts` holds max pending ones already; not armed: 0.
register('webhook_create', function(KEYS, ARGV)
  if redis.call('HGET', KEYS[4], 'state') ~= 'armed' then return 0 end
  local K = {KEYS[1], KEYS[2], KEYS[3], KEYS[5]}
  local pending = tonumber(redis.call('HGET', KEYS[3], 'pending') or '0')
  if pending >= tonumber(ARGV[5]) then
    webhook_move(K, KEYS[4], ARGV[1], 'armed', 'dead', ARGV[4], '', ARGV[6], ARGV[7])
    return 2
  end
  webhook_move(K, KEYS[4], ARGV[1], 'armed', 'pending', ARGV[2], ARGV[3], '', '')
  return 1
end)

-- KEYS: dead, dead_at. ARGV: hash key prefix, expired before (ms), keep,
-- batch. Deletes the dead events dead since before the expiry, then the
-- oldest beyond the newest `keep`, at most `batch` of each; a member no
-- longer dead (revived, erased) only leaves the indexes. Returns how many
-- it removed.
register('webhook_trim_dead', function(KEYS, ARGV)
  local function drop(ids)
    for _, id in ipairs(ids) do
      local key = ARGV[1] .. id
      if redis.call('HGET', key, 'state') == 'dead' then redis.call('DEL', key) end
      redis.call('ZREM', KEYS[1], id)
      redis.call('ZREM', KEYS[2], id)
    end
    return #ids
  end
  local n = drop(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[2], 'LIMIT', '0', ARGV[4]))
  local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
  if excess > 0 then
    n = n + drop(redis.call('ZRANGE', KEYS[2], '0', math.min(excess, tonumber(ARGV[4])) - 1))
  end
  return n
end)

-- KEYS: dead, dead_at. ARGV: lex start ('-' or '(<id>'), limit, hash
-- key prefix. The dead events' JSON in id order; an id whose hash expired
-- leaves the list.
register('webhook_dead', function(KEYS, ARGV)
  local ids = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], '+', 'LIMIT', '0', ARGV[2])
  local out = {}
  for _, id in ipairs(ids) do
    local json = redis.call('HGET', ARGV[3] .. id, 'event')
    if json then
      out[#out + 1] = json
    else
      redis.call('ZREM', KEYS[1], id)
      redis.call('ZREM', KEYS[2], id)
    end
  end
  return out
end)

-- KEYS: counts, dead. Returns armed, pending, dead.
register('webhook_backlog', function(KEYS, ARGV)
  local f = redis.call('HMGET', KEYS[1], 'armed', 'pending')
  return {tonumber(f[1] or '0'), tonumber(f[2] or '0'), redis.call('ZCARD', KEYS[2])}
end)

-- KEYS: the audience (every score 0). ARGV: the user to page after ('' =
-- from the start), how many. The next users by name.
register('webhook_audience', function(KEYS, ARGV)
  local min = '-'
  if ARGV[1] ~= '' then min = '(' .. ARGV[1] end
  return redis.call('ZRANGE', KEYS[1], min, '+', 'BYLEX', 'LIMIT', '0', ARGV[2])
end)

-- KEYS: the user's index. ARGV: hash key prefix. The JSON of every event
-- of the user still kept; an id whose hash expired leaves the index.
register('webhook_of_user', function(KEYS, ARGV)
  local out = {}
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    local json = redis.call('HGET', ARGV[1] .. id, 'event')
    if json then
      out[#out + 1] = json
    else
      redis.call('SREM', KEYS[1], id)
    end
  end
  return out
end)

-- KEYS: due, dead, counts, the user's index, dead_at. ARGV: hash key prefix, user,
-- ids… Removes each event of that user, in any state, from the index of
-- due events (and the backlog's counts) or the dead list; returns how
-- many it removed.
register('webhook_forget_events', function(KEYS, ARGV)
  local n = 0
  for i = 3, #ARGV do
    local key = ARGV[1] .. ARGV[i]
    local f = redis.call('HMGET', key, 'state', 'event')
    if f[1] and f[2] and cjson.decode(f[2]).user == ARGV[2] then
      if f[1] == 'armed' or f[1] == 'pending' then
        redis.call('ZREM', KEYS[1], ARGV[i])
        redis.call('HINCRBY', KEYS[3], f[1], '-1')
      end
      redis.call('ZREM', KEYS[2], ARGV[i])
      redis.call('ZREM', KEYS[5], ARGV[i])
      redis.call('DEL', key)
      redis.call('SREM', KEYS[4], ARGV[i])
      n = n + 1
    end
  end
  return n
end)
