-- KEYS: the schedule, the send's hash. ARGV: id, due ms, send JSON, user
-- index key prefix, index keep ms, then the receivers named (none: a send
-- to everyone). An id held already changes nothing (0). The id joins each
-- receiver's index (same tag), kept at least the time given.
register('schedule_add', function(KEYS, ARGV)
  if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
  redis.call('HSET', KEYS[2], 'at', ARGV[2], 'state', 'pending', 'send', ARGV[3])
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
  for i = 6, #ARGV do
    local index = ARGV[4] .. ARGV[i]
    redis.call('SADD', index, ARGV[1])
    if redis.call('PTTL', index) < tonumber(ARGV[5]) then
      redis.call('PEXPIRE', index, ARGV[5])
    end
  end
  return 1
end)

-- KEYS: the user's index. ARGV: hash key prefix. For each pending send of
-- the index: claimed ('1' or ''), then its JSON; an id no longer pending
-- leaves the index.
register('schedule_of_user', function(KEYS, ARGV)
  local out = {}
  for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    local f = redis.call('HMGET', ARGV[1] .. id, 'state', 'claimed', 'send')
    if f[1] == 'pending' and f[3] then
      out[#out + 1] = f[2] or ''
      out[#out + 1] = f[3]
    else
      redis.call('SREM', KEYS[1], id)
    end
  end
  return out
end)

-- KEYS: the schedule, the send's hash, the user's index. ARGV: id, the
-- send JSON read, the JSON without the user ('' = no receiver left:
-- cancel), status TTL ms. 1 if changed; 0, having done nothing, if the
-- send was claimed, ended or changed since it was read.
register('schedule_drop_receiver', function(KEYS, ARGV)
  local f = redis.call('HMGET', KEYS[2], 'state', 'claimed', 'send')
  if f[1] ~= 'pending' or f[2] or f[3] ~= ARGV[2] then return 0 end
  if ARGV[3] == '' then
    redis.call('ZREM', KEYS[1], ARGV[1])
    redis.call('HSET', KEYS[2], 'state', 'cancelled')
    redis.call('HDEL', KEYS[2], 'send')
    redis.call('PEXPIRE', KEYS[2], ARGV[4])
  else
    redis.call('HSET', KEYS[2], 'send', ARGV[3])
  end
  redis.call('SREM', KEYS[3], ARGV[1])
  return 1
end)

-- KEYS: the schedule. ARGV: now ms, limit, lease end ms, hash key prefix.
-- Returns the claimed sends' JSON. A member without a pending hash is
-- dropped.
register('schedule_claim', function(KEYS, ARGV)
  local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', '0', ARGV[2])
  local out = {}
  for _, id in ipairs(ids) do
    local key = ARGV[4] .. id
    local f = redis.call('HMGET', key, 'state', 'send')
    if f[1] == 'pending' and f[2] then
      redis.call('ZADD', KEYS[1], ARGV[3], id)
      redis.call('HSET', key, 'claimed', '1')
      out[#out + 1] = f[2]
    else
      redis.call('ZREM', KEYS[1], id)
    end
  end
  return out
end)

-- KEYS: the schedule. ARGV: status TTL ms, hash key prefix, ids…
register('schedule_delivered', function(KEYS, ARGV)
  for i = 3, #ARGV do
    local key = ARGV[2] .. ARGV[i]
    redis.call('ZREM', KEYS[1], ARGV[i])
    if redis.call('HGET', key, 'state') == 'pending' then
      redis.call('HSET', key, 'state', 'delivered')
      redis.call('HDEL', key, 'send')
      redis.call('PEXPIRE', key, ARGV[1])
    end
  end
  return 1
end)

-- KEYS: the schedule, the send's hash. ARGV: id, status TTL ms.
-- 0 unknown, 1 cancelled (now or before), 2 delivered or claimed.
register('schedule_cancel', function(KEYS, ARGV)
  local f = redis.call('HMGET', KEYS[2], 'state', 'claimed')
  if not f[1] then return 0 end
  if f[1] == 'cancelled' then return 1 end
  if f[1] == 'delivered' or f[2] then return 2 end
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HSET', KEYS[2], 'state', 'cancelled')
  redis.call('HDEL', KEYS[2], 'send')
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  return 1
end)
