-- KEYS: the schedule, the send's hash. ARGV: id, due ms, send JSON.
-- An id held already changes nothing (0).
register('schedule_add', function(KEYS, ARGV)
  if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
  redis.call('HSET', KEYS[2], 'at', ARGV[2], 'state', 'pending', 'send', ARGV[3])
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
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
