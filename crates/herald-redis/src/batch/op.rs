//! The operations a batch carries: an append of a message, or the sender's
//! side of a private message (a touch), each with its arguments as
//! `append_many` takes them (`lua/append_many.lua`), and what the function
//! answered for each.

use bytes::Bytes;
use fred::prelude::Value;
use herald_core::{CoreError, Result};
use herald_protocol::Message;
use tokio::sync::oneshot;
use uuid::Uuid;

/// One queued operation of `APPEND_MANY`: its key prefix and its
/// arguments.
pub(crate) struct PendingAppend {
    /// Hash slot of the keys.
    pub(crate) slot: u16,
    /// The slot whose lane it rides when not on a Cluster: its own, but a
    /// touch's is its peer's (the receiver of the private message), so that
    /// it goes in the receiver's append's call (see `batch.rs`).
    pub(super) lane_slot: u16,
    /// The prefix of its keys, the function's one key for it
    /// (`Keys::stream_prefix`): an append's stream's, a touch's sender's;
    /// `append_many` names the keys from it.
    pub(crate) prefix: String,
    op: Op,
    pub(super) reply: Option<oneshot::Sender<Result<Appended>>>,
}

/// The arguments of an append that only an inbox message may use (empty
/// when unused): the sender of a private message, checked against the
/// receiver's block list, and the collapse group.
#[derive(Debug, Default)]
pub(crate) struct InboxArgs {
    pub(crate) from: String,
    pub(crate) group: String,
    /// The receiver's preferences check (see `APPEND_MANY`): `-` none (a
    /// critical message; not an inbox), `1` the category is on unless the
    /// user turned it off, `0` off unless the user turned it on.
    pub(crate) check: &'static str,
    /// The topic it was published to (a fan-out), whose `in_app` counts
    /// too; empty otherwise.
    pub(crate) topic: String,
}

impl InboxArgs {
    fn checked(&self) -> bool {
        matches!(self.check, "0" | "1")
    }
}

/// What the script answered for one operation: the seq (0 for a refused
/// private message or a touch), and for a message that replaced the open
/// item of its collapse group how many it stands for and the id replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Appended {
    pub(crate) seq: u64,
    /// The receiver's preferences kept it out (the script's -1).
    pub(crate) skipped: bool,
    pub(crate) collapsed: Option<(u32, Uuid)>,
}

impl Appended {
    /// One element of `APPEND_MANY`'s reply: a seq, or {seq, n, id}.
    pub(super) fn from_value(value: Value) -> Result<Self> {
        let bad = || CoreError::Unavailable("redis: unexpected append reply".into());
        match value {
            Value::Integer(-1) => Ok(Appended {
                seq: 0,
                skipped: true,
                collapsed: None,
            }),
            Value::Integer(seq) => Ok(Appended {
                seq: u64::try_from(seq).map_err(|_| bad())?,
                skipped: false,
                collapsed: None,
            }),
            Value::Array(parts) => {
                let [Value::Integer(seq), Value::Integer(n), Value::Bytes(id)] = &parts[..] else {
                    return Err(bad());
                };
                Ok(Appended {
                    seq: u64::try_from(*seq).map_err(|_| bad())?,
                    skipped: false,
                    collapsed: Some((
                        u32::try_from(*n).map_err(|_| bad())?,
                        Uuid::from_slice(id).map_err(|_| bad())?,
                    )),
                })
            }
            _ => Err(bad()),
        }
    }
}

/// What a [`PendingAppend`] does.
enum Op {
    /// Store, count and publish a message.
    Append(Append),
    /// Move `peer` to the top of a conversation list at `at_us`.
    TouchPeer { peer: String, at_us: i64 },
}

/// An append's arguments (see `APPEND_MANY`).
struct Append {
    /// What `append_many` is told it is (`append_kind` in the Lua): the
    /// stream and which of the optional arguments follow.
    kind: String,
    head: Bytes,
    tail: Bytes,
    /// The category, `<category>:<severity>` for a severity other than
    /// normal (category names have no ':').
    category: String,
    /// The message id, for the stream's id index.
    id: Uuid,
    /// The message's `expires_at` in unix ms for the stream's expiry index
    /// (see [`crate::store::expiry_ms`]); 0 when it has none.
    expires_ms: i64,
    /// What only an inbox message may carry.
    inbox: InboxArgs,
}

impl Append {
    /// Its kind (see `append_kind` in `lua/append_many.lua`): `i` an inbox
    /// or `a` the `all` stream, then `p` private, `g` grouped, `c` checked,
    /// `s` a severe announcement.
    fn kind(inbox: bool, severe: bool, args: &InboxArgs) -> String {
        let mut kind = String::with_capacity(4);
        kind.push(if inbox { 'i' } else { 'a' });
        for (flag, on) in [
            ('p', !args.from.is_empty()),
            ('g', !args.group.is_empty()),
            ('c', args.checked()),
            ('s', severe && !inbox),
        ] {
            if on {
                kind.push(flag);
            }
        }
        kind
    }
}

impl PendingAppend {
    /// An append to the stream of keys `prefix` (slot `slot`); `inbox`
    /// whether it is a user's inbox, not the `all` stream.
    pub(crate) fn new(
        slot: u16,
        prefix: String,
        inbox: bool,
        head: Bytes,
        tail: Bytes,
        message: &Message,
        args: InboxArgs,
    ) -> Self {
        PendingAppend {
            slot,
            lane_slot: slot,
            prefix,
            op: Op::Append(Append {
                kind: Append::kind(inbox, !message.severity.is_normal(), &args),
                head,
                tail,
                category: if message.severity.is_normal() {
                    message.category.to_string()
                } else {
                    format!("{}:{}", message.category, message.severity)
                },
                id: message.id,
                expires_ms: crate::store::expiry_ms(message.expires_at),
                inbox: args,
            }),
            reply: None,
        }
    }

    /// `peer` to the top of the conversation list of the user whose keys
    /// start with `prefix` (slot `slot`) at `at_us`; answered with 0.
    /// `lane_slot` is the slot of the peer's keys, whose lane it rides
    /// when not on a Cluster (on a Cluster its own).
    pub(crate) fn touch_peer(
        slot: u16,
        lane_slot: u16,
        prefix: String,
        peer: String,
        at_us: i64,
    ) -> Self {
        PendingAppend {
            slot,
            lane_slot,
            prefix,
            op: Op::TouchPeer { peer, at_us },
            reply: None,
        }
    }

    pub(super) fn size(&self) -> usize {
        match &self.op {
            Op::Append(a) => a.head.len() + a.tail.len() + a.category.len() + 100,
            Op::TouchPeer { peer, .. } => peer.len() + 100,
        }
    }

    /// Its arguments (see `lua/append_many.lua`): its kind, then five for
    /// an append and those of the optional ones its kind names, two for a
    /// touch (no unused ones: each costs Redis a Lua string per call).
    pub(super) fn push_args(&self, args: &mut Vec<Value>) {
        match &self.op {
            Op::Append(a) => {
                args.push(a.kind.as_str().into());
                args.push(Value::Bytes(a.head.clone()));
                args.push(Value::Bytes(a.tail.clone()));
                args.push(a.category.as_str().into());
                args.push(Value::Bytes(Bytes::copy_from_slice(a.id.as_bytes())));
                args.push(a.expires_ms.to_string().into());
                let inbox = &a.inbox;
                if !inbox.from.is_empty() {
                    args.push(inbox.from.as_str().into());
                }
                if !inbox.group.is_empty() {
                    args.push(inbox.group.as_str().into());
                }
                if inbox.checked() {
                    args.push(format!("{}{}", inbox.check, inbox.topic).into());
                }
            }
            Op::TouchPeer { peer, at_us } => {
                args.push("t".into());
                args.push(peer.as_str().into());
                args.push(at_us.to_string().into());
            }
        }
    }

    pub(super) fn abandoned(&self) -> bool {
        self.reply.as_ref().is_none_or(|tx| tx.is_closed())
    }

    pub(super) fn answer(&mut self, result: Result<Appended>) {
        if let Some(tx) = self.reply.take() {
            // The caller may be gone; its message was appended all the same.
            let _ = tx.send(result);
        }
    }
}
