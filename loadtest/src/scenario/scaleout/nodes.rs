//! The nodes as they count themselves: every second each node's
//! `/metrics` (its WebSocket connections, `herald_rebalance_moved_total`
//! and `_rounds_total`, upgrades refused while it moved), and what the
//! scale-out's targets read from them: the ideal number of moves, and
//! when every node came to hold the mean within the band for good.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_harness::clock::unix_micros;
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::client::http_client;

/// One node's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct NodeCounts {
    /// WebSocket connections open (`herald_connections`, every codec).
    pub connections: u64,
    /// Connections it asked to move (`herald_rebalance_moved_total`).
    pub moved: u64,
    /// Rounds in which it moved some.
    pub rounds: u64,
    /// Upgrades it refused while moving (503, `cause="rebalancing"`).
    pub refused: u64,
}

/// Every node at one moment; `None` for a node that did not answer (not
/// started yet, or too slow).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Sample {
    pub at_us: u64,
    pub nodes: Vec<Option<NodeCounts>>,
}

impl Sample {
    /// The sum of `what` over the nodes that answered.
    pub fn total(&self, what: impl Fn(&NodeCounts) -> u64) -> u64 {
        self.nodes.iter().flatten().map(what).sum()
    }
}

/// The sum of every series `name` in Prometheus text (any labels, or only
/// those whose labels contain `label`).
pub fn metric(text: &str, name: &str, label: Option<&str>) -> u64 {
    let series = text.lines().filter(|l| !l.starts_with('#'));
    let values = series.filter_map(|l| {
        let (head, value) = l.rsplit_once(' ')?;
        let (n, labels) = head.split_once('{').unwrap_or((head, ""));
        let wanted = n == name && label.is_none_or(|want| labels.contains(want));
        wanted.then(|| value.parse::<f64>().ok()).flatten()
    });
    values.sum::<f64>().round() as u64
}

/// One node's counters from its `/metrics` text.
pub fn counts(text: &str) -> NodeCounts {
    NodeCounts {
        connections: metric(text, "herald_connections", None),
        moved: metric(text, "herald_rebalance_moved_total", None),
        rounds: metric(text, "herald_rebalance_rounds_total", None),
        refused: metric(
            text,
            "herald_handshake_refusals_total",
            Some("cause=\"rebalancing\""),
        ),
    }
}

/// Every node's counters now, read at once.
pub async fn sample(http: &reqwest::Client, nodes: &[String]) -> Sample {
    let at_us = unix_micros();
    let reads = nodes.iter().map(|base| async move {
        let url = format!("{base}/metrics");
        let resp = http.get(url).send().await.ok()?;
        let text = resp.error_for_status().ok()?.text().await.ok()?;
        Some(counts(&text))
    });
    let nodes = futures_util::future::join_all(reads).await;
    Sample { at_us, nodes }
}

/// Samples every node each `every` on a task of its own, `limit` at most.
pub struct Watch {
    samples: Arc<Mutex<Vec<Sample>>>,
    task: JoinHandle<()>,
}

impl Watch {
    pub fn start(nodes: Vec<String>, every: Duration, limit: Duration) -> anyhow::Result<Watch> {
        let http = http_client(every.max(Duration::from_secs(1)) * 2, Some(1))?;
        let samples = Arc::new(Mutex::new(Vec::new()));
        let rounds = (limit.as_millis() / every.as_millis().max(1)).max(1) as u64;
        let kept = samples.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for _ in 0..rounds {
                tick.tick().await;
                let s = sample(&http, &nodes).await;
                kept.lock().expect("samples lock").push(s);
            }
        });
        Ok(Watch { samples, task })
    }

    /// The samples so far.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().expect("samples lock").clone()
    }

    /// The latest sample, if any.
    pub fn last(&self) -> Option<Sample> {
        self.samples.lock().expect("samples lock").last().cloned()
    }

    /// Stops sampling; the samples taken.
    pub fn finish(self) -> Vec<Sample> {
        self.task.abort();
        self.samples()
    }
}

/// The fewest moves that balance `counts`: Σ max(0, count − mean), the
/// mean over every node (the new ones at 0).
pub fn ideal_moves(counts: &[u64]) -> u64 {
    if counts.is_empty() {
        return 0;
    }
    let mean = counts.iter().sum::<u64>() as f64 / counts.len() as f64;
    let excess: f64 = counts.iter().map(|&c| (c as f64 - mean).max(0.0)).sum();
    excess.round() as u64
}

/// Whether every count is within `mean × (1 ± tolerance)`.
pub fn in_band(counts: &[u64], mean: f64, tolerance: f64) -> bool {
    let band = mean * tolerance;
    counts.iter().all(|&c| (c as f64 - mean).abs() <= band)
}

/// Seconds from `from_us` to the first sample at or after it from which
/// every sample is [`in_band`] (a node that never answered yet counts 0);
/// `None` when the last one is not. A sample where a node that answered
/// before is silent says nothing and is skipped.
pub fn settled_after(samples: &[Sample], from_us: u64, mean: f64, tolerance: f64) -> Option<f64> {
    let mut seen = Vec::new();
    let mut since = None;
    for s in samples {
        seen.resize(s.nodes.len(), false);
        let silent = s
            .nodes
            .iter()
            .zip(&seen)
            .any(|(n, &was)| n.is_none() && was);
        s.nodes
            .iter()
            .zip(&mut seen)
            .for_each(|(n, was)| *was |= n.is_some());
        if s.at_us < from_us || silent {
            continue;
        }
        let counts: Vec<u64> = s
            .nodes
            .iter()
            .map(|n| n.map_or(0, |n| n.connections))
            .collect();
        match in_band(&counts, mean, tolerance) {
            true => since = since.or(Some(s.at_us)),
            false => since = None,
        }
    }
    since.map(|at| at.saturating_sub(from_us) as f64 / 1e6)
}
