//! The Lua scripts of the store, one constant each, and [`Scripts`], which
//! loads them once per backend. The Rust that calls them is `store.rs`.

use crate::script::Script;

/// Helpers prepended to every store script.
///
/// A stream's keys come as KEYS seq, log, ids, exp and, for a user's
/// inbox, marks and counts too (retention must keep the kept counts equal to
/// a recount, so it needs them); `stream_keys(i, n)` reads them from
/// `KEYS[i..]`. The log holds consecutive seqs ending at the counter's value
/// (appends push and count in one script; retention only pops the head), so
/// the first retained seq is `last - LLEN + 1`.
///
/// `trim_old` drops entries older than the cutoff from the head of a log
/// (each entry starts with its append time in ms as 13 digits), un-counting
/// each inbox entry (trims do not move the read-state version: a commit
/// skips the ops of seqs a trim dropped), then drops the index members of
/// what left. Bounded so that one call never blocks Redis for long; the
/// keys' PEXPIRE and later calls do the rest. The expiry index keeps the
/// members of trimmed seqs until they are due (`user_counts` and
/// `announcements` drop them then).
pub(crate) const PRELUDE: &str = r#"
local function stream_keys(i, n)
  local k = {seq = KEYS[i], log = KEYS[i + 1], ids = KEYS[i + 2], exp = KEYS[i + 3]}
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
-- The seq and category of a log entry. Not cmsgpack.unpack: Redis's
-- cmsgpack refuses the bin type that the message id is encoded with. A
-- Message is a map whose first fields are seq (uint), stream (str), id
-- (bin), category (str), in that order (serde's field order; a unit test
-- pins it), so this reads the map's head only.
-- The sizes of a uint (0xcc-0xcf: 1, 2, 4, 8 bytes) and of a str or bin
-- length (0xc4-0xc6 bin, 0xd9-0xdb str: 1, 2, 4) are computed, not looked up:
-- a table at this level would be built on every script call (measured: half
-- of this prelude's cost per call).
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
    if m.seq and m.category then return m end
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
          redis.call('HINCRBY', k.marks, 'v', 1)
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
    local head = redis.call('LINDEX', k.log, 0)
    if not head or tonumber(string.sub(head, 1, 13)) >= cutoff then break end
    redis.call('LPOP', k.log)
    if k.marks then uncount(k, entry_head(head), true) end
    popped = popped + 1
  end
  if popped > 0 then trim_ids(k) end
end
-- Moves `peer` to `at_us` (a string: a Lua number would be formatted as a
-- double on every call) in a conversation list, which keeps the newest
-- MAX_PEERS (herald_core::MAX_PEERS). The list only grows when ZADD adds a
-- peer (it returns 0 for a peer whose time it moved), so only then is it
-- counted. Returns whether the peer is new to the list.
local MAX_PEERS = 1000
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
-- never runs out before the log does.
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
local function bounds(k)
  local last = tonumber(redis.call('GET', k.seq) or '0')
  local n = redis.call('LLEN', k.log)
  return last - n + 1, last, n
end
"#;

/// Appends a batch of messages in one call (group commit), and moves the
/// senders' conversation lists of private messages (an op with one key,
/// the list: ARGV its key count 1, the peer, the time in µs, seven unused;
/// `touch_peer`; its reply is 0). KEYS, per
/// message: its stream's keys (seq, log, ids, exp, and for an inbox marks,
/// counts, and for a private message the receiver's block list, index of
/// the sender's messages and conversation list; see `index_private`; then,
/// for an inbox message with a group key, the inbox's groups hash; last,
/// for an inbox message with a preferences check, the receiver's
/// preferences hash, read by `muted` only when it must). ARGV: max
/// entries, max age ms, sharded ('1' = SPUBLISH), then per message ten
/// values: its key count (4, 6 or 9, one more with a groups hash, one more
/// with a preferences check), channel,
/// payload head, payload tail, category, id (16 raw bytes), expiry in unix
/// ms (0 = none), sender ('' unless the message is private), group key (''
/// for none: see `collapse`), the preferences check ('-' none, '1' or '0':
/// the category's default, see `muted`) followed by the topic it was
/// published to, if any (`1article:42`).
///
/// A message the receiver's preferences keep out (`muted`) is not stored:
/// its reply is -1.
///
/// A message whose id the stream's id index holds already is not stored
/// again: its reply is the stored seq. A private message whose sender is in
/// the receiver's block list (SISMEMBER) is not stored: its seq in the
/// reply is 0. A message that replaced the open item of its group
/// (`collapse`) is stored with `replaces` and `collapsed` spliced in at the
/// end of its payload (`with_collapse`), and its reply is {seq, collapsed,
/// replaced id}.
///
/// Each message is handled as a single append was: INCR its seq, index its
/// id (ZADD NX ids seq id, which is also the duplicate check: when it adds
/// nothing, DECR gives the seq back and ZSCORE reads the stored one, so a
/// new message pays one command for both), push the entry, index its expiry if it has one
/// (ZADD exp expiry seq), count it (an inbox message is new, so unread and
/// unseen in its category: HINCRBY counts `c:<category>` by 2^32 + 1, see
/// `uncount`), publish. The payload is the msgpack `Message`
/// whose seq field is spliced in here: Rust encodes it with seq 0 and sends
/// what comes before and after that value. Retention runs once per log
/// touched, after the pushes (nobody sees the list in between): only when
/// RPUSH reported more than max entries, an inbox pops the excess (LPOP
/// count) and un-counts each popped entry, the `all` stream LTRIMs; then the index loses the seqs before the first
/// retained one; then, when the log's PTTL has run below max age (or it has
/// none: a new log), PEXPIRE the log, its id and expiry indexes, the
/// counts and the receiver's conversation list to `keep_ms` (when the log expires whole, every entry is past max
/// age, so nothing retained counts); an expiry index that got a member
/// always gets its PEXPIRE, as it may be new. Entries past max age are not looked for here:
/// every read drops them first, so no reader ever sees them, and the count
/// bound holds regardless; that saves a LINDEX per message. With max
/// entries 0 nothing is kept: each message counts 0, the log and indexes
/// are deleted (as the in-memory store's immediate trim does). Returns the seqs, in the order of the messages.
const APPEND_MANY: &str = r#"
-- Whether the receiver's preferences keep a message of `category` (and
-- `topic`, '' for none) out; `check` '1': the category is on unless the
-- user set `in_app` off, '0': off unless they set it on (the operator's
-- default). Mirrors core's `keeps_out`. The default case costs no command
-- of its own: the message is counted first (HINCRBY of its category's
-- field, which the append does anyway) and the field carries a marker,
-- 2^62 added, while the user keeps the category out. Only a marked
-- field, a category off by default, a publish to a topic, or a field that
-- was 0 before (a new counts hash has lost its markers: it expires with the
-- log) reads the preferences hash (HMGET of `s.prefs`, a declared key with
-- the user's hash tag), and puts the marker right. A message kept out is
-- un-counted again. `first`: the user's first message ever (its seq is 1),
-- so their counts hash never expired and holds every marker (the
-- preferences script marks a field even where there is none yet): a field
-- that was 0 needs no lookup then.
local function muted(s, category, spec, inc, inc_n, first)
  local field = 'c:' .. category
  local v = redis.call('HINCRBY', s.counts, field, inc)
  local marked = v >= 2305843009213693952
  if not marked and spec == '1' and (first or v ~= inc_n) then
    return false
  end
  local check, topic = string.sub(spec, 1, 1), string.sub(spec, 2)
  local f = redis.call('HMGET', s.prefs, 'ci:' .. category, 'ti:' .. topic)
  local off = f[1] == '0' or (check == '0' and f[1] ~= '1')
  if off ~= marked then
    redis.call('HINCRBY', s.counts, field, off and '4611686018427387904' or '-4611686018427387904')
  end
  if off or (topic ~= '' and f[2] == '0') then
    redis.call('HINCRBY', s.counts, field, '-' .. inc)
    return true
  end
  return false
end
local max_entries = tonumber(ARGV[1])
local max_age = tonumber(ARGV[2])
local sharded = ARGV[3] == '1'
local keep = keep_ms(max_age)
local now, micros = 0, '0'
if max_entries > 0 then
  local us = now_us()
  micros = string.format('%d', us)
  now = math.floor(us / 1000)
end
local stamp = string.format('%013d', now)
-- What an append adds to its category's packed counts field (see uncount).
local inc = max_entries > 0 and '4294967297' or '0'
local inc_n = max_entries > 0 and 4294967297 or 0
local seqs = {}
local logs = {}
local touched = {}
local k = 1
local a = 4
while a <= #ARGV do
  local nkeys = tonumber(ARGV[a])
  if nkeys == 1 then
    -- The sender's side of a private message: its conversation list.
    touch_peer(KEYS[k], ARGV[a + 1], ARGV[a + 2], keep)
    seqs[#seqs + 1] = 0
  else
    -- A checked message (preferences) brings the receiver's preferences
    -- hash as its last key, a grouped one (collapse) its inbox's groups
    -- hash before that.
    local group, spec = ARGV[a + 8], ARGV[a + 9]
    local n = nkeys
    local prefs
    if spec ~= '-' then
      n = n - 1
      prefs = KEYS[k + n]
    end
    local s
    if group == '' then
      s = stream_keys(k, n)
    else
      s = stream_keys(k, n - 1)
      s.groups = KEYS[k + n - 1]
    end
    s.prefs = prefs
    -- Numbers go to commands as strings, formatted once.
    local seq, sseq, stored
    local counted = false
    if s.blocked and redis.call('SISMEMBER', s.blocked, ARGV[a + 7]) == 1 then
      -- A private message to a user who blocked its sender: not stored
      -- (seq 0), unless the stream holds its id already.
      seq, stored = 0, redis.call('ZSCORE', s.ids, ARGV[a + 5])
    else
      seq = redis.call('INCR', s.seq)
      if prefs and muted(s, ARGV[a + 4], spec, inc, inc_n, seq == 1) then
        -- The receiver's preferences keep it out: nothing stored (-1),
        -- the seq given back.
        redis.call('DECR', s.seq)
        seq = -1
      end
    end
    if seq > 0 then
      -- A checked message was counted by the check (see `muted`).
      counted = prefs ~= nil
      sseq = string.format('%d', seq)
      -- Indexing the id is the duplicate check: NX adds nothing for an id
      -- the stream holds (a fan-out job resumed after its node died), and
      -- then the seq is given back and the stored one replied.
      if max_entries > 0
          and redis.call('ZADD', s.ids, 'NX', sseq, ARGV[a + 5]) == 0 then
        redis.call('DECR', s.seq)
        stored = redis.call('ZSCORE', s.ids, ARGV[a + 5])
        if counted then redis.call('HINCRBY', s.counts, 'c:' .. ARGV[a + 4], '-' .. inc) end
      end
    end
    if seq == -1 then
      seqs[#seqs + 1] = -1
    elseif stored or seq == 0 then
      seqs[#seqs + 1] = tonumber(stored or 0)
    else
    local payload = ARGV[a + 2] .. cmsgpack.pack(seq) .. ARGV[a + 3]
    local reply = seq
    if s.groups and max_entries > 0 then
      local n, old = collapse(s, group, seq, now, keep)
      if old then
        payload = with_collapse(payload, n, old)
        reply = {seq, n, old}
      end
    end
    local t = logs[s.log]
    if not t then
      t = {k = s, len = 0}
      logs[s.log] = t
      touched[#touched + 1] = t
    end
    local one = '0'
    if max_entries > 0 then
      t.len = redis.call('RPUSH', s.log, stamp .. payload)
      if ARGV[a + 6] ~= '0' then
        redis.call('ZADD', s.exp, ARGV[a + 6], sseq)
        t.exp = true
      end
      if s.pm then index_private(s, t, sseq, ARGV[a + 7], max_age, keep, micros) end
      one = '1'
    end
    if s.counts and not counted then
      -- Unread and unseen, +1 each (see uncount).
      redis.call('HINCRBY', s.counts, 'c:' .. ARGV[a + 4], one == '1' and '4294967297' or '0')
    end
    if sharded then
      redis.call('SPUBLISH', ARGV[a + 1], payload)
    else
      redis.call('PUBLISH', ARGV[a + 1], payload)
    end
    seqs[#seqs + 1] = reply
    end
  end
  k = k + nkeys
  a = a + 10
end
for _, t in ipairs(touched) do
  local s = t.k
  if max_entries > 0 then
    if t.len > max_entries then
      if s.marks then
        local popped = redis.call('LPOP', s.log, t.len - max_entries)
        for _, entry in ipairs(popped) do uncount(s, entry_head(entry), true) end
      else
        redis.call('LTRIM', s.log, -max_entries, -1)
      end
      trim_ids(s)
    end
    if redis.call('PTTL', s.log) < max_age then
      redis.call('PEXPIRE', s.log, keep)
      redis.call('PEXPIRE', s.ids, keep)
      redis.call('PEXPIRE', s.exp, keep)
      if s.counts then redis.call('PEXPIRE', s.counts, keep) end
      if t.peers then redis.call('PEXPIRE', t.peers, keep) end
    elseif t.exp then
      redis.call('PEXPIRE', s.exp, keep)
    end
  else
    -- Nothing is retained: each message left as it came (counted 0).
    redis.call('DEL', s.log, s.ids, s.exp)
  end
end
return seqs
"#;

/// KEYS: the stream's keys. ARGV: after, limit, max age ms. The position of
/// `after + 1` is arithmetic (see PRELUDE).
const READ: &str = r#"
local k = stream_keys(1, #KEYS)
trim_old(k, now_ms(), tonumber(ARGV[3]))
local first, last, n = bounds(k)
local start = tonumber(ARGV[1]) + 1 - first
if start < 0 then start = 0 end
local limit = tonumber(ARGV[2])
if start >= n or limit <= 0 then return {} end
return redis.call('LRANGE', KEYS[2], start, start + limit - 1)
"#;

/// KEYS: the stream's keys. ARGV: before ('' = past the newest), limit,
/// max age ms. The window of seqs `[max(first, before - limit), before - 1]`,
/// oldest first (Rust reverses it).
const READ_BEFORE: &str = r#"
local k = stream_keys(1, #KEYS)
trim_old(k, now_ms(), tonumber(ARGV[3]))
local first, last = bounds(k)
local hi = last
if ARGV[1] ~= '' then hi = math.min(hi, tonumber(ARGV[1]) - 1) end
local limit = tonumber(ARGV[2])
if hi < first or limit <= 0 then return {} end
local lo = math.max(first, hi - limit + 1)
return redis.call('LRANGE', k.log, lo - first, hi - first)
"#;

/// KEYS: the stream's keys. ARGV: max age ms, then ids (16 raw bytes each).
/// The entries of the ids found in the index, in the order asked.
const FIND: &str = r#"
local k = stream_keys(1, #KEYS)
trim_old(k, now_ms(), tonumber(ARGV[1]))
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
"#;

/// KEYS: the stream's keys. ARGV: max age ms. Returns first retained, last.
const BOUNDS: &str = r#"
local k = stream_keys(1, #KEYS)
trim_old(k, now_ms(), tonumber(ARGV[1]))
local first, last = bounds(k)
return {first, last}
"#;

/// KEYS: the inbox's keys, then optionally the user's preferences hash.
/// ARGV: max age ms, now (unix ms). Trims by age,
/// then takes the members of the expiry index due by `now` out of it and
/// un-counts each one still retained (its entry is at the arithmetic
/// position; its exception stays), bumping the read-state version if any
/// was un-counted. Returns {the inbox's last seq, HGETALL counts, HGETALL
/// marks, the soonest expiry score or '', and with the preferences key
/// HGETALL preferences} (one slot: atomic). A connection's start asks for
/// the preferences here rather than with a command of its own.
const USER_COUNTS: &str = r#"
local k = stream_keys(1, 6)
trim_old(k, now_ms(), tonumber(ARGV[1]))
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
  if taken then redis.call('HINCRBY', k.marks, 'v', 1) end
end
local soonest = redis.call('ZRANGE', k.exp, 0, 0, 'WITHSCORES')
local out = {
  redis.call('GET', k.seq) or '0',
  redis.call('HGETALL', k.counts),
  redis.call('HGETALL', k.marks),
  soonest[2] or '',
}
if KEYS[7] then out[5] = redis.call('HGETALL', KEYS[7]) end
return out
"#;

/// KEYS: the `all` stream's keys. ARGV: max age ms, now (unix ms). Trims by
/// age, then returns {first retained, last, the retained seqs of the expiry
/// index due by `now`}. Those stay in the index (every user's counts need
/// them); due members below the first retained seq were trimmed and are
/// removed.
const ANNOUNCEMENTS: &str = r#"
local k = stream_keys(1, #KEYS)
trim_old(k, now_ms(), tonumber(ARGV[1]))
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
local soonest = redis.call('ZRANGEBYSCORE', k.exp, '(' .. ARGV[2], '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
return {first, last, expired, soonest[2] or ''}
"#;

/// KEYS: marks, counts, inbox seq, inbox log. ARGV: expected version,
/// channel ('': publish nothing, a bare change), sharded ('1' = SPUBLISH), event payload, then quads (op, field,
/// value, seq): `s` HSET marks, `d` HDEL marks, `c` HINCRBY counts
/// (`c:<category>` by unread delta × 2^32 + unseen delta), each for the
/// inbox message `seq` (0: none). Compare-and-set on
/// the version; the ops of an inbox message that retention dropped
/// meanwhile are skipped (its trim un-counted it by its old flags; trims do
/// not move the version, so marks on a full inbox under traffic are not
/// refused over and over). Returns 1 if applied (and the counts-changed
/// event published), 0 if the version moved.
const COMMIT_READ_STATE: &str = r#"
if tonumber(redis.call('HGET', KEYS[1], 'v') or '0') ~= tonumber(ARGV[1]) then
  return 0
end
local last = tonumber(redis.call('GET', KEYS[3]) or '0')
local first = last - redis.call('LLEN', KEYS[4]) + 1
redis.call('HINCRBY', KEYS[1], 'v', 1)
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
"#;

/// KEYS: cursor. ARGV: seq (already clamped to the stream's last seq).
const ACK: &str = r#"
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local want = tonumber(ARGV[1])
if want > cur then
  redis.call('SET', KEYS[1], ARGV[1])
  return want
end
return cur
"#;

/// The store's scripts, each with the shared helpers prepended.
pub(crate) struct Scripts {
    pub(crate) append_many: Script,
    pub(crate) read: Script,
    pub(crate) ack: Script,
    pub(crate) read_before: Script,
    pub(crate) find: Script,
    pub(crate) bounds: Script,
    pub(crate) user_counts: Script,
    pub(crate) announcements: Script,
    pub(crate) commit_read_state: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Scripts {
            append_many: Script::new("append_many", PRELUDE, APPEND_MANY),
            read: Script::new("read", PRELUDE, READ),
            ack: Script::new("ack", PRELUDE, ACK),
            read_before: Script::new("read_before", PRELUDE, READ_BEFORE),
            find: Script::new("find", PRELUDE, FIND),
            bounds: Script::new("bounds", PRELUDE, BOUNDS),
            user_counts: Script::new("user_counts", PRELUDE, USER_COUNTS),
            announcements: Script::new("announcements", PRELUDE, ANNOUNCEMENTS),
            commit_read_state: Script::new("commit_read_state", PRELUDE, COMMIT_READ_STATE),
        }
    }
}
