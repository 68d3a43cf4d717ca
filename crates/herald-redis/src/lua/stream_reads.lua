-- KEYS: the stream's keys. ARGV: after, limit, max age ms. The position of
-- `after + 1` is arithmetic (see PRELUDE).
register('read', function(KEYS, ARGV)
  local k = trimmed(KEYS, #KEYS, ARGV[3])
  local first, last, n = bounds(k)
  local start = tonumber(ARGV[1]) + 1 - first
  if start < 0 then start = 0 end
  local limit = tonumber(ARGV[2])
  if start >= n or limit <= 0 then return {} end
  return redis.call('LRANGE', KEYS[2], start, start + limit - 1)
end)

-- KEYS: the stream's keys. ARGV: before ('' = past the newest), limit,
-- max age ms. The window of seqs `[max(first, before - limit), before - 1]`,
-- oldest first (Rust reverses it).
register('read_before', function(KEYS, ARGV)
  local k = trimmed(KEYS, #KEYS, ARGV[3])
  local first, last = bounds(k)
  local hi = last
  if ARGV[1] ~= '' then hi = math.min(hi, tonumber(ARGV[1]) - 1) end
  local limit = tonumber(ARGV[2])
  if hi < first or limit <= 0 then return {} end
  local lo = math.max(first, hi - limit + 1)
  return redis.call('LRANGE', k.log, lo - first, hi - first)
end)

-- KEYS: the stream's keys. ARGV: max age ms, then ids (16 raw bytes each).
-- The entries of the ids found in the index, in the order asked.
register('find', function(KEYS, ARGV)
  local k = trimmed(KEYS, #KEYS, ARGV[1])
  local first, last, n = bounds(k)
  local out = {}
  for i = 2, #ARGV do
    local score = redis.call('ZSCORE', k.ids, ARGV[i])
    if score then
      local index = tonumber(score) - first
      if index >= 0 and index < n then
        local entry = redis.call('LINDEX', k.log, index)
        if entry then out[#out + 1] = entry end
      end
    end
  end
  return out
end)

-- KEYS: the stream's keys. ARGV: max age ms. Returns first retained, last.
register('bounds', function(KEYS, ARGV)
  local k = trimmed(KEYS, #KEYS, ARGV[1])
  local first, last = bounds(k)
  return {first, last}
end)

-- KEYS: cursor. ARGV: seq (already clamped to the stream's last seq).
register('ack', function(KEYS, ARGV)
  local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
  local want = tonumber(ARGV[1])
  if want > cur then
    redis.call('SET', KEYS[1], ARGV[1])
    return want
  end
  return cur
end)
