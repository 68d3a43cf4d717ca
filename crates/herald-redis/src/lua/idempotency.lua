-- KEYS: entry. ARGV: fingerprint, pending lease ms. Absent: claim it
-- (pending, for the lease).
-- Present: `conflict` on another fingerprint, else `done` + outcome or
-- `pending`.
register('idempotency_claim', function(KEYS, ARGV)
  local v = redis.call('HMGET', KEYS[1], 's', 'f', 'o')
  if not v[1] then
    redis.call('HSET', KEYS[1], 's', 'p', 'f', ARGV[1])
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return {'fresh'}
  end
  if v[2] ~= ARGV[1] then return {'conflict'} end
  if v[1] == 'd' then return {'done', v[3] or ''} end
  return {'pending'}
end)

-- KEYS: entry. ARGV: outcome, window ms. Only a pending entry takes an
-- outcome, kept for the window from now.
register('idempotency_complete', function(KEYS, ARGV)
  if redis.call('HGET', KEYS[1], 's') ~= 'p' then return 0 end
  redis.call('HSET', KEYS[1], 's', 'd', 'o', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end)

-- KEYS: entry. Deletes it only while pending.
register('idempotency_release', function(KEYS, ARGV)
  if redis.call('HGET', KEYS[1], 's') == 'p' then
    return redis.call('DEL', KEYS[1])
  end
  return 0
end)
