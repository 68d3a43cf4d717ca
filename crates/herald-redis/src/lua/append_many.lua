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

-- Appends a batch of messages in one call (group commit), and moves the
-- senders' conversation lists of private messages (an op with one key,
-- the list: ARGV its key count 1, the peer, the time in µs;
-- `touch_peer`; its reply is 0). KEYS, per
-- message: its stream's keys (seq, log, ids, exp, and for an inbox marks,
-- counts, and for a private message the receiver's block list, index of
-- the sender's messages and conversation list; see `index_private`; then,
-- for an inbox message with a group key, the inbox's groups hash; last,
-- for an inbox message with a preferences check, the receiver's
-- preferences hash, read by `muted` only when it must). ARGV: max
-- entries, max age ms, sharded ('1' = SPUBLISH), the time in µs (16
-- digits, the gateway's clock), then per message ten
-- values: its key count (4, 6 or 9, one more with a groups hash, one more
-- with a preferences check), channel,
-- payload head, payload tail, category (`<category>:<severity>` for a
-- severity other than normal: see below), id (16 raw bytes), expiry in unix
-- ms (0 = none), sender ('' unless the message is private), group key (''
-- for none: see `collapse`), the preferences check ('-' none, '1' or '0':
-- the category's default, see `muted`) followed by the topic it was
-- published to, if any (`1article:42`).
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
-- publish. An announcement of a severity other than normal brings the
-- `all` stream's severity index as a fifth key (`{all}:sev`): ZADD its
-- `<seq>:<severity>`, then, once per call, ZREMRANGEBYSCORE of the members
-- below the first retained seq and PEXPIRE `keep` (it lives as long as its
-- newest member's entry may); a normal one brings 4 keys and pays nothing
-- more. The payload is the msgpack `Message`
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
    local nkeys = number(ARGV[a])
    if nkeys == 1 then
      -- The sender's side of a private message: its conversation list.
      touch_peer(KEYS[k], ARGV[a + 1], ARGV[a + 2], keep)
      seqs[#seqs + 1] = 0
    else
      -- A checked message (preferences) brings the receiver's preferences
      -- hash as its last key, a grouped one (collapse) its inbox's groups
      -- hash before that.
      local group, spec = ARGV[a + 8], ARGV[a + 9]
      -- `remind:high`: the category and its severity's counts field.
      local category, severe = ARGV[a + 4], nil
      local sep = string.find(category, ':', 1, true)
      if sep then
        severe = 's:' .. category
        category = string.sub(category, 1, sep - 1)
      end
      local n = nkeys
      local prefs
      if spec ~= '-' then
        n = n - 1
        prefs = KEYS[k + n]
      end
      local s
      if group == '' then
        s = stream_keys(KEYS, k, n)
      else
        s = stream_keys(KEYS, k, n - 1)
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
            and redis.call('ZADD', s.ids, 'NX', sseq, ARGV[a + 5]) == 0 then
          redis.call('DECR', s.seq)
          stored = redis.call('ZSCORE', s.ids, ARGV[a + 5])
          if counted then redis.call('HINCRBY', s.counts, 'c:' .. category, '-' .. inc) end
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
        if ARGV[a + 6] ~= '0' then
          redis.call('ZADD', s.exp, ARGV[a + 6], sseq)
          t.exp = true
        end
        if s.pm then index_private(s, t, sseq, ARGV[a + 7], ARGV[2], keep, micros) end
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
        redis.call('SPUBLISH', ARGV[a + 1], payload)
      else
        redis.call('PUBLISH', ARGV[a + 1], payload)
      end
      seqs[#seqs + 1] = reply
      end
    end
    k = k + nkeys
    a = a + (nkeys == 1 and 3 or 10)
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
