//! A Kubernetes Service's endpoints as kube-proxy routes to them: only the
//! nodes whose readiness probe passes. Without it a client "through the
//! Service" could land on a node that is gone, draining or not started —
//! which a real Service does not route to once the probe has failed
//! `FAILURES` times in a row (k8s/base/deployment.yaml: `/readyz` every
//! 5 s, `failureThreshold: 2`, `successThreshold: 1`). The lag between a
//! node going unready and leaving the set is the probe's, as in a cluster.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Failed probes in a row that take a node out (the manifest's
/// `failureThreshold`); one success puts it back.
const FAILURES: u32 = 2;

/// The nodes a Service routes to now, probed in the background.
pub struct Endpoints {
    ready: Vec<AtomicBool>,
    failed: Vec<AtomicU32>,
}

impl Endpoints {
    /// Probes `GET /readyz` of every node (base URLs, or `ws://…/ws`) every
    /// `period` on a task of its own, for as long as the process runs.
    /// Every node counts as ready until its probes say otherwise, as a
    /// pod that passed its first probe.
    pub fn watch(nodes: &[String], period: Duration) -> anyhow::Result<Arc<Endpoints>> {
        let probes: Vec<String> = nodes.iter().map(|n| readyz_url(n)).collect();
        let endpoints = Arc::new(Endpoints {
            ready: probes.iter().map(|_| AtomicBool::new(true)).collect(),
            failed: probes.iter().map(|_| AtomicU32::new(0)).collect(),
        });
        // The probe's timeout is under its period, as the manifest's 3 s
        // under 5 s.
        let http = reqwest::Client::builder()
            .timeout(period.mul_f64(0.6))
            .build()?;
        let watched = endpoints.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                let checks = probes.iter().map(|url| passes(&http, url));
                let results = futures_util::future::join_all(checks).await;
                for (i, ok) in results.into_iter().enumerate() {
                    watched.record(i, ok);
                }
            }
        });
        Ok(endpoints)
    }

    fn record(&self, node: usize, ok: bool) {
        let failed = match ok {
            true => 0,
            false => self.failed[node].load(Ordering::Relaxed) + 1,
        };
        self.failed[node].store(failed, Ordering::Relaxed);
        self.ready[node].store(failed < FAILURES, Ordering::Relaxed);
    }

    /// A node picked at random among the ready ones; `None` when none is
    /// (the caller then picks any, as a client would retry the Service).
    pub fn pick(&self) -> Option<usize> {
        let ready: Vec<usize> = (0..self.ready.len())
            .filter(|&i| self.ready[i].load(Ordering::Relaxed))
            .collect();
        (!ready.is_empty()).then(|| ready[rand::random_range(0..ready.len())])
    }
}

async fn passes(http: &reqwest::Client, url: &str) -> bool {
    matches!(http.get(url).send().await, Ok(r) if r.status().is_success())
}

/// `http://h:p`, `http://h:p/`, or `ws://h:p/ws` → `http://h:p/readyz`.
fn readyz_url(node: &str) -> String {
    let base = node.trim_end_matches('/').trim_end_matches("/ws");
    let base = base
        .strip_prefix("ws://")
        .map_or_else(|| base.to_owned(), |rest| format!("http://{rest}"));
    format!("{base}/readyz")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_go_to_readyz() {
        for node in [
            "http://127.0.0.1:80",
            "http://127.0.0.1:80/",
            "ws://127.0.0.1:80/ws",
        ] {
            assert_eq!(readyz_url(node), "http://127.0.0.1:80/readyz");
        }
    }

    #[test]
    fn two_failed_probes_take_a_node_out_and_one_success_puts_it_back() {
        let e = Endpoints {
            ready: (0..2).map(|_| AtomicBool::new(true)).collect(),
            failed: (0..2).map(|_| AtomicU32::new(0)).collect(),
        };
        e.record(0, false);
        assert!(e.ready[0].load(Ordering::Relaxed), "one failure keeps it");
        e.record(0, false);
        assert!(!e.ready[0].load(Ordering::Relaxed));
        assert!((0..20).all(|_| e.pick() == Some(1)));
        e.record(1, false);
        e.record(1, false);
        assert_eq!(e.pick(), None);
        e.record(0, true);
        assert_eq!(e.pick(), Some(0));
    }
}
