-- KEYS: the inbox's keys, then optionally the user's preferences hash.
-- ARGV: max age ms, now (unix ms). Trims by age,
-- then takes the members of the expiry index due by `now` out of it and
-- un-counts each one still retained (its entry is at the arithmetic
-- position; its exception stays), bumping the read-state version if any
-- was un-counted. Returns {the inbox's last seq, HGETALL counts, HGETALL
-- marks, the soonest expiry score or '', and with the preferences key
-- HGETALL preferences} (one slot: atomic). A connection's start asks for
-- the preferences here rather than with a command of its own.
register('user_counts', function(KEYS, ARGV)
  local k = trimmed(KEYS, 6, ARGV[1])
  local due = redis.call('ZRANGEBYSCORE', k.exp, '-inf', ARGV[2])
  if #due > 0 then
    redis.call('ZREMRANGEBYSCORE', k.exp, '-inf', ARGV[2])
    local first, last, n = bounds(k)
    local taken = false
    for _, member in ipairs(due) do
      local seq = tonumber(member)
      if seq and seq >= first and seq <= last then
        local entry = redis.call('LINDEX', k.log, seq - first)
        if entry then
          local m = entry_head(entry)
          if m.seq == seq then
            uncount(k, m, false)
            taken = true
          end
        end
      end
    end
    if taken then redis.call('HINCRBY', k.marks, 'v', '1') end
  end
  local soonest = redis.call('ZRANGE', k.exp, '0', '0', 'WITHSCORES')
  local out = {
    redis.call('GET', k.seq) or '0',
    redis.call('HGETALL', k.counts),
    redis.call('HGETALL', k.marks),
    soonest[2] or '',
  }
  if KEYS[7] then out[5] = redis.call('HGETALL', KEYS[7]) end
  return out
end)

-- KEYS: the `all` stream's keys and its severity index (`{all}:sev`).
-- ARGV: max age ms, now (unix ms). Trims by age, then returns {first
-- retained, last, the retained seqs of the expiry index due by `now`, the
-- soonest expiry to come or '', the severity index's members from the
-- first retained seq on (`<seq>:<severity>`)}. The due seqs stay in the
-- index (every user's counts need them); due members below the first
-- retained seq were trimmed and are removed. The severity index is only
-- read here (an append of a severe announcement trims it): one
-- ZRANGEBYSCORE, on a set that does not exist while no severe announcement
-- is retained.
register('announcements', function(KEYS, ARGV)
  local k = trimmed(KEYS, 5, ARGV[1])
  local first, last = bounds(k)
  local expired = {}
  local gone = {}
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', k.exp, '-inf', ARGV[2])) do
    local seq = tonumber(member)
    if seq and seq >= first and seq <= last then
      expired[#expired + 1] = seq
    else
      gone[#gone + 1] = member
    end
  end
  for i = 1, #gone, 1000 do
    redis.call('ZREM', k.exp, unpack(gone, i, math.min(i + 999, #gone)))
  end
  local soonest = redis.call('ZRANGEBYSCORE', k.exp, '(' .. ARGV[2], '+inf', 'WITHSCORES', 'LIMIT', '0', '1')
  local severe = redis.call('ZRANGEBYSCORE', k.sev, string.format('%d', first), '+inf')
  return {first, last, expired, soonest[2] or '', severe}
end)

-- KEYS: marks, counts, inbox seq, inbox log. ARGV: expected version,
-- channel ('': publish nothing, a bare change), sharded ('1' = SPUBLISH), event payload, then quads (op, field,
-- value, seq): `s` HSET marks, `d` HDEL marks, `c` HINCRBY counts
-- (`c:<category>` by unread delta × 2^32 + unseen delta), each for the
-- inbox message `seq` (0: none). Compare-and-set on
-- the version; the ops of an inbox message that retention dropped
-- meanwhile are skipped (its trim un-counted it by its old flags; trims do
-- not move the version, so marks on a full inbox under traffic are not
-- refused over and over). Returns 1 if applied (and the counts-changed
-- event published), 0 if the version moved.
register('commit_read_state', function(KEYS, ARGV)
  if tonumber(redis.call('HGET', KEYS[1], 'v') or '0') ~= tonumber(ARGV[1]) then
    return 0
  end
  local last = tonumber(redis.call('GET', KEYS[3]) or '0')
  local first = last - redis.call('LLEN', KEYS[4]) + 1
  redis.call('HINCRBY', KEYS[1], 'v', '1')
  for a = 5, #ARGV, 4 do
    local op = ARGV[a]
    local seq = tonumber(ARGV[a + 3])
    if seq == 0 or seq >= first then
      if op == 's' then
        redis.call('HSET', KEYS[1], ARGV[a + 1], ARGV[a + 2])
      elseif op == 'd' then
        redis.call('HDEL', KEYS[1], ARGV[a + 1])
      else
        redis.call('HINCRBY', KEYS[2], ARGV[a + 1], ARGV[a + 2])
      end
    end
  end
  if ARGV[2] == '' then
  elseif ARGV[3] == '1' then
    redis.call('SPUBLISH', ARGV[2], ARGV[4])
  else
    redis.call('PUBLISH', ARGV[2], ARGV[4])
  end
  return 1
end)
