-- KEYS: wakes, held, asked. ARGV: user, at. While a claim holds the
-- user, the soonest asked-for wake-up waits in `asked`; else the index
-- keeps the soonest (ZADD LT adds a new member too).
register('snooze_wake_at', function(KEYS, ARGV)
  if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
    local asked = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '')
    if not asked or tonumber(ARGV[2]) < asked then
      redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
    end
  else
    redis.call('ZADD', KEYS[1], 'LT', ARGV[2], ARGV[1])
  end
  return 1
end)

-- KEYS: wakes, held. ARGV: now ms, limit, lease end ms. Returns the users
-- claimed, each moved to the lease end and marked held.
register('snooze_claim', function(KEYS, ARGV)
  local users = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', '0', ARGV[2])
  for _, user in ipairs(users) do
    redis.call('ZADD', KEYS[1], ARGV[3], user)
    redis.call('HSET', KEYS[2], user, ARGV[3])
  end
  return users
end)

-- KEYS: wakes, held, asked. ARGV: user, next ms ('' = none). The next
-- wake-up is the sooner of `next` and what was asked meanwhile.
register('snooze_woken', function(KEYS, ARGV)
  local asked = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '')
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1])
  local next = tonumber(ARGV[2])
  if asked and (not next or asked < next) then next = asked end
  if next then
    redis.call('ZADD', KEYS[1], next, ARGV[1])
  else
    redis.call('ZREM', KEYS[1], ARGV[1])
  end
  return 1
end)
