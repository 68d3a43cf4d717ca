//! `GET /ws`: the handshake (auth, subprotocol) and the per-connection task.

mod connection;
mod counts;
mod end;
mod handshake;
mod requests;
mod rewind;
mod transport;

pub(crate) use connection::run_sse;
pub(crate) use requests::answer;
pub(crate) use transport::SseSink;

pub use handshake::handler;
