-- KEYS: the inbox's keys (6), then the per-peer index. ARGV: before (''
-- = from the newest), limit, max age ms, 's' for seqs only (else the
-- entries). Newest first; index members retention dropped are removed.
register('private_from', function(KEYS, ARGV)
  local k = trimmed(KEYS, 6, ARGV[3])
  local first = bounds(k)
  redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', '(' .. first)
  local hi = '+inf'
  if ARGV[1] ~= '' then hi = '(' .. ARGV[1] end
  local seqs = redis.call('ZREVRANGEBYSCORE', KEYS[7], hi, '-inf', 'LIMIT', '0', ARGV[2])
  if ARGV[4] == 's' then return seqs end
  local out = {}
  for _, s in ipairs(seqs) do
    local entry = redis.call('LINDEX', k.log, tonumber(s) - first)
    if entry then out[#out + 1] = entry end
  end
  return out
end)

-- KEYS: the inbox's keys (6), the delivered watermark, the device's
-- cursor. ARGV: seq, most entries returned, max age ms. Clamps the seq to
-- the last one, moves the device's cursor forward to it and raises the
-- watermark to it; returns the `mailbox` entries the watermark passed,
-- newest first, looking at the newest 1,000 seqs of the range at most
-- (one LRANGE). One script for what an inbox `ack` does.
register('ack_inbox', function(KEYS, ARGV)
  local k = trimmed(KEYS, 6, ARGV[3])
  local first, last = bounds(k)
  local seq = math.min(tonumber(ARGV[1]), last)
  if seq > tonumber(redis.call('GET', KEYS[8]) or '0') then
    redis.call('SET', KEYS[8], seq)
  end
  local old = tonumber(redis.call('GET', KEYS[7]) or '0')
  if seq <= old then return {} end
  redis.call('SET', KEYS[7], seq)
  local lo = math.max(old + 1, first, seq - 999)
  if lo > seq then return {} end
  local entries = redis.call('LRANGE', k.log, lo - first, seq - first)
  local out = {}
  for i = #entries, 1, -1 do
    if #out >= tonumber(ARGV[2]) then break end
    if entry_head(entries[i]).category == 'mailbox' then out[#out + 1] = entries[i] end
  end
  return out
end)
