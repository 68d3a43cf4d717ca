//! `herald-loadtest`: the project's own load generator.
//!
//! The scenarios measure the figures `docs/benchmarks.md` reports:
//! - `conn`: gateway RSS per idle authenticated connection, connect rate, and
//!   broadcast fan-out latency, with the connections spread over worker
//!   processes (one process may hold at most 20,000 files on this machine);
//! - `unicast`: end-to-end latency of private messages sent on one gateway
//!   node and received on another, at a fixed open-loop offered rate;
//! - `mark`: the notification center's `mark` on one node until the
//!   `counts` push reaches the same user's connection on another node;
//! - `fanout`: a publish to a topic with many subscribers, until its job is
//!   done and every connected subscriber has the message;
//! - `storm`: nodes killed under many resuming clients, until every client
//!   resumed on the others, and exactly-once of what was sent meanwhile;
//! - `scaleout`: nodes added under many resuming clients, until every node
//!   holds its share (the nodes rebalance), moves against the ideal, and
//!   exactly-once meanwhile;
//! - `rolling`: each node in turn replaced (SIGTERM, drain) under many
//!   resuming clients, until every client of it resumed elsewhere, and
//!   exactly-once meanwhile;
//! - `soak`: a steady mix for a long time, gateway RSS and latency per window;
//! - `schedule`: 100,000 scheduled sends due in one second, then 10,000
//!   snoozes waking in one second, until all are delivered (woken), once.
//!
//! The hidden `worker` subcommand is this same binary run by the `conn`
//! and `fanout` coordinators, `storm-worker` by `storm`, `scaleout`
//! and `rolling`;
//! they speak JSON lines on stdin/stdout.

pub mod auth;
pub mod bounded;
pub mod cli;
pub mod client;
pub mod endpoints;
pub mod harness;
pub mod lean;
pub mod loopback;
pub mod pacing;
pub mod ports;
pub mod scenario;
pub mod stamp;
