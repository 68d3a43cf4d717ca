//! The storm's resume figures, from every client's episodes: how long
//! after the kill 50%, 99% and 100% of the victims' clients were back
//! (welcomed by a survivor, and resumed: their `sync` answered).

use std::collections::BTreeMap;

use serde::Serialize;

use super::pipe::{ClientOutcome, Episode};

/// Milliseconds after the kill by which a share of the clients got there;
/// `None` when that share never did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Shares {
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p100_ms: Option<f64>,
}

/// The storm as the clients lived it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Resume {
    pub clients: usize,
    /// Clients whose connection ended after the kill.
    pub lost: usize,
    pub resumed: usize,
    pub never_resumed: usize,
    /// Clients that lost a connection before the kill (should be 0).
    pub dropped_before_kill: usize,
    /// Clients that lost a connection again after resuming.
    pub lost_again: usize,
    /// The clients noticed their connection had ended (the kernel closed
    /// the dead node's sockets; the client read the end).
    pub noticed: Shares,
    pub welcomed: Shares,
    pub resumed_after: Shares,
    /// Clients resumed by the end of each second after the kill.
    pub resumed_by_second: Vec<usize>,
    /// Where the clients landed: node id → clients.
    pub landed: BTreeMap<String, usize>,
    /// Failed connect attempts during the storm episodes.
    pub refused_attempts: u64,
    /// Connect attempts per resumed client (1 + failed), p50 / p99 / max.
    pub attempts: [u32; 3],
}

/// The `q` quantile of `total` values of which `sorted` are known (the
/// rest never happened, i.e. infinitely late): `None` if the rank falls
/// among the missing ones.
pub fn quantile(sorted: &[u64], total: usize, q: f64) -> Option<u64> {
    if total == 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as usize).clamp(1, total);
    sorted.get(rank - 1).copied()
}

fn shares(mut delays_us: Vec<u64>, total: usize) -> Shares {
    delays_us.sort_unstable();
    let ms = |q| quantile(&delays_us, total, q).map(|us| us as f64 / 1e3);
    Shares {
        p50_ms: ms(0.50),
        p99_ms: ms(0.99),
        p100_ms: ms(1.0),
    }
}

/// Where the clients were last welcomed: node id → clients.
pub fn landed(clients: &[ClientOutcome]) -> BTreeMap<String, usize> {
    let mut landed = BTreeMap::new();
    for n in clients.iter().filter_map(|c| c.node.clone()) {
        *landed.entry(n).or_default() += 1;
    }
    landed
}

/// The first episode that began at or after the kill.
fn storm_episode(c: &ClientOutcome, kill_us: u64) -> Option<&Episode> {
    c.episodes.iter().find(|e| e.lost_us >= kill_us)
}

pub fn summarize(clients: &[ClientOutcome], kill_us: u64) -> Resume {
    let mut r = Resume {
        clients: clients.len(),
        landed: landed(clients),
        ..Resume::default()
    };
    let (mut noticed, mut welcomed) = (Vec::new(), Vec::new());
    let (mut resumed, mut attempts) = (Vec::new(), Vec::new());
    for c in clients {
        if c.episodes.iter().any(|e| e.lost_us < kill_us) {
            r.dropped_before_kill += 1;
        }
        let Some(e) = storm_episode(c, kill_us) else {
            continue;
        };
        r.lost += 1;
        noticed.push(e.lost_us - kill_us);
        r.refused_attempts += u64::from(e.refused);
        if c.episodes.iter().filter(|x| x.lost_us >= kill_us).count() > 1 {
            r.lost_again += 1;
        }
        if let Some(w) = e.welcomed_us {
            welcomed.push(w.saturating_sub(kill_us));
        }
        if let Some(s) = e.resumed_us {
            resumed.push(s.saturating_sub(kill_us));
            attempts.push(1 + e.refused);
        }
    }
    r.resumed = resumed.len();
    r.never_resumed = r.clients - r.resumed;
    r.resumed_by_second = by_second(&resumed);
    r.noticed = shares(noticed, r.clients);
    r.welcomed = shares(welcomed, r.clients);
    r.resumed_after = shares(resumed, r.clients);
    attempts.sort_unstable();
    let n = attempts.len();
    let at = |q| {
        quantile(
            &attempts.iter().map(|&a| a as u64).collect::<Vec<_>>(),
            n,
            q,
        )
    };
    r.attempts = [0.5, 0.99, 1.0].map(|q| at(q).unwrap_or(0) as u32);
    r
}

/// How many of `delays_us` are at most 1 s, 2 s, … up to the largest.
pub fn by_second(delays_us: &[u64]) -> Vec<usize> {
    let Some(&max) = delays_us.iter().max() else {
        return Vec::new();
    };
    let seconds = (max / 1_000_000 + 1) as usize;
    let mut counts = vec![0usize; seconds];
    for &d in delays_us {
        counts[(d / 1_000_000) as usize] += 1;
    }
    let mut total = 0;
    counts
        .iter()
        .map(|c| {
            total += c;
            total
        })
        .collect()
}
