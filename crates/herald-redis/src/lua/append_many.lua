-- Whether the receiver's preferences keep a message of `category` (and
-- `topic`, '' for none) out; `check` '1': the category is on unless the
-- user set `in_app` off, '0': off unless they set it on (the operator's
-- default). Mirrors core's `keeps_out`. The default case costs no command
-- of its own: the message is counted first (HINCRBY of its category's
-- field, which the append does anyway) and the field carries a marker,
-- 2^62 added, while the user keeps the category out. Only a marked
-- field, a category off by default, a publish to a topic, or a field that
-- was 0 before (a new counts hash has lost its markers: it expires with the
-- log) reads the preferences hash (HMGET of `s.prefs`, named from the
-- inbox's prefix: the user's hash tag), and puts the marker right. A message kept out is
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

-- What an operation of `append_many` is, from its first argument: `t` a
-- touch (the sender's side of a private message: `touch_peer`), else the
-- stream, `i` a user's inbox or `a` the `all` stream, then its flags in
-- this order: `p` a private message (its sender follows the common
-- arguments), `g` grouped (its group key next), `c` checked against the
-- receiver's preferences (the check and topic last; see `muted`), `s` an
-- announcement of a severity other than normal (the `all` stream's
-- severity index). A kind is parsed once and remembered (`remember`);
-- `args` is how many arguments the operation takes; `p`, `g` and `c` are
-- the offsets of its optional ones from its first.
local KINDS = {}
-- Written out: a library's loading code may not call `ipairs`.
local VALID_KINDS = {
  t = true, a = true, as = true, i = true, ic = true, ig = true, igc = true,
  ip = true, ipc = true, ipg = true, ipgc = true,
}
local function parse_kind(s)
  if not VALID_KINDS[s] then error('herald: unknown append kind ' .. s) end
  if s == 't' then return {touch = true, args = 3} end
  local kind = {inbox = string.sub(s, 1, 1) == 'i', args = 6}
  if string.find(s, 's', 2, true) then kind.severe = true end
  -- The optional arguments, in this order after the common six.
  for _, flag in ipairs({'p', 'g', 'c'}) do
    if string.find(s, flag, 2, true) then
      kind[flag] = kind.args
      kind.args = kind.args + 1
    end
  end
  return kind
end
local function append_kind(s)
  return KINDS[s] or remember(KINDS, s, parse_kind(s))
end
-- The keys of a message's stream, named from its prefix `p` (`KEY`, the
-- suffixes `keys.rs` names them with; see `stream_keys` for the fields).
-- Each name costs a concatenation, so those a message seldom needs (the
-- expiry index, an inbox's marks and the receiver's preferences, used
-- only by an expiring message, a renewal, a trim or a `muted` lookup) are
-- named when first read (`__index`).
local LAZY_SUFFIX = {exp = KEY.exp, marks = KEY.marks, prefs = KEY.prefs}
local function lazy_key(k, name)
  local suffix = LAZY_SUFFIX[name]
  if not suffix or (name ~= 'exp' and not k.inbox) then return nil end
  local key = k.p .. suffix
  k[name] = key
  return key
end
local LAZY_KEYS = {__index = lazy_key}
local function append_keys(p, kind, from)
  local k = setmetatable({p = p, inbox = kind.inbox, seq = p .. KEY.seq, ids = p .. KEY.ids}, LAZY_KEYS)
  if kind.inbox then
    k.log = p .. KEY.inbox
    k.counts = p .. KEY.counts
    if kind.p then
      k.blocked = p .. KEY.blocked
      k.pm = p .. KEY.pm .. from
      k.peers = p .. KEY.peers
    end
    if kind.g then k.groups = p .. KEY.groups end
  else
    k.log = p .. KEY.log
    if kind.severe then k.sev = p .. KEY.sev end
  end
  return k
end

-- Appends a batch of messages in one call (group commit), and moves the
-- senders' conversation lists of private messages (a touch, kind `t`:
-- `touch_peer`; its reply is 0). KEYS: one per operation, the prefix of
-- its keys (`keys.rs`, `Keys::stream_prefix`): a message's stream's, a
-- touch's sender's. The function names the keys from it (`append_keys`);
-- a Redis Cluster lets a function touch keys it was not given when they
-- hash to the slot of one it was, and every key of a stream (and its
-- channel) carries the stream's hash tag. ARGV: max entries, max age ms,
-- sharded ('1' = SPUBLISH), the time in µs (16 digits, the gateway's
-- clock), then per operation its kind (`append_kind`) and its arguments.
-- A touch: the peer, the time in µs. A message: payload head, payload
-- tail, category (`<category>:<severity>` for a severity other than
-- normal: see below), id (16 raw bytes), expiry in unix ms (0 = none),
-- then, as its kind says, the sender (a private message), the group key
-- (see `collapse`), the preferences check ('1' or '0': the category's
-- default, see `muted`) followed by the topic it was published to, if any
-- (`1article:42`).
--
-- A message the receiver's preferences keep out (`muted`) is not stored:
-- its reply is -1.
--
-- A message whose id the stream's id index holds already is not stored
-- again: its reply is the stored seq. A private message whose sender is in
-- the receiver's block list (SISMEMBER) is not stored: its seq in the
-- reply is 0. A message that replaced the open item of its group
-- (`collapse`) is stored with `replaces` and `collapsed` spliced in at the
-- end of its payload (`with_collapse`), and its reply is {seq, collapsed,
-- replaced id}.
--
-- Each message is handled as a single append was: INCR its seq, index its
-- id (ZADD NX ids seq id, which is also the duplicate check: when it adds
-- nothing, DECR gives the seq back and ZSCORE reads the stored one, so a
-- new message pays one command for both), push the entry, index its expiry if it has one
-- (ZADD exp expiry seq), count it (an inbox message is new, so unread and
-- unseen in its category: HINCRBY counts `c:<category>` by 2^32 + 1, see
-- `uncount`; a severity other than normal also HINCRBY `s:<category>:
-- <severity>` by 1, unread only: a normal message, the common one, pays
-- no command and no argument more, and normal is derived as the rest),
-- publish. An announcement of a severity other than normal (kind `as`)
-- also writes the `all` stream's severity index (`{all}:sev`): ZADD its
-- `<seq>:<severity>`, then, once per call, ZREMRANGEBYSCORE of the members
-- below the first retained seq and PEXPIRE `keep` (it lives as long as its
-- newest member's entry may); a normal one (kind `a`) pays nothing more. The payload is the msgpack `Message`
-- whose seq field is spliced in here: Rust encodes it with seq 0 and sends
-- what comes before and after that value. Retention runs once per log
-- touched, after the pushes (nobody sees the list in between): only when
-- RPUSH reported more than max entries, an inbox pops the excess (LPOP
-- count) and un-counts each popped entry, the `all` stream LTRIMs; then the index loses the seqs before the first
-- retained one; then, when the log's PTTL has run below max age (or it has
-- none: a new log), PEXPIRE the log, its id and expiry indexes, the
-- counts and the receiver's conversation list to `keep_ms` (when the log expires whole, every entry is past max
-- age, so nothing retained counts); an expiry index that got a member
-- always gets its PEXPIRE, as it may be new. Entries past max age are not looked for here:
-- every read drops them first, so no reader ever sees them, and the count
-- bound holds regardless; that saves a LINDEX per message. With max
-- entries 0 nothing is kept: each message counts 0, the log and indexes
-- are deleted (as the in-memory store's immediate trim does). Returns the seqs, in the order of the messages.
register('append_many', function(KEYS, ARGV)
  local max_entries = number(ARGV[1])
  local max_age = number(ARGV[2])
  local sharded = ARGV[3] == '1'
  -- The gateway's clock, as the message's `ts` is: a string of 16
  -- digits, so its first 13 are the time in ms, as an entry's stamp is
  -- written. Asking Redis (TIME) cost a command, two tonumber and two
  -- string.format per call, some 13,000 instructions.
  local micros = ARGV[4]
  local stamp = string.sub(micros, 1, 13)
  local keep = keep_of(ARGV[2])
  -- What an append adds to its category's packed counts field (see uncount).
  local inc = max_entries > 0 and '4294967297' or '0'
  local inc_n = max_entries > 0 and 4294967297 or 0
  local seqs = {}
  local logs = {}
  local touched = {}
  local k = 1
  local a = 5
  while a <= #ARGV do
    local kind = append_kind(ARGV[a])
    if kind.touch then
      touch_peer(KEYS[k] .. KEY.peers, ARGV[a + 1], ARGV[a + 2], keep)
      seqs[#seqs + 1] = 0
    else
      local p = KEYS[k]
      local from = kind.p and ARGV[a + kind.p]
      local group = kind.g and ARGV[a + kind.g]
      local spec = kind.c and ARGV[a + kind.c]
      -- `remind:high`: the category and its severity's counts field.
      local category, severe = ARGV[a + 3], nil
      local sep = string.find(category, ':', 1, true)
      if sep then
        severe = 's:' .. category
        category = string.sub(category, 1, sep - 1)
      end
      local s = append_keys(p, kind, from)
      local prefs = kind.c
      -- Numbers go to commands as strings, formatted once.
      local seq, sseq, stored
      local counted = false
      if s.blocked and redis.call('SISMEMBER', s.blocked, from) == 1 then
        -- A private message to a user who blocked its sender: not stored
        -- (seq 0), unless the stream holds its id already.
        seq, stored = 0, redis.call('ZSCORE', s.ids, ARGV[a + 4])
      else
        seq = redis.call('INCR', s.seq)
        if prefs and muted(s, category, spec, inc, inc_n, seq == 1) then
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
            and redis.call('ZADD', s.ids, 'NX', sseq, ARGV[a + 4]) == 0 then
          redis.call('DECR', s.seq)
          stored = redis.call('ZSCORE', s.ids, ARGV[a + 4])
          if counted then redis.call('HINCRBY', s.counts, 'c:' .. category, '-' .. inc) end
        end
      end
      if seq == -1 then
        seqs[#seqs + 1] = -1
      elseif stored or seq == 0 then
        seqs[#seqs + 1] = tonumber(stored or 0)
      else
      local payload = ARGV[a + 1] .. cmsgpack.pack(seq) .. ARGV[a + 2]
      local reply = seq
      if s.groups and max_entries > 0 then
        local n, old = collapse(s, group, seq, tonumber(stamp), keep)
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
        if ARGV[a + 5] ~= '0' then
          redis.call('ZADD', s.exp, ARGV[a + 5], sseq)
          t.exp = true
        end
        if s.pm then index_private(s, t, sseq, from, ARGV[2], keep, micros) end
        if s.sev then
          -- An announcement of a severity other than normal: indexed for
          -- the counts (`announcements`), trimmed below the first retained
          -- seq once the log is (the loop below).
          redis.call('ZADD', s.sev, sseq, sseq .. ':' .. string.sub(severe, #category + 4))
          t.sev = s.sev
        end
        one = '1'
      end
      if s.counts and not counted then
        -- Unread and unseen, +1 each (see uncount).
        redis.call('HINCRBY', s.counts, 'c:' .. category, one == '1' and '4294967297' or '0')
      end
      if severe and s.counts and one == '1' then
        redis.call('HINCRBY', s.counts, severe, '1')
      end
      if sharded then
        redis.call('SPUBLISH', p .. KEY.ch, payload)
      else
        redis.call('PUBLISH', p .. KEY.ch, payload)
      end
      seqs[#seqs + 1] = reply
      end
    end
    k = k + 1
    a = a + kind.args
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
      if t.sev then
        local first = tonumber(redis.call('GET', s.seq)) - redis.call('LLEN', s.log) + 1
        redis.call('ZREMRANGEBYSCORE', t.sev, '-inf', string.format('(%d', first))
        redis.call('PEXPIRE', t.sev, keep)
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
end)
