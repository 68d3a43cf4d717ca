//! The store: one Lua script per batch of appends (for each message: seq,
//! entry, retention, unread count and publish in one atomic step; see
//! `batch.rs` for the group commit), one per read (retention, then a slice of
//! the list by arithmetic on seqs).

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use fred::interfaces::{KeysInterface, LuaInterface};
use fred::prelude::Value;
use fred::types::FromValue;
use herald_core::{validate_user_id, CoreError, Draft, Result, Retention, Store, StreamKey};
use herald_protocol::{Message, Stream};

use crate::batch::{AppendBatcher, PendingAppend};
use crate::{unavailable, Shared};

/// Drops entries older than the cutoff from the head of a log. Each entry
/// starts with its append time in ms as 13 digits. Bounded so that one call
/// never blocks Redis for long; the key's PEXPIRE and later calls do the rest.
const TRIM_OLD: &str = r#"
local function trim_old(log, now, max_age)
  local cutoff = now - max_age
  for _ = 1, 1000 do
    local head = redis.call('LINDEX', log, 0)
    if not head or tonumber(string.sub(head, 1, 13)) >= cutoff then return end
    redis.call('LPOP', log)
  end
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"#;

/// Appends a batch of messages in one call (group commit). KEYS, per
/// message: seq, log, [unread]. ARGV: max entries, max age ms, sharded
/// ('1' = SPUBLISH), then per message five values: its key count (2 or 3),
/// channel, payload head, payload tail, category.
///
/// Each message is handled as a single append was: INCR its seq, push the
/// entry, bump the unread count, publish. The payload is the msgpack
/// `Message` whose seq field is spliced in here: Rust encodes it with seq 0
/// and sends what comes before and after that value. Retention runs once per
/// log touched, after the pushes (nobody sees the list in between): LTRIM
/// only when RPUSH reported more than max entries, and PEXPIRE. Entries past
/// max age are not looked for here: every read drops them first (READ), so
/// no reader ever sees them, and the count bound holds regardless; that
/// saves a LINDEX per message. Returns the seqs, in the order of the
/// messages.
const APPEND_MANY: &str = r#"
local max_entries = tonumber(ARGV[1])
local max_age = tonumber(ARGV[2])
local sharded = ARGV[3] == '1'
local now = 0
if max_entries > 0 then now = now_ms() end
local stamp = string.format('%013d', now)
local seqs = {}
local logs = {}
local lens = {}
local k = 1
local a = 4
while a <= #ARGV do
  local nkeys = tonumber(ARGV[a])
  local seq = redis.call('INCR', KEYS[k])
  local log = KEYS[k + 1]
  local payload = ARGV[a + 2] .. cmsgpack.pack(seq) .. ARGV[a + 3]
  local len = 0
  if max_entries > 0 then
    len = redis.call('RPUSH', log, stamp .. payload)
  end
  if not lens[log] then
    logs[#logs + 1] = log
  end
  lens[log] = len
  if nkeys == 3 then
    redis.call('HINCRBY', KEYS[k + 2], ARGV[a + 4], 1)
  end
  if sharded then
    redis.call('SPUBLISH', ARGV[a + 1], payload)
  else
    redis.call('PUBLISH', ARGV[a + 1], payload)
  end
  seqs[#seqs + 1] = seq
  k = k + nkeys
  a = a + 5
end
for _, log in ipairs(logs) do
  if max_entries > 0 then
    if lens[log] > max_entries then
      redis.call('LTRIM', log, -max_entries, -1)
    end
    redis.call('PEXPIRE', log, max_age)
  else
    redis.call('DEL', log)
  end
end
return seqs
"#;

/// KEYS: seq, log. ARGV: after, limit, max age ms. The log holds
/// consecutive seqs ending at the counter's value (appends push and count in
/// one script; retention only pops the head), so the position of `after + 1`
/// is arithmetic.
const READ: &str = r#"
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
trim_old(KEYS[2], now_ms(), tonumber(ARGV[3]))
local n = redis.call('LLEN', KEYS[2])
local first = last - n + 1
local start = tonumber(ARGV[1]) + 1 - first
if start < 0 then start = 0 end
local limit = tonumber(ARGV[2])
if start >= n or limit <= 0 then return {} end
return redis.call('LRANGE', KEYS[2], start, start + limit - 1)
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

/// A Lua script run with EVALSHA, falling back to EVAL (which also caches
/// it on that server) when the server answers NOSCRIPT: after a restart or
/// failover, or on a cluster node that never saw it.
pub(crate) struct Script {
    lua: String,
    sha: String,
}

impl Script {
    fn new(body: &str) -> Self {
        let lua = format!("{TRIM_OLD}{body}");
        let sha = fred::util::sha1_hash(&lua);
        Script { lua, sha }
    }

    pub(crate) async fn run<R: FromValue>(
        &self,
        client: &impl LuaInterface,
        keys: Vec<String>,
        args: Vec<Value>,
    ) -> Result<R> {
        match client
            .evalsha::<R, _, _, _>(self.sha.as_str(), keys.clone(), args.clone())
            .await
        {
            Err(err) if err.details().starts_with("NOSCRIPT") => client
                .eval(self.lua.as_str(), keys, args)
                .await
                .map_err(unavailable),
            other => other.map_err(unavailable),
        }
    }
}

pub(crate) struct Scripts {
    pub(crate) append_many: Script,
    read: Script,
    ack: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Scripts {
            append_many: Script::new(APPEND_MANY),
            read: Script::new(READ),
            ack: Script::new(ACK),
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
        let seq_key = keys.seq(stream);
        // Every key of a stream shares its hash tag: one slot per stream.
        let slot = fred::util::redis_keyslot(seq_key.as_bytes());
        let mut script_keys = vec![seq_key, keys.log(stream)];
        if let Some(user) = stream.user() {
            script_keys.push(keys.unread(user));
        }
        let pending = PendingAppend::new(
            slot,
            script_keys,
            keys.channel(stream),
            head,
            tail,
            message.category.as_str(),
        );
        let seq = self.batcher.append(pending).await?;
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
        let keys = &self.shared.keys;
        let entries: Vec<Bytes> = self
            .shared
            .scripts
            .read
            .run(
                self.shared.pool.next(),
                vec![keys.seq(stream), keys.log(stream)],
                vec![
                    after.to_string().into(),
                    limit.to_string().into(),
                    self.max_age_ms().into(),
                ],
            )
            .await?;
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            let message = decode_entry(&entry)?;
            // The arithmetic in the script relies on the log's invariant;
            // filtering keeps a broken invariant from repeating messages.
            if message.seq > after {
                out.push(message);
            }
        }
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_protocol::Category;

    #[test]
    fn seq_splices_into_the_payload() {
        let mut draft = Draft::new(Category::Remind, "hello");
        draft.title = Some("t".into());
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
