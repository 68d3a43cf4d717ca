//! `GET /ws`: the handshake (auth, subprotocol) and the per-connection task.

mod connection;
mod counts;
mod handshake;
mod requests;

pub use handshake::handler;
