//! Which conversation lists a send moves: each private message puts its
//! receiver at the top of its sender's list (the receiver's own list moves
//! in the store's append, which runs on the receiver's slot).

use herald_protocol::Category;

use super::outgoing::{Outgoing, Target};

/// A sender's conversation list to move: `to` to its top at `at_us`.
pub(super) struct Touch {
    pub(super) from: String,
    pub(super) to: String,
    pub(super) at_us: i64,
}

/// The private messages (`mailbox` with a `from`) among `messages`, one
/// [`Touch`] per receiver, taken before the messages move on to the store.
pub(super) fn conversation_touches(messages: &[Outgoing]) -> Vec<Touch> {
    let mut touches = Vec::new();
    for message in messages {
        let (Some(from), Target::Users(users)) = (&message.draft.from, &message.target) else {
            continue;
        };
        // A scheduled one moves the list when it is delivered.
        if message.draft.category != Category::MAILBOX || message.deliver_at.is_some() {
            continue;
        }
        let at_us = (message.draft.ts.unix_timestamp_nanos() / 1_000) as i64;
        touches.extend(users.iter().map(|user| Touch {
            from: from.clone(),
            to: user.clone(),
            at_us,
        }));
    }
    touches
}
