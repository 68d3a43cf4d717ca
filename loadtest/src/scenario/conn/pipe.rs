//! What the `conn` and `fanout` coordinators and their workers say to each
//! other over the worker pipe ([`crate::harness::worker`]).
//!
//! A worker opens its `--count` connections on `connect`, and more on each
//! `add` (the stepwise `conn --steps` walk): every batch is answered by one
//! `connected` event of its own, and the connections of earlier batches stay
//! held and keep counting broadcasts.

use serde::{Deserialize, Serialize};

use herald_harness::latency::Buckets;

/// Coordinator → worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum WorkerCommand {
    /// Open all connections now (every worker gets this at the same moment,
    /// so the connect phase is measured from one start).
    Connect,
    /// Open more connections now, `count` to each gateway of `targets`
    /// (users numbered on after this worker's earlier ones); answered by a
    /// `connected` event for these alone. The ones already held stay.
    Add { targets: Vec<AddTarget> },
    /// Start no further attempt of the current `connect` or `add`: those in
    /// flight finish, then it reports (the rest as `skipped`).
    Halt,
    /// Report round `round` now, with whatever arrived so far.
    Collect { round: u32 },
    /// Close everything and exit.
    Close,
}

/// `count` more connections to the gateway at base URL `gateway`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddTarget {
    pub gateway: String,
    pub count: usize,
}

/// Worker → coordinator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WorkerEvent {
    /// The worker is running and waits for `connect`.
    Hello {
        worker_id: usize,
    },
    Connected(Connected),
    Round(Round),
}

/// Every connection of a `connect` or `add` either is up (welcomed) or
/// gave up after its retries; the counts are this batch's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Connected {
    pub ok: usize,
    pub failed: usize,
    /// Connections of the batch never attempted (a `halt`).
    #[serde(default)]
    pub skipped: usize,
    /// Connections this worker holds now, over all batches (welcomed and
    /// not closed since).
    #[serde(default)]
    pub held: usize,
    /// Failed attempts that a later attempt made good.
    pub retries: u64,
    /// When the last connection was welcomed (unix µs).
    pub last_connect_us: u64,
    /// The worker's own RSS, to show the load generator stays lean.
    pub rss_kib: u64,
    /// A few distinct failure messages.
    pub errors: Vec<String>,
    /// Time from the start of a connection's first attempt to its welcome,
    /// for the connections that made it (µs).
    #[serde(default)]
    pub connect_latency: Buckets,
}

/// Deliveries of one broadcast round: sent when every live connection has
/// it, or on `collect`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Round {
    pub round: u32,
    pub received: usize,
    pub expected: usize,
    /// Arrival of the round's last delivery here (unix µs).
    pub last_recv_us: u64,
    pub latencies: Buckets,
    /// Connections that have closed since they were welcomed.
    pub dropped: usize,
    /// Deliveries so far, over all rounds, of a round the connection had
    /// already received (a message pushed twice).
    #[serde(default)]
    pub duplicates: u64,
}

/// Broadcasts to the workers' connections carry these fields in `data`.
/// The run nonce tells them from an earlier run's broadcasts, which the
/// gateway may replay to a connection that never acknowledged them.
pub const RUN_FIELD: &str = "lt_run";
pub const ROUND_FIELD: &str = "lt_round";
pub const SENT_FIELD: &str = "lt_sent_us";

/// The user name worker `worker` gives its connection `i`.
pub fn worker_user(worker: usize, i: usize) -> String {
    format!("lt-{worker}-{i}")
}
