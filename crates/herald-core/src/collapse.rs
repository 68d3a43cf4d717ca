//! Collapse: a message sent with a `group_key` replaces the receiver's
//! unread message of the same group ("12 people liked your post" as one
//! item). The rule lives here, once; the memory store applies it in its
//! append and the Redis append script mirrors it in Lua (`collapse` in
//! herald-redis `store/scripts.rs`), inside the append's atomic step, so a
//! group is never counted twice however many sends race.
//!
//! A replaced message becomes `deleted` in the read state (it leaves
//! counts, history and marks, as a deletion does), and the replacing one
//! carries `collapsed` (how many messages it stands for) and `replaces`
//! (the id it took the place of); a connection that writes it tells the
//! client with a `changed` frame.

use crate::read_state::Flags;

/// Whether the open item of a group, with these flags and not expired,
/// is replaced by the next message of its group: only while it is unread
/// (not read, archived, deleted or expired). Once read, the next send
/// starts a fresh group.
pub fn replaceable(flags: Flags, expired: bool) -> bool {
    !expired && flags.counts_unread()
}

/// The flags of a message once replaced: deleted, so it leaves counts and
/// history, and never changes again.
pub fn replaced(flags: Flags) -> Flags {
    Flags {
        deleted: true,
        ..flags
    }
}

/// How many messages the new one stands for when it replaces an item that
/// stood for `open` (a first message stands for 1).
pub fn collapsed(open: u32) -> u32 {
    open.saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read_state::Level;

    #[test]
    fn only_an_unread_unexpired_item_is_replaced() {
        let unseen = Flags::default();
        assert!(replaceable(unseen, false));
        assert!(replaceable(
            Flags {
                level: Level::Seen,
                ..unseen
            },
            false
        ));
        assert!(!replaceable(unseen, true));
        for gone in [
            Flags {
                level: Level::Read,
                ..unseen
            },
            Flags {
                archived: true,
                ..unseen
            },
            replaced(unseen),
        ] {
            assert!(!replaceable(gone, false), "{gone:?}");
        }
        assert!(!replaced(unseen).counts_unread());
        assert_eq!(collapsed(1), 2);
    }
}
