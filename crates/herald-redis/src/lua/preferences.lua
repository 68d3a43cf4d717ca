-- KEYS: the user's preferences hash, their counts hash. ARGV: the most topics, the user's
-- channel, sharded ('1': SPUBLISH), the number of fields to remove, those
-- fields, then field, value pairs to set. Mirrors core's
-- `apply_preference_change`: counts the `t:` fields the result would hold
-- and refuses past the most (`{'too_many'}`, nothing written); else removes,
-- sets, publishes `["preferences", [field, value, …]]` and returns
-- `{'ok', field, value, …}`. Writes go in chunks, below Lua's stack limit.
-- A category turned off gets the muted marker (2^62) on its counts field,
-- created if it has none (so a user who never got a message holds every
-- marker: their first append reads no preferences), and the append script
-- keeps its next message out without a lookup of its own (see `muted` in
-- the store's scripts); turning one on leaves the marker for the next
-- append to take off. A counts hash created here has no TTL until the
-- first append gives it the log's.
register('preferences', function(KEYS, ARGV)
  local max = tonumber(ARGV[1])
  local nremove = tonumber(ARGV[4])
  local first_set = 5 + nremove
  local topics, count = {}, 0
  for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
    if string.sub(f, 1, 2) == 't:' then topics[f] = true; count = count + 1 end
  end
  for i = 5, first_set - 1 do
    if topics[ARGV[i]] then topics[ARGV[i]] = nil; count = count - 1 end
  end
  for i = first_set, #ARGV, 2 do
    local f = ARGV[i]
    if string.sub(f, 1, 2) == 't:' and not topics[f] then topics[f] = true; count = count + 1 end
  end
  if count > max then return {'too_many'} end
  for i = 5, first_set - 1, 500 do
    redis.call('HDEL', KEYS[1], unpack(ARGV, i, math.min(i + 499, first_set - 1)))
  end
  for i = first_set, #ARGV, 500 do
    redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 499, #ARGV)))
  end
  for i = first_set, #ARGV, 2 do
    if string.sub(ARGV[i], 1, 3) == 'ci:' and ARGV[i + 1] == '0' then
      local field = 'c:' .. string.sub(ARGV[i], 4)
      local v = tonumber(redis.call('HGET', KEYS[2], field) or '')
      if not v or v < 2305843009213693952 then
        redis.call('HINCRBY', KEYS[2], field, '4611686018427387904')
      end
    end
  end
  local all = redis.call('HGETALL', KEYS[1])
  local payload = cmsgpack.pack({'preferences', all})
  if ARGV[3] == '1' then
    redis.call('SPUBLISH', ARGV[2], payload)
  else
    redis.call('PUBLISH', ARGV[2], payload)
  end
  table.insert(all, 1, 'ok')
  return all
end)
