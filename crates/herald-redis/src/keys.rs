//! Key and channel names. Everything of one user (inbox, seq, unread counts,
//! cursors, connections, channel) carries the hash tag `{u:<user>}`, so one
//! script may touch it all on a Redis Cluster and SPUBLISH to the user's
//! channel from inside that script: a script's SPUBLISH to another slot
//! returns 0 and reaches nobody, silently (measured on Redis 7.0).

use herald_core::StreamKey;
use herald_protocol::Stream;

/// The last part of the name of each key of a stream, after the stream's
/// prefix ([`Keys::stream_prefix`]: `<prefix>:{u:<user>}:` or
/// `<prefix>:{all}:`). `append_many` gets a message's prefix as its one key
/// and names the others itself with these (the library's Lua table `KEY`,
/// from [`LUA_SUFFIXES`]), so that a message pays one argument for its keys,
/// not seven to ten: each argument costs Redis about 1,000 instructions.
pub(crate) mod suffix {
    pub(crate) const SEQ: &str = "seq";
    /// A user's log; the `all` stream's is [`LOG`].
    pub(crate) const INBOX: &str = "inbox";
    pub(crate) const LOG: &str = "log";
    pub(crate) const CHANNEL: &str = "ch";
    pub(crate) const IDS: &str = "ids";
    pub(crate) const EXP: &str = "exp";
    pub(crate) const SEVERE: &str = "sev";
    pub(crate) const COUNTS: &str = "unread";
    pub(crate) const MARKS: &str = "marks";
    pub(crate) const BLOCKED: &str = "blocked";
    /// Followed by the peer's id.
    pub(crate) const PRIVATE_FROM: &str = "pm:";
    pub(crate) const PEERS: &str = "peers";
    pub(crate) const GROUPS: &str = "groups";
    pub(crate) const PREFERENCES: &str = "prefs";
}

/// [`suffix`] as the library's Lua table `KEY` names them.
pub(crate) const LUA_SUFFIXES: [(&str, &str); 14] = [
    ("seq", suffix::SEQ),
    ("inbox", suffix::INBOX),
    ("log", suffix::LOG),
    ("ch", suffix::CHANNEL),
    ("ids", suffix::IDS),
    ("exp", suffix::EXP),
    ("sev", suffix::SEVERE),
    ("counts", suffix::COUNTS),
    ("marks", suffix::MARKS),
    ("blocked", suffix::BLOCKED),
    ("pm", suffix::PRIVATE_FROM),
    ("peers", suffix::PEERS),
    ("groups", suffix::GROUPS),
    ("prefs", suffix::PREFERENCES),
];

#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    fn user(&self, user: &str, what: &str) -> String {
        format!("{}:{{u:{user}}}:{what}", self.prefix)
    }

    /// What every key of `user` starts with: `<prefix>:{u:<user>}:`.
    pub(crate) fn user_prefix(&self, user: &str) -> String {
        self.user(user, "")
    }

    /// What every key of a stream starts with (its hash tag included), so
    /// that a stream's key is its prefix and a [`suffix`].
    pub(crate) fn stream_prefix(&self, key: &StreamKey) -> String {
        match key {
            StreamKey::Inbox(user) => self.user_prefix(user),
            StreamKey::All => format!("{}:{{all}}:", self.prefix),
        }
    }

    fn stream(&self, key: &StreamKey, what: &str) -> String {
        self.stream_prefix(key) + what
    }

    fn node(&self, node: &str, what: &str) -> String {
        format!("{}:{{n:{node}}}:{what}", self.prefix)
    }

    /// The stream's seq counter (a string key, INCR). Never expires: a reset
    /// would hand out seqs that clients already hold.
    pub(crate) fn seq(&self, key: &StreamKey) -> String {
        self.stream(key, suffix::SEQ)
    }

    /// The stream's retained messages: a list, oldest first, of
    /// `<13-digit append time in ms><msgpack Message>`.
    pub(crate) fn log(&self, key: &StreamKey) -> String {
        match key {
            StreamKey::Inbox(_) => self.stream(key, suffix::INBOX),
            StreamKey::All => self.stream(key, suffix::LOG),
        }
    }

    /// The stream's pub/sub channel (same hash tag as its keys).
    pub(crate) fn channel(&self, key: &StreamKey) -> String {
        self.stream(key, suffix::CHANNEL)
    }

    /// The stream's id index: a sorted set, member = the message id's 16
    /// raw bytes, score = its seq. Holds exactly the retained messages (the
    /// scripts that trim the log trim it too).
    pub(crate) fn ids(&self, key: &StreamKey) -> String {
        self.stream(key, suffix::IDS)
    }

    /// The stream's expiry index: a sorted set, member = the seq (decimal)
    /// of a message with an `expires_at`, score = that expiry in unix ms
    /// (rounded up). Same PEXPIRE as the log.
    pub(crate) fn exp(&self, key: &StreamKey) -> String {
        self.stream(key, suffix::EXP)
    }

    /// The `all` stream's announcements of a severity other than normal: a
    /// sorted set, member `<seq>:<severity>`, score the seq. Counts derive
    /// each user's announcements by severity from it and their marks
    /// (`herald_core::AnnouncementRange::severe`); a normal announcement
    /// is not in it (nothing kept, nothing more to write). Members below
    /// the first retained seq are dropped by the next severe append and
    /// skipped by readers meanwhile; the set lives as long as its newest
    /// member's entry may (PEXPIRE `keep_ms` at each add).
    pub(crate) fn all_severe(&self) -> String {
        self.stream(&StreamKey::All, suffix::SEVERE)
    }

    /// The user's kept inbox counts (a hash): `c:<category>` -> unread ×
    /// 2^32 + unseen, per category (`store/read_state.rs`, `PACKED_PREFIX`,
    /// also for the fields older versions wrote). Bumped by appends, moved
    /// by read-state commits, lowered by expiry and retention trims.
    pub(crate) fn unread(&self, user: &str) -> String {
        self.user(user, suffix::COUNTS)
    }

    /// The user's read state on both streams (a hash): `v` version,
    /// `i.s`/`i.r` and `a.s`/`a.r` watermarks, `i.<seq>`/`a.<seq>`
    /// exceptions (`Flags::code()` in decimal).
    pub(crate) fn marks(&self, user: &str) -> String {
        self.user(user, suffix::MARKS)
    }

    /// A device's cursor on a stream, under the user's tag for both streams.
    pub(crate) fn cursor(&self, user: &str, stream: Stream, device: &str) -> String {
        self.user(user, &format!("cur:{}:{device}", stream.as_str()))
    }

    /// The inbox seqs of the private messages `peer` sent `user`: a sorted
    /// set, member and score the seq. Written by the append; members below
    /// the first retained seq are dropped when read.
    pub(crate) fn private_from(&self, user: &str, peer: &str) -> String {
        self.user(user, &format!("{}{peer}", suffix::PRIVATE_FROM))
    }

    /// The user's conversations: a sorted set, member the peer, score the
    /// last activity in unix µs; the newest `MAX_PEERS` kept.
    pub(crate) fn peers(&self, user: &str) -> String {
        self.user(user, suffix::PEERS)
    }

    /// The highest inbox seq any device of the user acknowledged (a string).
    pub(crate) fn delivered(&self, user: &str) -> String {
        self.user(user, "dlv")
    }

    /// The user's collapse groups (a hash): group key -> `<seq>:<n>`, the
    /// inbox seq of the group's newest message and how many it stands for.
    /// Written only by grouped sends; lives as long as the inbox's keys.
    pub(crate) fn groups(&self, user: &str) -> String {
        self.user(user, suffix::GROUPS)
    }

    /// What the user set of their preferences (a hash, core's field layout
    /// `StoredPreferences`).
    pub(crate) fn preferences(&self, user: &str) -> String {
        self.user(user, suffix::PREFERENCES)
    }

    /// The users this user blocked (a set).
    pub(crate) fn blocked(&self, user: &str) -> String {
        self.user(user, suffix::BLOCKED)
    }

    /// The user's live connections: a hash conn_id -> ConnInfo JSON.
    pub(crate) fn conns(&self, user: &str) -> String {
        self.user(user, "conns")
    }

    /// The connections a node holds: a set of `<conn_id>:<user>`, read by
    /// whoever reaps the node after it died.
    pub(crate) fn node_conns(&self, node: &str) -> String {
        self.node(node, "conns")
    }

    /// Exists while the node heartbeats (a string with a TTL).
    pub(crate) fn node_alive(&self, node: &str) -> String {
        self.node(node, "alive")
    }

    /// Held by the node that is reaping this (dead) node.
    pub(crate) fn node_reap_lock(&self, node: &str) -> String {
        self.node(node, "reaping")
    }

    /// Every node that ever heartbeated and was not reaped yet (a set).
    pub(crate) fn nodes(&self) -> String {
        format!("{}:{{nodes}}", self.prefix)
    }

    /// Users with at least one connection (a set); SCARD is online_users.
    pub(crate) fn online(&self) -> String {
        format!("{}:{{online}}", self.prefix)
    }

    /// An idempotency key's entry (a hash `s` state, `f` fingerprint, `o`
    /// outcome; PEXPIRE = the window): `{i:<scope bytes>:<scope>:<key>}`.
    /// The length makes (scope, key) unambiguous whatever they contain
    /// (`a:x` + `y` vs `a` + `x:y`; `a}:x` + `y` vs `a` + `x}:y` would
    /// collide in `{i:<scope>}:<key>`). The tag covers the whole name, so
    /// keys spread over the slots even when one scope sends everything; a
    /// `}` in scope or key shortens the tag, which is harmless: every
    /// operation touches this one key only.
    pub(crate) fn idempotency(&self, scope: &str, key: &str) -> String {
        format!("{}:{{i:{}:{scope}:{key}}}", self.prefix, scope.len())
    }

    /// A topic's subscribers: a sorted set, every score 0, member = user
    /// id, so ZRANGEBYLEX pages them in byte order. Tag `{t:<topic>}` (a
    /// topic holds no braces).
    pub(crate) fn topic_subscribers(&self, topic: &str) -> String {
        format!("{}:{{t:{topic}}}:subs", self.prefix)
    }

    /// The snapshot of a topic's subscribers taken for fan-out job `job`
    /// (a sorted set like the topic's, same tag).
    pub(crate) fn job_snapshot(&self, topic: &str, job: uuid::Uuid) -> String {
        format!("{}:{{t:{topic}}}:job:{job}", self.prefix)
    }

    /// The fan-out job stream (consumer group `fanout`).
    pub(crate) fn job_stream(&self) -> String {
        format!("{}:{{jobs}}:stream", self.prefix)
    }

    /// A fan-out job's hash (same tag as the stream).
    pub(crate) fn job(&self, job: uuid::Uuid) -> String {
        format!("{}{job}", self.job_prefix())
    }

    /// What [`Keys::job`] puts before the job id.
    pub(crate) fn job_prefix(&self) -> String {
        format!("{}:{{jobs}}:job:", self.prefix)
    }

    /// The schedule: a sorted set of pending scheduled sends, member = id,
    /// score = when a claim may take it (its due time, then the end of its
    /// claimer's lease). Tag `{sched}`, with every send's hash, so a claim
    /// of many sends is one script.
    pub(crate) fn schedule(&self) -> String {
        format!("{}:{{sched}}:due", self.prefix)
    }

    /// A scheduled send's hash (`at`, `state`, `claimed`, `send` JSON).
    pub(crate) fn scheduled(&self, id: uuid::Uuid) -> String {
        format!("{}{id}", self.scheduled_prefix())
    }

    /// What [`Keys::scheduled`] puts before the id.
    pub(crate) fn scheduled_prefix(&self) -> String {
        format!("{}:{{sched}}:s:", self.prefix)
    }

    /// Webhook events: a sorted set of the open ones (armed or pending),
    /// member = event id, score = when a claim may take it (its due time or
    /// next retry, then the end of its claimer's lease). Tag `{wh}`, with
    /// every event's hash, the dead-letter list and the counts, so each
    /// script touches one slot.
    pub(crate) fn webhooks_due(&self) -> String {
        format!("{}:{{wh}}:due", self.prefix)
    }

    /// The dead events: a sorted set, every score 0, ordered by id.
    pub(crate) fn webhooks_dead(&self) -> String {
        format!("{}:{{wh}}:dead", self.prefix)
    }

    /// The dead events by when they died: a sorted set, member = id, score
    /// = `dead_at` (unix ms): the oldest are trimmed first.
    pub(crate) fn webhooks_dead_at(&self) -> String {
        format!("{}:{{wh}}:dead_at", self.prefix)
    }

    /// The audience of announcements' events: a sorted set of user ids,
    /// every score 0, paged by name.
    pub(crate) fn webhooks_audience(&self) -> String {
        format!("{}:{{wh}}:audience", self.prefix)
    }

    /// Open events by state: a hash, `armed` and `pending` -> count.
    pub(crate) fn webhooks_counts(&self) -> String {
        format!("{}:{{wh}}:counts", self.prefix)
    }

    /// An event's hash (`state`, `event` JSON).
    pub(crate) fn webhook(&self, id: uuid::Uuid) -> String {
        format!("{}{id}", self.webhook_prefix())
    }

    /// The ids of one user's webhook events (a set, tag `{wh}`): what an
    /// export lists and an erasure removes. Joined by each arm; an id
    /// whose event expired leaves it when read.
    pub(crate) fn webhooks_of_user(&self, user: &str) -> String {
        format!("{}{user}", self.webhooks_of_user_prefix())
    }

    /// What [`Keys::webhooks_of_user`] puts before the user.
    pub(crate) fn webhooks_of_user_prefix(&self) -> String {
        format!("{}:{{wh}}:u:", self.prefix)
    }

    /// The ids of the pending scheduled sends addressed to one user by
    /// name (a set, tag `{sched}`): what an export lists and an erasure
    /// changes. Joined by each schedule; an id no longer pending leaves it
    /// when read.
    pub(crate) fn scheduled_of_user(&self, user: &str) -> String {
        format!("{}{user}", self.scheduled_of_user_prefix())
    }

    /// What [`Keys::scheduled_of_user`] puts before the user.
    pub(crate) fn scheduled_of_user_prefix(&self) -> String {
        format!("{}:{{sched}}:u:", self.prefix)
    }

    /// What [`Keys::webhook`] puts before the id.
    pub(crate) fn webhook_prefix(&self) -> String {
        format!("{}:{{wh}}:e:", self.prefix)
    }

    /// Snooze wake-ups: a sorted set, member = user, score = their soonest
    /// wake-up (or the end of a claimer's lease). Tag `{snooze}` with
    /// [`Keys::wakes_held`] and [`Keys::wakes_asked`].
    pub(crate) fn wakes(&self) -> String {
        format!("{}:{{snooze}}:due", self.prefix)
    }

    /// Users a waker's claim holds: a hash, user -> lease end.
    pub(crate) fn wakes_held(&self) -> String {
        format!("{}:{{snooze}}:held", self.prefix)
    }

    /// Wake-ups asked for while a claim held the user: a hash, user ->
    /// the soonest, merged in when the claim ends.
    pub(crate) fn wakes_asked(&self) -> String {
        format!("{}:{{snooze}}:asked", self.prefix)
    }

    /// The user's topics: a set (SCARD enforces the per-user cap).
    pub(crate) fn user_topics(&self, user: &str) -> String {
        self.user(user, "topics")
    }

    /// Which stream a message channel carries; None for other channels
    /// and anything that is not ours.
    pub(crate) fn parse_channel(&self, channel: &str) -> Option<StreamKey> {
        let rest = channel.strip_prefix(&self.prefix)?.strip_prefix(':')?;
        if rest == "{all}:ch" {
            return Some(StreamKey::All);
        }
        let user = rest.strip_prefix("{u:")?.strip_suffix("}:ch")?;
        Some(StreamKey::inbox(user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_round_trip() {
        let keys = Keys::new("herald");
        let alice = StreamKey::inbox("alice");
        assert_eq!(keys.channel(&alice), "herald:{u:alice}:ch");
        assert_eq!(keys.parse_channel("herald:{u:alice}:ch"), Some(alice));
        assert_eq!(
            keys.parse_channel(&keys.channel(&StreamKey::All)),
            Some(StreamKey::All)
        );
        assert_eq!(keys.parse_channel(&keys.node_alive("n1")), None);
        assert_eq!(keys.parse_channel("other:{u:alice}:ch"), None);
        assert_eq!(
            keys.cursor("alice", Stream::All, "phone"),
            "herald:{u:alice}:cur:all:phone"
        );
    }

    /// `append_many` names a message's keys from its stream's prefix and
    /// the library's `KEY` table: each must be the name the rest of the
    /// backend uses.
    #[test]
    fn stream_keys_are_their_prefix_and_a_suffix() {
        let keys = Keys::new("herald");
        let alice = StreamKey::inbox("alice");
        let p = keys.stream_prefix(&alice);
        assert_eq!(p, "herald:{u:alice}:");
        assert_eq!(keys.user_prefix("alice"), p);
        for (key, suffix) in [
            (keys.seq(&alice), suffix::SEQ),
            (keys.log(&alice), suffix::INBOX),
            (keys.channel(&alice), suffix::CHANNEL),
            (keys.ids(&alice), suffix::IDS),
            (keys.exp(&alice), suffix::EXP),
            (keys.unread("alice"), suffix::COUNTS),
            (keys.marks("alice"), suffix::MARKS),
            (keys.blocked("alice"), suffix::BLOCKED),
            (keys.peers("alice"), suffix::PEERS),
            (keys.groups("alice"), suffix::GROUPS),
            (keys.preferences("alice"), suffix::PREFERENCES),
        ] {
            assert_eq!(key, format!("{p}{suffix}"));
        }
        assert_eq!(
            keys.private_from("alice", "bob"),
            format!("{p}{}bob", suffix::PRIVATE_FROM)
        );
        let all = keys.stream_prefix(&StreamKey::All);
        assert_eq!(all, "herald:{all}:");
        assert_eq!(keys.log(&StreamKey::All), format!("{all}{}", suffix::LOG));
        assert_eq!(keys.all_severe(), format!("{all}{}", suffix::SEVERE));
        assert_eq!(
            keys.channel(&StreamKey::All),
            format!("{all}{}", suffix::CHANNEL)
        );
    }

    #[test]
    fn idempotency_keys_are_unambiguous() {
        let keys = Keys::new("herald");
        assert_eq!(keys.idempotency("api", "k-1"), "herald:{i:3:api:k-1}");
        assert_ne!(keys.idempotency("a}:b", "c"), keys.idempotency("a", "b}:c"));
        assert_ne!(keys.idempotency("a:1", "b"), keys.idempotency("a", "1:b"));
    }

    #[test]
    fn topic_keys() {
        let keys = Keys::new("herald");
        assert_eq!(
            keys.topic_subscribers("article:42"),
            "herald:{t:article:42}:subs"
        );
        assert_eq!(keys.user_topics("alice"), "herald:{u:alice}:topics");
    }
}
