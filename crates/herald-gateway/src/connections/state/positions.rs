//! Where each stream of one connection stands: what was written to it,
//! and, until it starts, where the client resumes.

use herald_core::{went_back, Verdict, WrittenSeqs};
use herald_protocol::{Message, Stream};
use uuid::Uuid;

/// How a stream's backlog is written when its connection starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backlog {
    /// Everything after the start, up to the store's end.
    CatchUp,
    /// The client resumes past the store's end: it had seqs the store no
    /// longer has, so it is reset (`connection/rewind.rs`).
    Reset,
    /// A new device's `all` stream: only the newest unread announcements,
    /// not the whole retained stream.
    UnreadAnnouncements,
}

/// What was written to one connection, per stream ([`WrittenSeqs`]).
///
/// Until the connection starts, a stream the client resumes (an SSE
/// reconnect's `Last-Event-ID`, or its `since`) holds the client's
/// position instead, and `resumed` says which: two `Option<u64>` beside
/// it would cost every connection 32 bytes for the whole of its life.
#[derive(Default)]
pub(crate) struct Positions {
    written: WrittenSeqs,
    resumed: [bool; Stream::ALL.len()],
}

impl Positions {
    /// The positions of a connection whose client resumes each stream
    /// after the seq `resume` gives (`None`: after the device's
    /// acknowledged cursor).
    pub(crate) fn resuming(resume: [Option<u64>; 2]) -> Self {
        let mut positions = Positions::default();
        for stream in Stream::ALL {
            if let Some(seq) = resume[stream.index()] {
                positions.written.set(stream, seq);
                positions.resumed[stream.index()] = true;
            }
        }
        positions
    }

    /// Starts each stream where the client resumes it, else after the
    /// device's acknowledged cursor `acked`. Returns where each stream
    /// starts and how its backlog up to the store's end `last` is written.
    pub(crate) fn start(&mut self, acked: [u64; 2], last: [u64; 2]) -> ([u64; 2], [Backlog; 2]) {
        let resumed = std::mem::take(&mut self.resumed);
        let after = Stream::ALL.map(|stream| {
            let i = stream.index();
            if resumed[i] {
                self.written(stream)
            } else {
                acked[i]
            }
        });
        let all = Stream::All.index();
        let new_device = after[all] == 0 && !resumed[all];
        let backlog = Stream::ALL.map(|stream| {
            let i = stream.index();
            if resumed[i] && after[i] > last[i] {
                Backlog::Reset
            } else if stream == Stream::All && new_device && last[i] > 0 {
                Backlog::UnreadAnnouncements
            } else {
                Backlog::CatchUp
            }
        });
        for stream in Stream::ALL {
            self.written.set(stream, after[stream.index()]);
        }
        (after, backlog)
    }

    /// The seq of `stream` written (or skipped) last.
    pub(crate) fn written(&self, stream: Stream) -> u64 {
        self.written.get(stream).0
    }

    /// The id of the message at [`written`](Self::written)'s seq, when
    /// this connection wrote it.
    pub(crate) fn last_id(&self, stream: Stream) -> Option<Uuid> {
        self.written.last_id(stream)
    }

    /// Whether a live `message` is new, a duplicate, or after a gap.
    pub(crate) fn judge(&self, message: &Message) -> Verdict {
        self.written.get(message.stream).judge(message.seq)
    }

    /// A live `message` at the seq this connection wrote last, but another
    /// message: the store went back.
    pub(crate) fn holds_another(&self, message: &Message) -> bool {
        let stream = message.stream;
        self.written(stream) == message.seq
            && went_back(
                message.seq,
                self.last_id(stream),
                message.seq,
                Some(message.id),
            )
    }

    /// Moves `stream` to `seq`, either way (a `sync`, a reset): which
    /// message is there is not known.
    pub(crate) fn set(&mut self, stream: Stream, seq: u64) {
        self.written.set(stream, seq);
    }

    /// Moves past `seq` without writing it (expired, or dropped by
    /// retention). Never moves backwards.
    pub(crate) fn advance(&mut self, stream: Stream, seq: u64) {
        self.written.advance(stream, seq);
    }

    /// Records that `message` was written.
    pub(crate) fn wrote(&mut self, message: &Message) {
        self.written.wrote(message.stream, message.seq, message.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INBOX: usize = 0;
    const ALL: usize = 1;

    #[test]
    fn streams_start_after_the_acknowledged_cursors_unless_resumed() {
        let mut positions = Positions::resuming([None, Some(4)]);
        let (after, backlog) = positions.start([7, 2], [9, 9]);
        assert_eq!(after, [7, 4]);
        assert_eq!(backlog, [Backlog::CatchUp; 2]);
        assert_eq!(positions.written(Stream::Inbox), 7);
        assert_eq!(positions.written(Stream::All), 4);
        let (after, _) = positions.start([1, 1], [9, 9]);
        assert_eq!(after, [1, 1], "a resume is for the first start only");
    }

    #[test]
    fn a_resume_past_the_stores_end_resets_that_stream() {
        let mut positions = Positions::resuming([Some(12), Some(3)]);
        let (after, backlog) = positions.start([0, 0], [10, 5]);
        assert_eq!(after, [12, 3]);
        assert_eq!(backlog[INBOX], Backlog::Reset);
        assert_eq!(backlog[ALL], Backlog::CatchUp);
    }

    #[test]
    fn a_new_device_gets_only_the_unread_announcements() {
        let (_, backlog) = Positions::default().start([0, 0], [3, 8]);
        assert_eq!(backlog, [Backlog::CatchUp, Backlog::UnreadAnnouncements]);
        let (_, backlog) = Positions::default().start([0, 0], [3, 0]);
        assert_eq!(backlog[ALL], Backlog::CatchUp, "no announcements yet");
        let (_, backlog) = Positions::default().start([0, 5], [3, 8]);
        assert_eq!(backlog[ALL], Backlog::CatchUp, "a known device");
        let (_, backlog) = Positions::resuming([None, Some(0)]).start([0, 0], [3, 8]);
        assert_eq!(backlog[ALL], Backlog::CatchUp, "resumed from 0");
    }

    #[test]
    fn a_live_message_at_the_written_seq_with_another_id_means_the_store_went_back() {
        let message = |seq, id| Message {
            seq,
            stream: Stream::Inbox,
            id: Uuid::from_u128(id),
            category: herald_protocol::Category::MAILBOX,
            severity: Default::default(),
            tags: Vec::new(),
            from: None,
            title: None,
            body: String::new(),
            data: serde_json::Value::Null,
            ts: time::OffsetDateTime::UNIX_EPOCH,
            expires_at: None,
            group_key: None,
            collapsed: None,
            replaces: None,
            critical: false,
            silent: false,
            actions: Vec::new(),
            acted: None,
        };
        let mut positions = Positions::default();
        positions.wrote(&message(5, 1));
        assert_eq!(positions.judge(&message(5, 1)), Verdict::Duplicate);
        assert_eq!(positions.judge(&message(6, 2)), Verdict::Next);
        assert!(!positions.holds_another(&message(5, 1)));
        assert!(positions.holds_another(&message(5, 2)));
        assert!(!positions.holds_another(&message(4, 2)), "an older seq");
        positions.advance(Stream::Inbox, 6);
        assert!(!positions.holds_another(&message(6, 2)), "6 was skipped");
    }
}
