-- KEYS: a set. ARGV: member, cap. 0 if the member is there already, -1 if
-- the set holds `cap` members, else adds it and returns 1. A user's block
-- list (`block`, cap MAX_BLOCKED_PER_USER) and topics (`topics_add`, cap
-- MAX_TOPICS_PER_USER) are such sets; one function, two names, so metrics
-- keep them apart.
local function add_capped(KEYS, ARGV)
  if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 0 end
  if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return -1 end
  redis.call('SADD', KEYS[1], ARGV[1])
  return 1
end
register('block', add_capped)
register('topics_add', add_capped)
