//! `GET /ws`: the handshake (auth, subprotocol) and the per-connection task.

mod connection;
mod handshake;

pub use handshake::handler;
