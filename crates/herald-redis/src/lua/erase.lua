-- KEYS: the user's inbox log, ids, exp, unread (kept counts), marks,
-- groups, dlv (delivered watermark), peers, then the cursor keys and
-- private-message indexes found by a SCAN (cursors first). ARGV: the
-- user's channel, sharded ('1' = SPUBLISH), the erased event's payload,
-- the private-message index prefix (`…:pm:`), how many of the extra keys
-- are cursors.
-- Erases what the store holds of the user in one step (the seq counter
-- stays; of the marks only the version, one higher), then publishes the
-- event on the user's channel. Returns {messages, conversations,
-- cursors}. Every key is under the user's tag: the private-message
-- indexes of the peers in the list are named here, the others (a peer
-- who left the list) come from the SCAN.
register('erase_user', function(KEYS, ARGV)
  local messages = redis.call('LLEN', KEYS[1])
  local peers = redis.call('ZRANGE', KEYS[8], 0, -1)
  for _, peer in ipairs(peers) do
    redis.call('DEL', ARGV[4] .. peer)
  end
  local cursors = 0
  local last_cursor = 8 + tonumber(ARGV[5])
  for i = 9, #KEYS do
    local gone = redis.call('DEL', KEYS[i])
    if i <= last_cursor then cursors = cursors + gone end
  end
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[6], KEYS[7], KEYS[8])
  local version = redis.call('HGET', KEYS[5], 'v')
  if version then
    redis.call('DEL', KEYS[5])
    redis.call('HSET', KEYS[5], 'v', tonumber(version) + 1)
  end
  if ARGV[2] == '1' then
    redis.call('SPUBLISH', ARGV[1], ARGV[3])
  else
    redis.call('PUBLISH', ARGV[1], ARGV[3])
  end
  return {messages, #peers, cursors}
end)
