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

-- KEYS: due, dead, counts, the event's hash. ARGV: id, from state, to
-- state, JSON, next_at ('' = out of the index), keep ms ('' = for good).
-- 0 (nothing changed) unless the event is in state `from`.
register('webhook_settle', function(KEYS, ARGV)
  if redis.call('HGET', KEYS[4], 'state') ~= ARGV[2] then return 0 end
  redis.call('HSET', KEYS[4], 'state', ARGV[3], 'event', ARGV[4])
  if ARGV[5] ~= '' then
    redis.call('ZADD', KEYS[1], ARGV[5], ARGV[1])
  else
    redis.call('ZREM', KEYS[1], ARGV[1])
  end
  if ARGV[3] == 'dead' then
    redis.call('ZADD', KEYS[2], '0', ARGV[1])
  else
    redis.call('ZREM', KEYS[2], ARGV[1])
  end
  if ARGV[2] ~= ARGV[3] then
    if ARGV[2] == 'armed' or ARGV[2] == 'pending' then
      redis.call('HINCRBY', KEYS[3], ARGV[2], '-1')
    end
    if ARGV[3] == 'armed' or ARGV[3] == 'pending' then
      redis.call('HINCRBY', KEYS[3], ARGV[3], '1')
    end
  end
  if ARGV[6] ~= '' then
    redis.call('PEXPIRE', KEYS[4], ARGV[6])
  else
    redis.call('PERSIST', KEYS[4])
  end
  return 1
end)

-- KEYS: dead. ARGV: lex start ('-' or '(<id>'), limit, hash key prefix.
-- The dead events' JSON in id order; an id whose hash expired leaves the
-- list.
register('webhook_dead', function(KEYS, ARGV)
  local ids = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], '+', 'LIMIT', '0', ARGV[2])
  local out = {}
  for _, id in ipairs(ids) do
    local json = redis.call('HGET', ARGV[3] .. id, 'event')
    if json then
      out[#out + 1] = json
    else
      redis.call('ZREM', KEYS[1], id)
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

-- KEYS: due, dead, counts, the user's index. ARGV: hash key prefix, user,
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
      redis.call('DEL', key)
      redis.call('SREM', KEYS[4], ARGV[i])
      n = n + 1
    end
  end
  return n
end)
