//! The roll's figures and report: per step, from the clients' episodes,
//! how long after its node's SIGTERM its clients were back; JSON for
//! scripts, a summary for people.

use herald_harness::check::Tally;
use herald_harness::latency::Summary;
use herald_harness::SendStats;
use serde::Serialize;

use crate::harness::report::Table;
use crate::scenario::storm::fleet_report::{
    backoff, met, ms, print_errors_by_kind, print_head, print_landed, print_messages, redis_line,
    FleetUp, RedisLoad,
};
use crate::scenario::storm::outcome::{quantile, Shares};
use crate::scenario::storm::pipe::ClientOutcome;

/// One step as the coordinator ran it (unix µs).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Step {
    pub old: String,
    pub old_pid: u32,
    pub new: String,
    /// When the replacement was asked for (its start file).
    pub asked_us: u64,
    /// When it first answered `/readyz` 200.
    pub ready_us: Option<u64>,
    pub sigterm_us: u64,
    /// The old node's connections just before its SIGTERM (its `/metrics`).
    pub connections: Option<u64>,
    /// When the old process was seen gone.
    pub gone_us: Option<u64>,
    /// When every client of it was back and it was gone (or the give-up).
    pub end_us: u64,
}

/// The clients of one step: those whose connection ended from its SIGTERM
/// to the next step's.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Back {
    pub moved: usize,
    pub resumed: usize,
    pub unresumed: usize,
    /// Clients that lost their connection again within the step.
    pub lost_again: usize,
    /// From the SIGTERM to the resume (welcome, `sync` answered).
    pub after: Shares,
    /// Failed connects on the way (a node gone, not started, draining).
    pub refused_attempts: u64,
}

/// [`Back`] of each step, its clients those whose first episode in
/// `[sigterms[k], sigterms[k + 1])` (the last: to the end) says they
/// moved; the times are counted from `sigterms[k]`.
pub fn back_per_step(clients: &[ClientOutcome], sigterms: &[u64]) -> Vec<Back> {
    let window = |k: usize| {
        (
            sigterms[k],
            sigterms.get(k + 1).copied().unwrap_or(u64::MAX),
        )
    };
    (0..sigterms.len())
        .map(|k| {
            let (from, to) = window(k);
            let mut b = Back::default();
            let mut after = Vec::new();
            for c in clients {
                let mut in_step = c
                    .episodes
                    .iter()
                    .filter(|e| (from..to).contains(&e.lost_us));
                let Some(e) = in_step.next() else { continue };
                b.moved += 1;
                b.lost_again += usize::from(in_step.next().is_some());
                b.refused_attempts += u64::from(e.refused);
                match e.resumed_us {
                    Some(r) => after.push(r.saturating_sub(from)),
                    None => b.unresumed += 1,
                }
            }
            b.resumed = after.len();
            after.sort_unstable();
            let ms = |q| quantile(&after, b.moved, q).map(|us| us as f64 / 1e3);
            b.after = Shares {
                p50_ms: ms(0.5),
                p99_ms: ms(0.99),
                p100_ms: ms(1.0),
            };
            b
        })
        .collect()
}

/// The most clients one node holds in the roll, `clients` spread evenly
/// over `nodes` old nodes at first, each drained node's clients landing
/// evenly on the nodes up (the other old ones and the replacements started
/// so far, its own started before its SIGTERM): each old node not rolled
/// yet takes 1/`nodes` of every drain before its own, so the last holds
/// (clients / nodes) · (1 + 1/nodes)^(nodes − 1) before its turn.
pub fn fullest(clients: usize, nodes: usize) -> f64 {
    if nodes == 0 {
        return 0.0;
    }
    let n = nodes as f64;
    let mut old = vec![clients as f64 / n; nodes];
    let mut new = vec![0.0; nodes];
    let mut most = old[0];
    for k in 0..nodes {
        let share = std::mem::take(&mut old[k]) / n;
        old[k + 1..].iter_mut().for_each(|c| *c += share);
        new[..=k].iter_mut().for_each(|c| *c += share);
        most = old.iter().chain(&new).fold(most, |m, &c| m.max(c));
    }
    most
}

#[derive(Debug, Clone, Serialize)]
pub struct RollingReport {
    pub clients: usize,
    #[serde(flatten)]
    pub up: FleetUp,
    pub backoff_base_ms: u64,
    pub backoff_cap_ms: u64,
    /// Reconnects as the SDK's node list (else through a Service).
    pub sdk_list: bool,
    /// Through a Service routing to ready nodes only: how often they were
    /// probed (0: every address).
    pub service_readiness_ms: u64,
    pub offered_rate: f64,
    /// The most clients one node was expected to hold ([`fullest`]).
    pub fullest_expected: f64,
    pub steps: Vec<Step>,
    pub back: Vec<Back>,
    pub target_secs: f64,
    /// From the first replacement asked for to the last step's end, s.
    pub roll_secs: f64,
    /// From the first SIGTERM to the last step's end, s.
    pub sigterm_to_end_secs: f64,
    /// Where the clients were last welcomed: node id → clients.
    pub landed: std::collections::BTreeMap<String, usize>,
    /// From each message's send to its first arrival, the messages sent
    /// from the first SIGTERM to the last step's end.
    pub delivery: Summary,
    pub messages: SendStats,
    pub exactly_once: Tally<usize>,
    /// Redis from the first SIGTERM to the last step's end (baseline:
    /// before the roll).
    pub redis: Option<RedisLoad>,
    /// Every step's clients back within `target_secs`, none left out.
    pub back_in_time: bool,
    /// Back in time, nothing lost or doubled, every old node gone.
    pub target_met: bool,
    pub connect_errors_by_kind: Vec<(String, u64)>,
}

fn secs_after(at: Option<u64>, from: u64) -> String {
    at.map(|a| format!("{:.1} s", a.saturating_sub(from) as f64 / 1e6))
        .unwrap_or_else(|| "never".into())
}

pub fn print(r: &RollingReport) {
    let clients = format!(
        "{} on {} old node(s), each replaced in turn (its replacement started and ready first, then SIGTERM); {} worker(s); at most {:.0} on one node expected",
        r.clients,
        r.steps.len(),
        r.up.workers,
        r.fullest_expected
    );
    let reconnects = match (r.sdk_list, r.service_readiness_ms) {
        (true, _) => "as the SDK's node list (another node that has not refused)".to_owned(),
        (false, 0) => "through a Service (any address at random, old or new)".to_owned(),
        (false, ms) => format!(
            "through a Service routing to the ready nodes (/readyz probed every {ms} ms, out after 2 failures)"
        ),
    };
    let more = [
        r.up.rss(),
        backoff(r.backoff_base_ms, r.backoff_cap_ms),
        format!("reconnects {reconnects}"),
    ];
    print_head("rolling", &clients, &r.up, &more);
    let mut t = Table::new([
        "step",
        "new ready",
        "on it",
        "moved",
        "not back",
        "back 50%",
        "99%",
        "100%",
        "old gone",
        "failed connects",
    ]);
    for (k, (s, b)) in r.steps.iter().zip(&r.back).enumerate() {
        t.row([
            format!("{k}: pid {}", s.old_pid),
            secs_after(s.ready_us, s.asked_us),
            s.connections.map_or("-".into(), |c| c.to_string()),
            b.moved.to_string(),
            b.unresumed.to_string(),
            ms(b.after.p50_ms, "never"),
            ms(b.after.p99_ms, "never"),
            ms(b.after.p100_ms, "never"),
            secs_after(s.gone_us, s.sigterm_us),
            b.refused_attempts.to_string(),
        ]);
    }
    println!("per step (times after the old node's SIGTERM; new ready: after it was asked for)");
    t.print();
    println!(
        "roll               {:.1} s from the first replacement asked for to the last step's end ({:.1} s from the first SIGTERM)",
        r.roll_secs, r.sigterm_to_end_secs
    );
    print_landed(&r.landed);
    println!(
        "delivery           {} (send to first arrival, messages sent during the roll)",
        r.delivery
    );
    print_messages(&r.messages, &r.exactly_once, r.offered_rate);
    if let Some(redis) = &r.redis {
        println!("{}", redis_line(redis, "roll"));
    }
    print_errors_by_kind(&r.connect_errors_by_kind);
    println!(
        "back in time       every step's clients resumed within {:.0} s of its SIGTERM: {}",
        r.target_secs,
        met(r.back_in_time)
    );
    println!(
        "target             back within {:.0} s, nothing lost or doubled, every old node gone: {}",
        r.target_secs,
        met(r.target_met)
    );
}
