-- The stream helpers of the library: the store's functions call them.
-- Defined once when the library loads, not on every call.
--
-- Numbers go to commands as strings wherever a call is made per message:
-- Redis 7.0 formats a Lua number argument with snprintf("%.17g"), about
-- 2,700 instructions each (callgrind), against none for a string.
--
-- A stream's keys come as KEYS seq, log, ids, exp and, for a user's
-- inbox, marks and counts too (for the `all` stream, its severity index
-- `sev` when it is needed) (retention must keep the kept counts equal to
-- a recount, so it needs them); `stream_keys(KEYS, i, n)` reads them
-- from `KEYS[i..]`. The log holds consecutive seqs ending at the counter's value
-- (appends push and count in one script; retention only pops the head), so
-- the first retained seq is `last - LLEN + 1`.
--
-- `trim_old` drops entries older than the cutoff from the head of a log
-- (each entry starts with its append time in ms as 13 digits), un-counting
-- each inbox entry (trims do not move the read-state version: a commit
-- skips the ops of seqs a trim dropped), then drops the index members of
-- what left. Bounded so that one call never blocks Redis for long; the
-- keys' PEXPIRE and later calls do the rest. The expiry index keeps the
-- members of trimmed seqs until they are due (`user_counts` and
-- `announcements` drop them then).
local function stream_keys(KEYS, i, n)
  local k = {seq = KEYS[i], log = KEYS[i + 1], ids = KEYS[i + 2], exp = KEYS[i + 3]}
  -- The `all` stream's index of announcements of a severity other than
  -- normal (`{all}:sev`): given to an append of one such, and to
  -- `announcements`.
  if n == 5 then k.sev = KEYS[i + 4] end
  if n >= 6 then
    k.marks = KEYS[i + 4]
    k.counts = KEYS[i + 5]
  end
  if n >= 7 then k.blocked = KEYS[i + 6] end
  if n == 9 then
    k.pm = KEYS[i + 7]
    k.peers = KEYS[i + 8]
  end
  return k
end
-- The seq, category and severity of a log entry. Not cmsgpack.unpack:
-- Redis's cmsgpack refuses the bin type that the message id is encoded
-- with. A Message is a map whose first fields are seq (uint), stream
-- (str), id (bin), category (str), then severity (str) unless it is
-- normal, in that order (serde's field order; a unit test pins it), so
-- this reads the map's head only. `severity` is nil for a normal one.
-- The sizes of a uint (0xcc-0xcf: 1, 2, 4, 8 bytes) and of a str or bin
-- length (0xc4-0xc6 bin, 0xd9-0xdb str: 1, 2, 4) are computed, not looked up.
local function entry_head(entry)
  local function be(p, n)
    local v = 0
    for i = p, p + n - 1 do v = v * 256 + string.byte(entry, i) end
    return v
  end
  local function item(p)
    local t = string.byte(entry, p)
    if t < 0x80 then return t, p + 1 end
    if t >= 0xa0 and t <= 0xbf then
      return string.sub(entry, p + 1, p + t - 0xa0), p + 1 + t - 0xa0
    end
    if t >= 0xcc and t <= 0xcf then
      local size = 2 ^ (t - 0xcc)
      return be(p + 1, size), p + 1 + size
    end
    local size = (t >= 0xc4 and t <= 0xc6 and 2 ^ (t - 0xc4))
      or (t >= 0xd9 and t <= 0xdb and 2 ^ (t - 0xd9))
    if size then
      local n = be(p + 1, size)
      local from = p + 1 + size
      return string.sub(entry, from, from + n - 1), from + n
    end
    error('herald: unexpected msgpack type ' .. t .. ' at the head of a log entry')
  end
  local pos = 14
  local t = string.byte(entry, pos)
  if t >= 0x80 and t <= 0x8f then
    pos = pos + 1
  elseif t == 0xde then
    pos = pos + 3
  elseif t == 0xdf then
    pos = pos + 5
  else
    error('herald: a log entry is not a msgpack map')
  end
  local m = {}
  for _ = 1, 8 do
    local key, value
    key, pos = item(pos)
    value, pos = item(pos)
    m[key] = value
    if m.seq and m.category then
      key, pos = item(pos)
      if key == 'severity' then m.severity = item(pos) end
      return m
    end
  end
  error('herald: no seq and category at the head of a log entry')
end
-- Un-counts an inbox message (the head of its entry, `entry_head`) that
-- leaves the counts: dropped by retention (`forget`: its exception goes
-- with it) or expired (retained, so its exception stays). This mirrors
-- Flags::counts_unread / Flags::counts_unseen (herald-core read_state.rs):
-- the flags are the exception `i.<seq>` if there is one (Flags::code():
-- level + 4 * archived + 8 * deleted + 16 * expired + 32 * snoozed: 4 or
-- more is never counted), else what the watermarks say
-- (seq <= i.r: read, level 2; seq <= i.s: seen, 1; else unseen, 0).
-- Unread: not archived, not deleted, level < 2; unseen: level 0 as well.
-- Both live in one field per category, `c:<category>` = unread × 2^32 +
-- unseen (store/read_state.rs, `PACKED_PREFIX`), so one HINCRBY moves them.
-- A message of a severity other than normal is counted in
-- `s:<category>:<severity>` (unread only) too: `uncount_severe`.
-- The flags code of inbox message `seq` and whether it is an exception.
local function code_of(k, seq)
  local code = tonumber(redis.call('HGET', k.marks, string.format('i.%d', seq)) or '')
  if code then return code, true end
  if not k.read_upto then
    local w = redis.call('HMGET', k.marks, 'i.r', 'i.s')
    k.read_upto = tonumber(w[1] or '0')
    k.seen_upto = tonumber(w[2] or '0')
  end
  if seq <= k.read_upto then
    return 2, false
  elseif seq <= k.seen_upto then
    return 1, false
  end
  return 0, false
end
local function uncount_severe(k, m)
  if m.severity then
    redis.call('HINCRBY', k.counts, 's:' .. m.category .. ':' .. m.severity, '-1')
  end
end
local function uncount(k, m, forget)
  local code, excepted = code_of(k, m.seq)
  if excepted and forget then
    redis.call('HDEL', k.marks, string.format('i.%d', m.seq))
  end
  if not forget and code < 16 then
    -- Expired: remembered (Flags::expired, +16), so that retention
    -- dropping it later does not un-count it a second time.
    redis.call('HSET', k.marks, string.format('i.%d', m.seq), code + 16)
  end
  if code >= 4 then return end
  local level = code % 4
  if level < 2 then
    redis.call('HINCRBY', k.counts, 'c:' .. m.category, level == 0 and '-4294967297' or '-4294967296')
    uncount_severe(k, m)
  end
end
-- Collapse (herald-core collapse.rs), for the message being appended to
-- the inbox `k` at `seq` (its counter INCRed, its entry not pushed yet, so
-- the log holds the seqs up to seq - 1) with the key `group`. The group's
-- open item (`<seq>:<n>` in the groups hash) is replaced if it is still
-- unread: retained, not past its expiry, its flags code below 2 (not read,
-- archived, deleted or expired; `collapse::replaceable`). Then it becomes
-- deleted (+8, `collapse::replaced`), leaves the counts (as `uncount`),
-- and the read-state version moves, so a mark computed before recomputes.
-- Either way the new message becomes the open item. Returns how many
-- messages the new one stands for, and the replaced id (16 raw bytes; nil
-- for a first message). Only grouped sends come here: a send without a
-- key pays the one `group == ''` test of the caller.
local function collapse(k, group, seq, now, keep)
  local open = redis.call('HGET', k.groups, group)
  local n, old = 1, nil
  if open then
    local sep = string.find(open, ':', 1, true)
    local oseq = tonumber(string.sub(open, 1, sep - 1))
    local first = seq - redis.call('LLEN', k.log)
    if oseq >= first then
      local entry = redis.call('LINDEX', k.log, oseq - first)
      local m = entry and entry_head(entry)
      if m and m.seq == oseq then
        local code = code_of(k, oseq)
        local due = redis.call('ZSCORE', k.exp, string.format('%d', oseq))
        if code < 2 and not (due and tonumber(due) <= now) then
          redis.call('HSET', k.marks, string.format('i.%d', oseq), code + 8)
          redis.call('HINCRBY', k.counts, 'c:' .. m.category, code == 0 and '-4294967297' or '-4294967296')
          uncount_severe(k, m)
          redis.call('HINCRBY', k.marks, 'v', '1')
          n, old = tonumber(string.sub(open, sep + 1)) + 1, m.id
        end
      end
    end
  end
  redis.call('HSET', k.groups, group, string.format('%d:%d', seq, n))
  redis.call('PEXPIRE', k.groups, keep)
  return n, old
end
-- A msgpack Message map with `replaces` (bin 16) and `collapsed` (uint)
-- added at its end, its header counting two more fields. Rust never
-- encodes them (the store sets them), so they are not there already.
local function with_collapse(payload, n, old)
  local head = string.byte(payload, 1)
  local count, body
  if head >= 0x80 and head <= 0x8f then
    count, body = head - 0x80, string.sub(payload, 2)
  elseif head == 0xde then
    count = string.byte(payload, 2) * 256 + string.byte(payload, 3)
    body = string.sub(payload, 4)
  else
    error('herald: a message payload is not a msgpack map')
  end
  count = count + 2
  local header
  if count <= 15 then
    header = string.char(0x80 + count)
  else
    header = string.char(0xde, math.floor(count / 256), count % 256)
  end
  return header .. body .. '\168replaces\196\016' .. old .. '\169collapsed' .. cmsgpack.pack(n)
end
-- Drops index members of seqs before the first retained one.
local function trim_ids(k)
  local last = tonumber(redis.call('GET', k.seq) or '0')
  local first = last - redis.call('LLEN', k.log) + 1
  redis.call('ZREMRANGEBYSCORE', k.ids, '-inf', string.format('(%d', first))
end
local function trim_old(k, now, max_age)
  local cutoff = now - max_age
  local popped = 0
  for _ = 1, 1000 do
    local head = redis.call('LINDEX', k.log, '0')
    if not head or tonumber(string.sub(head, 1, 13)) >= cutoff then break end
    redis.call('LPOP', k.log)
    if k.marks then uncount(k, entry_head(head), true) end
    popped = popped + 1
  end
  if popped > 0 then trim_ids(k) end
end
-- Moves `peer` to `at_us` (a string: a Lua number would be formatted as a
-- double on every call) in a conversation list, which keeps the newest
-- MAX_PEERS (herald_core::MAX_PEERS, defined by the library's header). The
-- list only grows when ZADD adds a peer (it returns 0 for a peer whose time
-- it moved), so only then is it counted. Returns whether the peer is new to
-- the list.
local function add_peer(peers, peer, at_us)
  if redis.call('ZADD', peers, 'GT', at_us, peer) == 0 then return false end
  if redis.call('ZCARD', peers) > MAX_PEERS then
    redis.call('ZREMRANGEBYRANK', peers, 0, -MAX_PEERS - 1)
  end
  return true
end
-- The sender's side of a private message: its conversation list, which
-- then lives `keep` ms (see keep_ms). No log of the sender's is at hand to
-- tie it to, so it is renewed every time.
local function touch_peer(peers, peer, at_us, keep)
  add_peer(peers, peer, at_us)
  redis.call('PEXPIRE', peers, keep)
end
-- The receiver's side of a private message at `seq` (a string) from `from`:
-- into the per-peer index (member and score the seq), and its conversation
-- to the top of the receiver's list. The list is renewed to `keep` only
-- when the peer is new to it (a new list) and with the receiver's log
-- (`t.peers`, see APPEND_MANY): every write to a list sets it to live
-- `keep` from now, which is at least as long as the log it goes with, so it
-- never runs out before the log does. `max_age` and `keep` are ms as
-- strings, as `PEXPIRE` takes them.
local function index_private(k, t, seq, from, max_age, keep, at_us)
  redis.call('ZADD', k.pm, seq, seq)
  redis.call('PEXPIRE', k.pm, max_age)
  if add_peer(k.peers, from, at_us) then redis.call('PEXPIRE', k.peers, keep) end
  t.peers = k.peers
end
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function now_ms()
  return math.floor(now_us() / 1000)
end
-- How long a stream's keys live after an append: max age, plus a slack of
-- up to an hour (a 16th of max age) so that their PEXPIREs are renewed only
-- once the slack has run down (`PTTL` below max age), not on every append.
-- Keeping keys up to the slack longer loses nothing: reads drop entries
-- past max age themselves.
local function keep_ms(max_age)
  return max_age + math.min(math.floor(max_age / 16), 3600000)
end
-- `tonumber` of an argument that takes few distinct values (a key
-- count, the retention settings), remembered: `tonumber` of a string runs
-- strtod, some 2,000 instructions, where the lookup of an argument (an
-- interned string) costs ~100. The memo lives as long as the library is
-- loaded and stops growing at 256 entries: a caller passing many values
-- only loses the saving.
local NUMBERS, KEEPS, memo_size = {}, {}, 0
local function remember(memo, s, v)
  if memo_size < 256 and v ~= nil then
    memo[s] = v
    memo_size = memo_size + 1
  end
  return v
end
local function number(s)
  return NUMBERS[s] or remember(NUMBERS, s, tonumber(s))
end
-- `keep_ms` of a max age given as a string, as a string (a Lua number
-- passed to a command is formatted with %.17g on every call), remembered
-- as `number` is.
local function keep_of(max_age)
  return KEEPS[max_age] or remember(KEEPS, max_age, string.format('%d', keep_ms(number(max_age))))
end
local function bounds(k)
  local last = tonumber(redis.call('GET', k.seq) or '0')
  local n = redis.call('LLEN', k.log)
  return last - n + 1, last, n
end
-- The stream of `KEYS[1..n]` with its entries past `max_age` (ms, a
-- string) dropped: how every function that reads a stream starts.
local function trimmed(KEYS, n, max_age)
  local k = stream_keys(KEYS, 1, n)
  trim_old(k, now_ms(), tonumber(max_age))
  return k
end
