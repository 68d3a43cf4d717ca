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
    validate_user_id, AnnouncementRange, CoreError, Draft, KeptCounts, ReadChange, ReadState,
    Result, Retention, Store, StoredPreferences, StreamKey,
};
use herald_protocol::{Category, Message, Stream};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::batch::{AppendBatcher, InboxArgs, PendingAppend};
use crate::script::Script;
use crate::{unavailable, Shared};

mod conversations;
mod corrupt;
mod erase;
mod expiry;
mod read_state;
mod scripts;
use corrupt::corrupt;
pub(crate) use expiry::expiry_ms;
use expiry::{now_ms, parse_expiry_score};
use read_state::{commit_ops, parse_kept_counts, parse_read_state};
pub(crate) use scripts::Scripts;

/// Width of the append-time prefix of each log entry.
const TIME_PREFIX: usize = 13;

/// [`Store`] on Redis lists and counters.
pub struct RedisStore {
    pub(crate) shared: Arc<Shared>,
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

    pub(crate) fn max_age_ms(&self) -> String {
        max_age_ms(&self.retention)
    }

    /// The keys every script touching `stream` gets (see `PRELUDE` in `store/scripts.rs`): seq,
    /// log, ids, exp, and for an inbox marks and counts, which retention
    /// keeps in step.
    pub(crate) fn stream_keys(&self, stream: &StreamKey) -> Vec<String> {
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

    /// `USER_COUNTS` on `user`'s inbox, with their preferences hash when
    /// `preferences` (a connection's start: no command of its own for it).
    async fn counts_script(
        &self,
        user: &str,
        now: OffsetDateTime,
        preferences: bool,
    ) -> Result<(KeptCounts, ReadState, Option<StoredPreferences>)> {
        validate_user_id(user)?;
        let mut keys = self.stream_keys(&StreamKey::inbox(user));
        if preferences {
            keys.push(self.shared.keys.preferences(user));
        }
        let reply: Vec<Value> = self
            .shared
            .scripts
            .user_counts
            .run(
                self.shared.pool.next(),
                keys,
                vec![self.max_age_ms().into(), now_ms(now).into()],
            )
            .await?;
        let mut reply = reply.into_iter();
        let (Some(seq), Some(counts), Some(marks), Some(soonest)) =
            (reply.next(), reply.next(), reply.next(), reply.next())
        else {
            return Err(corrupt("user counts"));
        };
        let last_seq = seq.convert::<u64>().map_err(|_| corrupt("inbox seq"))?;
        let hash = |v: Value| {
            v.convert::<HashMap<String, String>>()
                .map_err(|_| corrupt("user counts"))
        };
        let mut kept = parse_kept_counts(hash(counts)?, last_seq)?;
        kept.next_expiry = parse_expiry_score(soonest)?;
        let stored = match (preferences, reply.next()) {
            (false, None) => None,
            (true, Some(flat)) => Some(hash(flat)?.into_iter().collect()),
            _ => return Err(corrupt("user counts")),
        };
        Ok((kept, parse_read_state(hash(marks)?)?, stored))
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
pub(crate) fn decode_entry(entry: &[u8]) -> Result<Message> {
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
        // The receiver's preferences are checked in the append script.
        let check = match stream.user() {
            Some(_) if !draft.critical => {
                if draft.in_app_default {
                    "1"
                } else {
                    "0"
                }
            }
            _ => "-",
        };
        let topic = draft.topic.clone().unwrap_or_default();
        let message = draft.into_message(stream.stream(), 0);
        let (head, tail) = split_payload(&message)?;
        // A private message checks the receiver's block list and indexes
        // the conversation in the same call; a grouped inbox message
        // collapses there; an announcement of a severity other than
        // normal is indexed there (`Keys::all_severe`). Every key of a
        // stream carries its hash tag, so the function names them from the
        // stream's prefix, on a Cluster too (see `APPEND_MANY`).
        let from = match (stream.user(), &message.from) {
            (Some(_), Some(from)) if message.category == Category::MAILBOX => from.clone(),
            _ => String::new(),
        };
        let group = match (stream.user(), &message.group_key) {
            (Some(_), Some(group)) => group.clone(),
            _ => String::new(),
        };
        let prefix = keys.stream_prefix(stream);
        let slot = fred::util::redis_keyslot(prefix.as_bytes());
        let pending = PendingAppend::new(
            slot,
            prefix,
            stream.user().is_some(),
            head,
            tail,
            &message,
            InboxArgs {
                from,
                group,
                check,
                topic,
            },
        );
        let appended = self.batcher.append(pending).await?;
        if appended.skipped {
            return Err(CoreError::Skipped(
                "the receiver's preferences keep this message out".into(),
            ));
        }
        if appended.seq == 0 {
            return Err(CoreError::Blocked(
                "the receiver does not accept your messages".into(),
            ));
        }
        let (collapsed, replaces) = match appended.collapsed {
            Some((n, id)) => (Some(n), Some(id)),
            None => (None, None),
        };
        Ok(Message {
            seq: appended.seq,
            collapsed,
            replaces,
            ..message
        })
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
            // No channel: a bare change publishes nothing.
            if change.is_bare() {
                String::new()
            } else {
                keys.channel(&StreamKey::inbox(user))
            }
            .into(),
            if self.shared.sharded { "1" } else { "0" }.into(),
            Value::Bytes(match &change.changed {
                Some(changed) => crate::broker::encode_changed(changed)?,
                None => Bytes::from_static(crate::broker::COUNTS_CHANGED),
            }),
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
        let (kept, state, _) = self.counts_script(user, now, false).await?;
        Ok((kept, state))
    }

    async fn user_counts_and_preferences(
        &self,
        user: &str,
        now: OffsetDateTime,
    ) -> Result<(KeptCounts, ReadState, Option<StoredPreferences>)> {
        self.counts_script(user, now, true).await
    }

    async fn erase_user(&self, user: &str) -> Result<herald_core::ErasedStore> {
        self.erase(user).await
    }

    async fn announcements(&self, now: OffsetDateTime) -> Result<AnnouncementRange> {
        let (first, last, mut expired, next_expiry, severe) = {
            let mut keys = self.stream_keys(&StreamKey::All);
            keys.push(self.shared.keys.all_severe());
            let reply: Vec<Value> = self
                .shared
                .scripts
                .announcements
                .run(
                    self.shared.pool.next(),
                    keys,
                    vec![self.max_age_ms().into(), now_ms(now).into()],
                )
                .await?;
            let [first, last, expired, soonest, severe]: [Value; 5] = reply
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
            let severe = severe
                .into_array()
                .into_iter()
                .map(|member| parse_severe_member(member).ok_or_else(|| corrupt("{all}:sev")))
                .collect::<Result<Vec<_>>>()?;
            (
                number(first)?,
                number(last)?,
                expired,
                parse_expiry_score(soonest)?,
                severe,
            )
        };
        expired.sort_unstable();
        Ok(AnnouncementRange {
            first,
            last,
            expired,
            next_expiry,
            severe,
        })
    }
}

/// A member of `{all}:sev`, `<seq>:<severity>` (see `Keys::all_severe`).
fn parse_severe_member(member: Value) -> Option<(u64, herald_protocol::Severity)> {
    let member = member.as_string()?;
    let (seq, severity) = member.split_once(':')?;
    Some((seq.parse().ok()?, severity.parse().ok()?))
}

#[cfg(test)]
mod tests;
