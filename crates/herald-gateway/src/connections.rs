//! Client connections: one connection loop, whatever carries its frames —
//! a WebSocket (`GET /ws`) or a Server-Sent Events body (`GET /sse`) — and
//! `POST /v1/me/requests`, where a client without a socket sends what a
//! WebSocket client sends as frames.

mod connection;
mod counts;
mod end;
pub mod me;
mod requests;
mod rewind;
pub mod sse;
mod transport;
pub mod ws_handshake;
