-- Deletes each of a user's connection entries that still holds the value
-- the reaper read. KEYS[1]: the user's connection hash; ARGV: conn id,
-- value, conn id, value, …; returns the ids deleted.
register('presence_reap', function(KEYS, ARGV)
  local gone = {}
  for i = 1, #ARGV, 2 do
    if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
      redis.call('HDEL', KEYS[1], ARGV[i])
      gone[#gone + 1] = ARGV[i]
    end
  end
  return gone
end)
