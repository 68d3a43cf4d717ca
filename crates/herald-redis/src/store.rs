//! The store: one Lua script per batch of appends (for each message: seq,
//! entry, id index, kept counts, retention and publish in one atomic step;
//! see `batch.rs` for the group commit), one per read (retention, then a
//! slice of the list by arithmetic on seqs), and the read state of a user in
//! one hash, committed by compare-and-set in one script that also adjusts
//! the kept counts and publishes a counts-changed event. Messages with an
//! `expires_at` are indexed per stream by expiry; reading a user's counts
//! un-counts the inbox ones that expired, once.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use fred::interfaces::{HashesInterface, KeysInterface};
use fred::prelude::Value;
use herald_core::{
    validate_user_id, AnnouncementRange, CoreError, Draft, Flags, KeptCounts, MarksUpdate,
    ReadChange, ReadState, Result, Retention, Store, StreamKey,
};
use herald_protocol::{Category, Message, Stream};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::batch::{AppendBatcher, PendingAppend};
use crate::script::Script;
use crate::{unavailable, Shared};

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
/// each inbox entry (and bumping the read-state version: a mark computed
/// before the trim must be computed again), then drops the index members of
/// what left. Bounded so that one call never blocks Redis for long; the
/// keys' PEXPIRE and later calls do the rest. The expiry index keeps the
/// members of trimmed seqs until they are due (`user_counts` and
/// `announcements` drop them then).
const PRELUDE: &str = r#"
local function stream_keys(i, n)
  local k = {seq = KEYS[i], log = KEYS[i + 1], ids = KEYS[i + 2], exp = KEYS[i + 3]}
  if n >= 6 then
    k.marks = KEYS[i + 4]
    k.counts = KEYS[i + 5]
  end
  if n == 7 then k.blocked = KEYS[i + 6] end
  return k
end
-- The seq and category of a log entry. Not cmsgpack.unpack: Redis's
-- cmsgpack refuses the bin type that the message id is encoded with. A
-- Message is a map whose first fields are seq (uint), stream (str), id
-- (bin), category (str), in that order (serde's field order; a unit test
-- pins it), so this reads the map's head only.
local UINTS = {[0xcc] = 1, [0xcd] = 2, [0xce] = 4, [0xcf] = 8}
local LENS = {[0xc4] = 1, [0xd9] = 1, [0xc5] = 2, [0xda] = 2, [0xc6] = 4, [0xdb] = 4}
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
    if UINTS[t] then return be(p + 1, UINTS[t]), p + 1 + UINTS[t] end
    if LENS[t] then
      local n = be(p + 1, LENS[t])
      local from = p + 1 + LENS[t]
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
-- level + 4 * archived + 8 * deleted + 16 * expired), else what the watermarks say
-- (seq <= i.r: read, level 2; seq <= i.s: seen, 1; else unseen, 0).
-- Unread: not archived, not deleted, level < 2 (its category's field -1).
-- Unseen: not archived, not deleted, level 0 (`unseen:<category>` -1).
local function uncount(k, m, forget)
  local field = string.format('i.%d', m.seq)
  local code = tonumber(redis.call('HGET', k.marks, field) or '')
  if code then
    if forget then redis.call('HDEL', k.marks, field) end
  else
    if not k.read_upto then
      local w = redis.call('HMGET', k.marks, 'i.r', 'i.s')
      k.read_upto = tonumber(w[1] or '0')
      k.seen_upto = tonumber(w[2] or '0')
    end
    if m.seq <= k.read_upto then
      code = 2
    elseif m.seq <= k.seen_upto then
      code = 1
    else
      code = 0
    end
  end
  if not forget and code < 16 then
    -- Expired: remembered (Flags::expired, +16), so that retention
    -- dropping it later does not un-count it a second time.
    redis.call('HSET', k.marks, field, code + 16)
  end
  if code >= 4 then return end
  local level = code % 4
  if level < 2 then redis.call('HINCRBY', k.counts, m.category, -1) end
  if level == 0 then redis.call('HINCRBY', k.counts, 'unseen:' .. m.category, -1) end
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
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function bounds(k)
  local last = tonumber(redis.call('GET', k.seq) or '0')
  local n = redis.call('LLEN', k.log)
  return last - n + 1, last, n
end
"#;

/// Appends a batch of messages in one call (group commit). KEYS, per
/// message: its stream's keys (seq, log, ids, exp, and for an inbox marks,
/// counts, and for a private message the receiver's block list). ARGV: max
/// entries, max age ms, sharded ('1' = SPUBLISH), then per message eight
/// values: its key count (4, 6 or 7), channel, payload head, payload tail,
/// category, id (16 raw bytes), expiry in unix ms (0 = none), sender (''
/// unless the block list is a key).
///
/// A private message whose sender is in the receiver's block list
/// (SISMEMBER) is not stored: its seq in the reply is 0.
///
/// Each message is handled as a single append was: INCR its seq, push the
/// entry, index its id (ZADD ids seq id) and its expiry if it has one
/// (ZADD exp expiry seq), count it (an inbox message is new, so unread and
/// unseen in its category: HINCRBY counts `<category>` 1 and
/// `unseen:<category>` 1), publish. The payload is the msgpack `Message`
/// whose seq field is spliced in here: Rust encodes it with seq 0 and sends
/// what comes before and after that value. Retention runs once per log
/// touched, after the pushes (nobody sees the list in between): only when
/// RPUSH reported more than max entries, an inbox pops the excess (LPOP
/// count), un-counts each popped entry and bumps the read-state version,
/// the `all` stream LTRIMs; then the index loses the seqs before the first
/// retained one; then PEXPIRE the log, its id and expiry indexes and the
/// counts (when the log expires whole, every entry is past max age, so
/// nothing retained counts). Entries past max age are not looked for here:
/// every read drops them first, so no reader ever sees them, and the count
/// bound holds regardless; that saves a LINDEX per message. With max
/// entries 0 nothing is kept: each message counts 0, the log and indexes
/// are deleted and an inbox's version is bumped (as the in-memory store's
/// immediate trim does). Returns the seqs, in the order of the messages.
const APPEND_MANY: &str = r#"
local max_entries = tonumber(ARGV[1])
local max_age = tonumber(ARGV[2])
local sharded = ARGV[3] == '1'
local now = 0
if max_entries > 0 then now = now_ms() end
local stamp = string.format('%013d', now)
local seqs = {}
local logs = {}
local touched = {}
local k = 1
local a = 4
while a <= #ARGV do
  local nkeys = tonumber(ARGV[a])
  local s = stream_keys(k, nkeys)
  if s.blocked and redis.call('SISMEMBER', s.blocked, ARGV[a + 7]) == 1 then
    -- A private message to a user who blocked its sender: not stored.
    seqs[#seqs + 1] = 0
  else
  local seq = redis.call('INCR', s.seq)
  local payload = ARGV[a + 2] .. cmsgpack.pack(seq) .. ARGV[a + 3]
  local t = logs[s.log]
  if not t then
    t = {k = s, len = 0}
    logs[s.log] = t
    touched[#touched + 1] = t
  end
  local one = 0
  if max_entries > 0 then
    t.len = redis.call('RPUSH', s.log, stamp .. payload)
    redis.call('ZADD', s.ids, seq, ARGV[a + 5])
    if ARGV[a + 6] ~= '0' then redis.call('ZADD', s.exp, ARGV[a + 6], seq) end
    one = 1
  end
  if s.counts then
    redis.call('HINCRBY', s.counts, ARGV[a + 4], one)
    redis.call('HINCRBY', s.counts, 'unseen:' .. ARGV[a + 4], one)
  end
  if sharded then
    redis.call('SPUBLISH', ARGV[a + 1], payload)
  else
    redis.call('PUBLISH', ARGV[a + 1], payload)
  end
  seqs[#seqs + 1] = seq
  end
  k = k + nkeys
  a = a + 8
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
    redis.call('PEXPIRE', s.log, max_age)
    redis.call('PEXPIRE', s.ids, max_age)
    redis.call('PEXPIRE', s.exp, max_age)
    if s.counts then redis.call('PEXPIRE', s.counts, max_age) end
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

/// KEYS: the inbox's keys. ARGV: max age ms, now (unix ms). Trims by age,
/// then takes the members of the expiry index due by `now` out of it and
/// un-counts each one still retained (its entry is at the arithmetic
/// position; its exception stays), bumping the read-state version if any
/// was un-counted. Returns {the inbox's last seq, HGETALL counts, HGETALL
/// marks} (one slot: atomic).
const USER_COUNTS: &str = r#"
local k = stream_keys(1, #KEYS)
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
return {
  redis.call('GET', k.seq) or '0',
  redis.call('HGETALL', k.counts),
  redis.call('HGETALL', k.marks),
  soonest[2] or '',
}
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
/// channel, sharded ('1' = SPUBLISH), event payload, then quads (op, field,
/// value, seq): `s` HSET marks, `d` HDEL marks, `c` HINCRBY counts
/// (`<category>` by an unread delta, `unseen:<category>` by an unseen
/// delta), each for the inbox message `seq` (0: none). Compare-and-set on
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
if ARGV[3] == '1' then
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

/// Width of the append-time prefix of each log entry.
const TIME_PREFIX: usize = 13;

pub(crate) struct Scripts {
    pub(crate) append_many: Script,
    read: Script,
    ack: Script,
    read_before: Script,
    find: Script,
    bounds: Script,
    user_counts: Script,
    announcements: Script,
    commit_read_state: Script,
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

/// [`Store`] on Redis lists and counters.
pub struct RedisStore {
    shared: Arc<Shared>,
    retention: Retention,
    batcher: Arc<AppendBatcher>,
}

impl RedisStore {
    pub(crate) fn new(shared: Arc<Shared>, retention: Retention) -> Self {
        let batcher = Arc::new(AppendBatcher::new(
            shared.clone(),
            retention.max_entries.to_string(),
            max_age_ms(&retention),
        ));
        RedisStore {
            shared,
            retention,
            batcher,
        }
    }

    fn max_age_ms(&self) -> String {
        max_age_ms(&self.retention)
    }

    /// The keys every script touching `stream` gets (see `PRELUDE`): seq,
    /// log, ids, exp, and for an inbox marks and counts, which retention
    /// keeps in step.
    fn stream_keys(&self, stream: &StreamKey) -> Vec<String> {
        let keys = &self.shared.keys;
        let mut out = vec![
            keys.seq(stream),
            keys.log(stream),
            keys.ids(stream),
            keys.exp(stream),
        ];
        if let Some(user) = stream.user() {
            out.push(keys.marks(user));
            out.push(keys.unread(user));
        }
        out
    }

    /// Runs a script returning log entries and decodes them.
    async fn entries(
        &self,
        script: &Script,
        stream: &StreamKey,
        args: Vec<Value>,
    ) -> Result<Vec<Message>> {
        let entries: Vec<Bytes> = script
            .run(self.shared.pool.next(), self.stream_keys(stream), args)
            .await?;
        entries.iter().map(|e| decode_entry(e)).collect()
    }
}

/// The field prefix of a stream in the marks hash.
fn stream_tag(stream: Stream) -> &'static str {
    match stream {
        Stream::Inbox => "i",
        Stream::All => "a",
    }
}

fn corrupt(what: &str) -> CoreError {
    CoreError::Unavailable(format!("redis: corrupt {what}"))
}

/// The marks hash (see [`crate::keys::Keys::marks`]) as a [`ReadState`];
/// fields it does not know are ignored.
fn parse_read_state(fields: HashMap<String, String>) -> Result<ReadState> {
    let mut state = ReadState::default();
    let number = |v: &str| v.parse::<u64>().map_err(|_| corrupt("read state"));
    for (field, value) in fields {
        if field == "v" {
            state.version = number(&value)?;
            continue;
        }
        let Some((tag, rest)) = field.split_once('.') else {
            continue;
        };
        let Some(stream) = Stream::ALL.into_iter().find(|s| stream_tag(*s) == tag) else {
            continue;
        };
        let marks = state.marks_mut(stream);
        match rest {
            "s" => marks.seen_upto = number(&value)?,
            "r" => marks.read_upto = number(&value)?,
            seq => {
                let Ok(seq) = seq.parse::<u64>() else {
                    continue;
                };
                let code = value.parse::<u8>().map_err(|_| corrupt("read state"))?;
                marks.exceptions.insert(seq, Flags::from_code(code));
            }
        }
    }
    Ok(state)
}

/// The commit script's (op, field, value) triples for `change`.
fn commit_ops(change: &ReadChange) -> Vec<Value> {
    let mut args: Vec<Value> = Vec::new();
    // `seq`: the inbox message the op belongs to (0: none), skipped by the
    // script when retention dropped it meanwhile.
    let mut op = |op: &'static str, field: String, value: String, seq: u64| {
        args.push(op.into());
        args.push(field.into());
        args.push(value.into());
        args.push(seq.to_string().into());
    };
    let inbox_seq = |stream: Stream, seq: u64| if stream == Stream::Inbox { seq } else { 0 };
    for update in &change.updates {
        match *update {
            MarksUpdate::SeenUpto(stream, seq) => {
                op("s", format!("{}.s", stream_tag(stream)), seq.to_string(), 0)
            }
            MarksUpdate::ReadUpto(stream, seq) => {
                op("s", format!("{}.r", stream_tag(stream)), seq.to_string(), 0)
            }
            MarksUpdate::Set(stream, seq, flags) => op(
                "s",
                format!("{}.{seq}", stream_tag(stream)),
                flags.code().to_string(),
                inbox_seq(stream, seq),
            ),
            MarksUpdate::Unset(stream, seq) => op(
                "d",
                format!("{}.{seq}", stream_tag(stream)),
                String::new(),
                inbox_seq(stream, seq),
            ),
        }
    }
    for delta in &change.deltas {
        if delta.unread != 0 {
            op(
                "c",
                delta.category.clone(),
                delta.unread.to_string(),
                delta.seq,
            );
        }
        if delta.unseen != 0 {
            let field = format!("{UNSEEN_PREFIX}{}", delta.category);
            op("c", field, delta.unseen.to_string(), delta.seq);
        }
    }
    args
}

/// An expiry index score (unix ms, as text; empty: none) as a time.
fn parse_expiry_score(score: Value) -> Result<Option<OffsetDateTime>> {
    let text = score
        .convert::<String>()
        .map_err(|_| corrupt("expiry score"))?;
    if text.is_empty() {
        return Ok(None);
    }
    let ms: f64 = text.parse().map_err(|_| corrupt("expiry score"))?;
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .map(Some)
        .map_err(|_| corrupt("expiry score"))
}

/// The counts hash holds `<category>` -> unread and `unseen:<category>` ->
/// unseen (category names are `[a-z0-9_]`, so the two cannot collide).
const UNSEEN_PREFIX: &str = "unseen:";

/// The counts hash (see [`UNSEEN_PREFIX`]) as [`KeptCounts`] as of
/// `last_seq`.
fn parse_kept_counts(fields: HashMap<String, String>, last_seq: u64) -> Result<KeptCounts> {
    let mut counts = KeptCounts {
        last_seq,
        ..KeptCounts::default()
    };
    for (field, value) in fields {
        let value: i64 = value.parse().map_err(|_| corrupt("kept counts"))?;
        match field.strip_prefix(UNSEEN_PREFIX) {
            Some(category) => counts.unseen.insert(category.to_owned(), value),
            None => counts.unread.insert(field, value),
        };
    }
    Ok(counts)
}

/// `expires_at` as the expiry index's score: unix ms rounded up, at least
/// 1 (0 means "none" to the append script). With `now` rounded down (see
/// [`now_ms`]) a message is never taken as expired before its
/// `expires_at`; at most it is taken within the millisecond after.
pub(crate) fn expiry_ms(expires_at: Option<OffsetDateTime>) -> i64 {
    let Some(t) = expires_at else {
        return 0;
    };
    let ns = t.unix_timestamp_nanos();
    let ms = ns.div_euclid(1_000_000) + i128::from(ns.rem_euclid(1_000_000) != 0);
    i64::try_from(ms).unwrap_or(i64::MAX).max(1)
}

/// `now` in unix ms rounded down, for comparing with [`expiry_ms`].
fn now_ms(now: OffsetDateTime) -> String {
    now.unix_timestamp_nanos().div_euclid(1_000_000).to_string()
}

fn max_age_ms(retention: &Retention) -> String {
    // PEXPIRE takes a signed 64-bit count of ms.
    retention
        .max_age
        .as_millis()
        .min(i64::MAX as u128 / 2)
        .to_string()
}

fn check_stream(key: &StreamKey) -> Result<()> {
    match key {
        StreamKey::Inbox(user) => validate_user_id(user),
        StreamKey::All => Ok(()),
    }
}

/// Splits the msgpack encoding of `message` (whose seq is 0) around the seq
/// value, for the append script to splice the real seq in.
fn split_payload(message: &Message) -> Result<(Bytes, Bytes)> {
    debug_assert_eq!(message.seq, 0);
    let bytes = rmp_serde::to_vec_named(message)
        .map_err(|e| CoreError::Invalid(format!("cannot encode message: {e}")))?;
    // fixmap header, fixstr "seq", positive fixint 0: `seq` is the first field.
    const SEQ_KEY: &[u8] = &[0xa3, b's', b'e', b'q', 0x00];
    if bytes.len() < 6 || &bytes[1..6] != SEQ_KEY {
        return Err(CoreError::Unavailable(
            "unexpected msgpack layout of Message: seq is not its first field".into(),
        ));
    }
    let bytes = Bytes::from(bytes);
    Ok((bytes.slice(..5), bytes.slice(6..)))
}

/// Decodes a log entry (append time prefix + msgpack `Message`).
/// (`entry_head` in the scripts reads its seq and category itself.)
fn decode_entry(entry: &[u8]) -> Result<Message> {
    let payload = entry
        .get(TIME_PREFIX..)
        .ok_or_else(|| CoreError::Unavailable("corrupt log entry".into()))?;
    crate::broker::decode_message(payload)
}

#[async_trait]
impl Store for RedisStore {
    async fn append(&self, stream: &StreamKey, draft: Draft) -> Result<Message> {
        check_stream(stream)?;
        let keys = &self.shared.keys;
        let message = draft.into_message(stream.stream(), 0);
        let (head, tail) = split_payload(&message)?;
        let mut script_keys = self.stream_keys(stream);
        // A private message checks the receiver's block list in the same
        // script (same hash tag: no extra round trip).
        let from = match (stream.user(), &message.from) {
            (Some(user), Some(from)) if message.category == Category::MAILBOX => {
                script_keys.push(keys.blocked(user));
                from.clone()
            }
            _ => String::new(),
        };
        // Every key of a stream shares its hash tag: one slot per stream.
        let slot = fred::util::redis_keyslot(script_keys[0].as_bytes());
        let pending = PendingAppend::new(
            slot,
            script_keys,
            keys.channel(stream),
            head,
            tail,
            &message,
            from,
        );
        let seq = self.batcher.append(pending).await?;
        if seq == 0 {
            return Err(CoreError::Blocked(
                "the receiver does not accept your messages".into(),
            ));
        }
        Ok(Message { seq, ..message })
    }

    async fn read_after(
        &self,
        stream: &StreamKey,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Message>> {
        check_stream(stream)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut out = self
            .entries(
                &self.shared.scripts.read,
                stream,
                vec![
                    after.to_string().into(),
                    limit.to_string().into(),
                    self.max_age_ms().into(),
                ],
            )
            .await?;
        // The arithmetic in the script relies on the log's invariant;
        // filtering keeps a broken invariant from repeating messages.
        out.retain(|m| m.seq > after);
        Ok(out)
    }

    async fn last_seq(&self, stream: &StreamKey) -> Result<u64> {
        check_stream(stream)?;
        let seq: Option<u64> = self
            .shared
            .pool
            .get(self.shared.keys.seq(stream))
            .await
            .map_err(unavailable)?;
        Ok(seq.unwrap_or(0))
    }

    async fn ack(&self, user: &str, device: &str, stream: Stream, seq: u64) -> Result<u64> {
        validate_user_id(user)?;
        validate_user_id(device)?;
        // The `all` stream's counter lives in another slot than the user's
        // cursor, so read it first: it only grows, so clamping to a value
        // read a moment earlier is still never past the real last seq.
        let last = self.last_seq(&StreamKey::for_user(user, stream)).await?;
        let target = seq.min(last);
        self.shared
            .scripts
            .ack
            .run(
                self.shared.pool.next(),
                vec![self.shared.keys.cursor(user, stream, device)],
                vec![target.to_string().into()],
            )
            .await
    }

    async fn acked(&self, user: &str, device: &str, stream: Stream) -> Result<u64> {
        validate_user_id(user)?;
        validate_user_id(device)?;
        let cur: Option<u64> = self
            .shared
            .pool
            .get(self.shared.keys.cursor(user, stream, device))
            .await
            .map_err(unavailable)?;
        Ok(cur.unwrap_or(0))
    }

    async fn read_before(
        &self,
        stream: &StreamKey,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Message>> {
        check_stream(stream)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut out = self
            .entries(
                &self.shared.scripts.read_before,
                stream,
                vec![
                    before.map_or_else(String::new, |b| b.to_string()).into(),
                    limit.to_string().into(),
                    self.max_age_ms().into(),
                ],
            )
            .await?;
        out.reverse();
        // As in read_after: a broken invariant must not leak other seqs.
        out.retain(|m| before.is_none_or(|b| m.seq < b));
        Ok(out)
    }

    async fn find(&self, stream: &StreamKey, ids: &[Uuid]) -> Result<Vec<Message>> {
        check_stream(stream)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut args: Vec<Value> = Vec::with_capacity(ids.len() + 1);
        args.push(self.max_age_ms().into());
        args.extend(
            ids.iter()
                .map(|id| Value::Bytes(Bytes::copy_from_slice(id.as_bytes()))),
        );
        let mut out = self
            .entries(&self.shared.scripts.find, stream, args)
            .await?;
        out.retain(|m| ids.contains(&m.id));
        Ok(out)
    }

    async fn bounds(&self, stream: &StreamKey) -> Result<(u64, u64)> {
        check_stream(stream)?;
        let (first, last): (i64, i64) = self
            .shared
            .scripts
            .bounds
            .run(
                self.shared.pool.next(),
                self.stream_keys(stream),
                vec![self.max_age_ms().into()],
            )
            .await?;
        let (Ok(first), Ok(last)) = (u64::try_from(first), u64::try_from(last)) else {
            return Err(corrupt("log bounds"));
        };
        Ok((first, last))
    }

    async fn read_state(&self, user: &str) -> Result<ReadState> {
        validate_user_id(user)?;
        let fields: HashMap<String, String> = self
            .shared
            .pool
            .hgetall(self.shared.keys.marks(user))
            .await
            .map_err(unavailable)?;
        parse_read_state(fields)
    }

    async fn commit_read_state(&self, user: &str, change: &ReadChange) -> Result<bool> {
        validate_user_id(user)?;
        let keys = &self.shared.keys;
        let mut args: Vec<Value> = vec![
            change.expect_version.to_string().into(),
            keys.channel(&StreamKey::inbox(user)).into(),
            if self.shared.sharded { "1" } else { "0" }.into(),
            Value::Bytes(Bytes::from_static(crate::broker::COUNTS_CHANGED)),
        ];
        args.extend(commit_ops(change));
        let applied: i64 = self
            .shared
            .scripts
            .commit_read_state
            .run(
                self.shared.pool.next(),
                vec![
                    keys.marks(user),
                    keys.unread(user),
                    keys.seq(&StreamKey::inbox(user)),
                    keys.log(&StreamKey::inbox(user)),
                ],
                args,
            )
            .await?;
        Ok(applied == 1)
    }

    async fn user_counts(
        &self,
        user: &str,
        now: OffsetDateTime,
    ) -> Result<(KeptCounts, ReadState)> {
        validate_user_id(user)?;
        let reply: Vec<Value> = self
            .shared
            .scripts
            .user_counts
            .run(
                self.shared.pool.next(),
                self.stream_keys(&StreamKey::inbox(user)),
                vec![self.max_age_ms().into(), now_ms(now).into()],
            )
            .await?;
        let [seq, counts, marks, soonest]: [Value; 4] =
            reply.try_into().map_err(|_| corrupt("user counts"))?;
        let last_seq = seq.convert::<u64>().map_err(|_| corrupt("inbox seq"))?;
        let hash = |v: Value| {
            v.convert::<HashMap<String, String>>()
                .map_err(|_| corrupt("user counts"))
        };
        let mut kept = parse_kept_counts(hash(counts)?, last_seq)?;
        kept.next_expiry = parse_expiry_score(soonest)?;
        Ok((kept, parse_read_state(hash(marks)?)?))
    }

    async fn announcements(&self, now: OffsetDateTime) -> Result<AnnouncementRange> {
        let (first, last, mut expired, next_expiry) = {
            let reply: Vec<Value> = self
                .shared
                .scripts
                .announcements
                .run(
                    self.shared.pool.next(),
                    self.stream_keys(&StreamKey::All),
                    vec![self.max_age_ms().into(), now_ms(now).into()],
                )
                .await?;
            let [first, last, expired, soonest]: [Value; 4] = reply
                .try_into()
                .map_err(|_| corrupt("announcement range"))?;
            let number = |v: Value| {
                v.convert::<u64>()
                    .map_err(|_| corrupt("announcement range"))
            };
            let expired = expired
                .into_array()
                .into_iter()
                .map(number)
                .collect::<Result<Vec<u64>>>()?;
            (
                number(first)?,
                number(last)?,
                expired,
                parse_expiry_score(soonest)?,
            )
        };
        expired.sort_unstable();
        Ok(AnnouncementRange {
            first,
            last,
            expired,
            next_expiry,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_protocol::Category;

    /// `entry_head` (Lua) reads seq, stream, id, category from the head of
    /// the encoded message, in this order, with these msgpack types, with
    /// or without an `expires_at` (the last field), and with a configured
    /// category name as long as names may be (a str8).
    #[test]
    fn message_head_is_what_the_scripts_read() {
        let long: Category = "c".repeat(Category::MAX_LEN).parse().unwrap();
        for (category, expires) in [
            (Category::RESOURCE_SUBSCRIPTION, false),
            (Category::RESOURCE_SUBSCRIPTION, true),
            (long, true),
        ] {
            let mut draft = Draft::new(category.clone(), "b");
            if expires {
                draft.expires_at = Some(draft.ts + std::time::Duration::from_secs(60));
            }
            let message = draft.into_message(Stream::Inbox, 300);
            let bytes = rmp_serde::to_vec_named(&message).unwrap();
            let mut head = vec![bytes[0]];
            head.extend_from_slice(b"\xa3seq\xcd\x01\x2c\xa6stream\xa5inbox\xa2id\xc4\x10");
            head.extend_from_slice(message.id.as_bytes());
            head.extend_from_slice(b"\xa8category");
            let name = category.as_str().as_bytes();
            if name.len() < 32 {
                head.push(0xa0 + name.len() as u8);
            } else {
                head.extend_from_slice(&[0xd9, name.len() as u8]);
            }
            head.extend_from_slice(name);
            assert_eq!(bytes[0] & 0xf0, 0x80, "a fixmap");
            assert_eq!(&bytes[..head.len()], &head[..]);
        }
    }

    #[test]
    fn seq_splices_into_the_payload() {
        for expires in [false, true] {
            let mut draft = Draft::new(Category::REMIND, "hello");
            draft.title = Some("t".into());
            if expires {
                draft.expires_at = Some(draft.ts + std::time::Duration::from_millis(1500));
            }
            let message = draft.into_message(Stream::Inbox, 0);
            let (head, tail) = split_payload(&message).unwrap();
            for seq in [1u64, 127, 128, 65_535, 1 << 40] {
                let mut bytes = head.to_vec();
                rmp::encode::write_uint(&mut bytes, seq).unwrap();
                bytes.extend_from_slice(&tail);
                let decoded: Message = rmp_serde::from_slice(&bytes).unwrap();
                assert_eq!(
                    decoded,
                    Message {
                        seq,
                        ..message.clone()
                    }
                );
            }
        }
    }

    /// An expiry is never taken as passed early: the score rounds up, `now`
    /// rounds down.
    #[test]
    fn expiry_scores_round_up_and_now_rounds_down() {
        let at = |ns: i128| OffsetDateTime::from_unix_timestamp_nanos(ns).unwrap();
        assert_eq!(expiry_ms(None), 0);
        assert_eq!(
            expiry_ms(Some(at(1_700_000_000_000_000_000))),
            1_700_000_000_000
        );
        assert_eq!(
            expiry_ms(Some(at(1_700_000_000_000_000_001))),
            1_700_000_000_001
        );
        assert_eq!(
            expiry_ms(Some(at(1_700_000_000_000_999_999))),
            1_700_000_000_001
        );
        assert_eq!(expiry_ms(Some(at(0))), 1, "0 would read as none");
        assert_eq!(expiry_ms(Some(at(-5_000_000))), 1);
        assert_eq!(now_ms(at(1_700_000_000_000_999_999)), "1700000000000");
        assert_eq!(now_ms(at(-1)), "-1");
    }

    #[test]
    fn kept_counts_fields_per_category() {
        let fields = [
            ("remind", "2"),
            ("unseen:remind", "1"),
            ("_unseen", "7"),
            ("unseen:promo", "0"),
        ]
        .into_iter()
        .map(|(f, v)| (f.to_owned(), v.to_owned()))
        .collect();
        let counts = parse_kept_counts(fields, 9).unwrap();
        assert_eq!(counts.last_seq, 9);
        let pairs = |m: &std::collections::BTreeMap<String, i64>| {
            m.iter().map(|(k, v)| (k.clone(), *v)).collect::<Vec<_>>()
        };
        assert_eq!(
            pairs(&counts.unread),
            [("_unseen".to_owned(), 7), ("remind".to_owned(), 2)],
            "any other field is a category (`_unseen` is a valid name)"
        );
        assert_eq!(
            pairs(&counts.unseen),
            [("promo".to_owned(), 0), ("remind".to_owned(), 1)]
        );
        let bad = [("remind".to_owned(), "x".to_owned())]
            .into_iter()
            .collect();
        assert!(parse_kept_counts(bad, 0).is_err());
    }

    #[test]
    fn commits_move_both_counts_per_category() {
        let delta = |seq: u64, category: &str, unread: i64, unseen: i64| herald_core::CountDelta {
            seq,
            category: category.to_owned(),
            unread,
            unseen,
        };
        let change = ReadChange {
            deltas: vec![delta(3, "remind", -1, -1), delta(4, "system", 0, 1)],
            ..ReadChange::default()
        };
        let ops: Vec<String> = commit_ops(&change)
            .into_iter()
            .map(|v| v.as_string().unwrap())
            .collect();
        assert_eq!(
            ops,
            [
                "c",
                "remind",
                "-1",
                "3",
                "c",
                "unseen:remind",
                "-1",
                "3",
                "c",
                "unseen:system",
                "1",
                "4"
            ]
        );
    }
}
