//! Client connections: one connection loop, whatever carries its frames —
//! a WebSocket (`GET /ws`), a Server-Sent Events body (`GET /sse`) or a
//! Socket.IO session (`/socket.io/`, off unless `socketio.enabled`) — and
//! `POST /v1/me/requests`, where a client without a socket sends what a
//! WebSocket client sends as frames.

mod answer;
mod connection;
mod end;
mod incoming;
pub mod me;
pub mod socketio;
pub mod sse;
mod state;
mod transport;
pub mod ws_handshake;
