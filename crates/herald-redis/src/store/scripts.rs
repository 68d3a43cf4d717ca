//! The store's functions of the library (`src/lua/stream.lua`,
//! `append_many.lua`, `stream_reads.lua`, `counts.lua`, `erase.lua`, `conversations.lua`; what
//! each takes and does is written there). The Rust that calls them is `store.rs` and
//! `store/conversations.rs`.

use crate::script::Script;

/// The store's functions, named once per backend.
pub(crate) struct Scripts {
    pub(crate) append_many: Script,
    pub(crate) read: Script,
    pub(crate) ack: Script,
    pub(crate) read_before: Script,
    pub(crate) find: Script,
    pub(crate) bounds: Script,
    pub(crate) user_counts: Script,
    pub(crate) announcements: Script,
    pub(crate) commit_read_state: Script,
    pub(crate) erase_user: Script,
    /// A conversation's page (`conversations.lua`).
    pub(crate) private_from: Script,
    /// The inbox `ack` with the delivered watermark (`conversations.lua`).
    pub(crate) ack_inbox: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Scripts {
            append_many: Script::new("append_many"),
            read: Script::new("read"),
            ack: Script::new("ack"),
            read_before: Script::new("read_before"),
            find: Script::new("find"),
            bounds: Script::new("bounds"),
            user_counts: Script::new("user_counts"),
            announcements: Script::new("announcements"),
            commit_read_state: Script::new("commit_read_state"),
            erase_user: Script::new("erase_user"),
            private_from: Script::new("private_from"),
            ack_inbox: Script::new("ack_inbox"),
        }
    }
}
