//! The fault catalogue (docs/faults.md), with real processes: real
//! `herald` nodes ([`ProcessNode`](common::process::ProcessNode)), real
//! redis-server processes (standalone, with AOF, behind a Sentinel with a
//! replica, behind a [`TcpProxy`](herald_testing::TcpProxy)) and real
//! WebSocket clients. One file per fault: `kill_node.rs`,
//! `redis_outage.rs`, `sentinel_failover.rs`, `slow_consumers.rs`,
//! `reconnect_storm.rs`.
//!
//! The promise under test: "a message the server accepted (202 or ok reply)
//! must reach every device of its recipient exactly once, whatever fails".
//!
//! The checker is herald-harness's: a [`Fleet`](fleet::Fleet) of resuming
//! devices (users with one or two devices each, a distinct `device` query
//! per device) and a [`Traffic`](traffic::Traffic) that posts
//! `POST /v1/messages` at a steady, bounded rate and books the `stored[].seq`
//! and `id` of every 202. Each device acknowledges what it gets (`ack`),
//! and after any close reconnects to another node with exponential backoff
//! and full jitter (trying the next node when one refuses), then `sync`s
//! from the highest seq it has (docs/protocol.md). A device dedups by seq,
//! as the protocol asks; its ledger counts the faults (a seq doubled on one
//! connection, a gap, a seq or an id reused) and, as information, what came
//! again harmlessly (redelivered after a reconnect, resent by a `sync` or
//! after a `reset`). "Exactly once" is then: nothing accepted lost (by id
//! or by seq), every id at the seq its 202 named, and no fault.
//!
//! The tests run one at a time (they start many processes and measure
//! memory and Redis load; on a small machine, running them together would
//! only measure each other), each on its own Redis; the binary takes about
//! 100 s on two cores. Numbers from the runs are in docs/faults.md; each
//! test prints its own (`--nocapture`).

#[path = "../common/mod.rs"]
mod common;

mod api;
mod fleet;
mod nodes;
mod traffic;
mod verdict;
mod waits;

mod kill_node;
mod reconnect_storm;
mod redis_outage;
mod sentinel_failover;
mod slow_consumers;

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most time any one wait of these tests may take.
const LONG: Duration = Duration::from_secs(60);
/// The sender's pace: at most 100 messages per second.
const PACE: Duration = Duration::from_millis(10);

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `test` on its own two-thread runtime, after any other test of this
/// binary has finished.
fn run(test: impl Future<Output = ()>) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let started = Instant::now();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(test);
    eprintln!("test took {:.1} s", started.elapsed().as_secs_f64());
}
