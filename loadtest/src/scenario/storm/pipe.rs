//! What the storm coordinator and its workers say to each other (JSON
//! lines, see [`crate::harness::worker`]).

use serde::{Deserialize, Serialize};

use herald_harness::check::Received;
use herald_harness::latency::Buckets;

use crate::scenario::conn;

/// Coordinator → worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// Connect every client to its home node.
    Connect,
    /// Send the final report.
    Report,
    /// Close everything and exit.
    Close,
}

/// Worker → coordinator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Hello,
    /// Every client is up and synced, or the connect phase gave up (the
    /// counts of `conn`'s event: ok, failed, a few errors, the RSS).
    Connected(conn::pipe::Connected),
    /// Sent every 500 ms after `connect`.
    Progress(Progress),
    /// Every client, the connect errors seen (message, count), and the
    /// delivery latency of the run's stamped messages (first arrivals,
    /// from their send time).
    Report {
        clients: Vec<ClientOutcome>,
        errors: Vec<(String, u64)>,
        #[serde(default)]
        latency: Buckets,
    },
}

/// A worker's counters now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Clients with a connection up.
    pub online: usize,
    /// Connections that ended (each opens an episode).
    pub lost: u64,
    /// Episodes closed by a resume (welcome, then the `sync` answered).
    pub resumed: u64,
    /// Clients that resumed at least once after a loss.
    pub clients_resumed: usize,
    /// Connect attempts that failed.
    pub refused: u64,
    /// Distinct inbox messages received, over the worker's clients.
    pub received: u64,
    /// `reconnect` frames received: a node asked a client to move.
    #[serde(default)]
    pub moved: u64,
}

impl Progress {
    pub fn add(&mut self, o: &Progress) {
        self.online += o.online;
        self.lost += o.lost;
        self.resumed += o.resumed;
        self.clients_resumed += o.clients_resumed;
        self.refused += o.refused;
        self.received += o.received;
        self.moved += o.moved;
    }
}

/// From a connection's end to the next welcome and resume (unix µs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Episode {
    pub lost_us: u64,
    pub welcomed_us: Option<u64>,
    pub resumed_us: Option<u64>,
    /// Failed connect attempts during the episode.
    pub refused: u32,
}

/// One client at the end of the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientOutcome {
    pub user: usize,
    /// When its first connection was synced (unix µs).
    pub first_synced_us: Option<u64>,
    pub episodes: Vec<Episode>,
    /// The node id of the last welcome.
    pub node: Option<String>,
    pub received: Received<usize>,
    /// `reconnect` frames it received.
    #[serde(default)]
    pub moves: u32,
}
