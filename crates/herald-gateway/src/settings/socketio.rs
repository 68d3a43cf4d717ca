//! `[socketio]`: the optional Socket.IO endpoint (`/socket.io/`) that serves
//! the clients of the Node.js socket.io server Herald replaces, unchanged,
//! while they are moved to the SDK (`docs/migrating-from-socketio.md`).

use serde::{Deserialize, Serialize};

/// Whether `/socket.io/` is served, and how much `push_message` carries.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SocketIoSettings {
    /// Off by default: then the endpoint is not even routed, and a node
    /// pays nothing for it.
    pub enabled: bool,
    /// `push_message` (the answer to `user_login`) carries the newest this
    /// many messages per category and state (read, unread): the old server
    /// sent the whole inbox, which a long-lived user's can no longer be.
    pub push_per_category: u32,
    /// Long-polling besides WebSocket. Several nodes then need sticky
    /// sessions (`docs/operations.md`); off, a client that cannot open a
    /// WebSocket cannot connect at all.
    pub polling: bool,
}

impl Default for SocketIoSettings {
    fn default() -> Self {
        SocketIoSettings {
            enabled: false,
            push_per_category: 50,
            polling: true,
        }
    }
}
