//! The storm's (and the scale-out's) traffic and instruments: the steady
//! sender through the API of the nodes that stay, and the Redis sampler,
//! running from before the kill (the scale-out, the roll) to the end of the
//! tail, and the progress line that shows both. Each message is stamped with
//! its send time, so the workers time its delivery (those sent while
//! [`Live::timed`] is off are stamped trial [`UNTIMED`] and left out).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use herald_harness::check::{check, Tally};
use herald_harness::clock::unix_micros;
use herald_harness::redis_info::{self, RedisSampler};
use herald_harness::ApiSender;
use rand::rngs::SmallRng;
use rand::RngExt;
use tokio::sync::watch;
use tokio::time::Instant;

use super::args::storm_user;
use super::fleet_args::FleetArgs;
use super::pipe::{ClientOutcome, Progress};
use crate::harness::report::percent;
use crate::pacing::{paced, Driven};
use crate::stamp::Stamp;

/// What the phases share while traffic flows.
pub struct Live {
    pub sender: Arc<ApiSender<usize>>,
    pub sampler: Option<RedisSampler>,
    /// Whether the messages sent now count in the delivery latency (on
    /// unless a scenario turns it off).
    pub timed: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
    sending: tokio::task::JoinHandle<Driven>,
    pub started: Instant,
    pub started_us: u64,
}

/// What the steady traffic is.
pub struct Steady {
    /// The nodes whose API takes the messages, in turn.
    pub nodes: Vec<String>,
    /// If given, only the nodes whose bit is set take them (`rolling`:
    /// the nodes up); none set, the message is not sent.
    pub up: Option<Arc<AtomicU64>>,
    pub api_key: String,
    pub http_concurrency: usize,
    /// Messages per second, each to one random client of `0..clients`.
    pub rate: f64,
    pub clients: usize,
    /// When the sender stops even if not told.
    pub longest: Duration,
    /// Redis `host:port` sampled every so many ms, for at most `limit`.
    pub redis: Option<(String, u64)>,
    pub limit: Duration,
}

impl Steady {
    /// The traffic `args` asks for, through `nodes` in turn, stopping
    /// after `longest` at the latest; every node up, no Redis sampled.
    pub fn new(args: &FleetArgs, nodes: Vec<String>, longest: Duration) -> Steady {
        Steady {
            nodes,
            up: None,
            api_key: args.common.api_key.clone(),
            http_concurrency: args.http_concurrency,
            rate: args.rate,
            clients: args.clients,
            longest,
            redis: None,
            limit: args.common.limit(),
        }
    }
}

/// Starts the Redis sampler and the steady sender (to random storm users,
/// through `nodes` in turn).
pub fn start_traffic(plan: &Steady, run: u32) -> anyhow::Result<Live> {
    let sampler = plan.redis.clone().map(|(addr, every_ms)| {
        RedisSampler::start(addr, Duration::from_millis(every_ms), plan.limit)
    });
    let sender = Arc::new(ApiSender::new(
        plan.nodes.clone(),
        plan.api_key.clone(),
        plan.http_concurrency,
        Duration::from_secs(10),
        move |&u| storm_user(run, u),
    )?);
    let (stop, stopped) = watch::channel(false);
    let (s, clients, mut rng) = (sender.clone(), plan.clients, rand::make_rng::<SmallRng>());
    let timed = Arc::new(AtomicBool::new(true));
    let (on, up) = (timed.clone(), plan.up.clone());
    let mut turn = 0u32;
    let sending = paced(plan.rate, plan.longest, stopped, move |ks| {
        let jobs: Vec<(usize, u64)> = ks.map(|k| (rng.random_range(0..clients), k)).collect();
        let trial = if on.load(Ordering::Relaxed) {
            0
        } else {
            UNTIMED
        };
        let nodes = up.as_ref().map(|up| up.load(Ordering::Relaxed));
        let s = s.clone();
        let mut picks = Vec::with_capacity(jobs.len());
        for _ in &jobs {
            turn = turn.wrapping_add(1);
            picks.push(nodes.map(|mask| nth_bit(mask, turn)));
        }
        async move {
            for ((u, k), node) in jobs.into_iter().zip(picks) {
                let body = message(run, trial, u, k);
                match node {
                    None => s.post(vec![u], body).await,
                    Some(Some(n)) => s.post_to(n, vec![u], body).await,
                    Some(None) => {} // no node up
                }
            }
        }
    });
    Ok(Live {
        sender,
        sampler,
        timed,
        stop,
        sending,
        started: Instant::now(),
        started_us: unix_micros(),
    })
}

/// The stamp's trial of a message left out of the delivery latency.
pub const UNTIMED: u32 = 1;

/// The `turn`-th set bit of `mask` (mod their number); `None` if none is.
pub fn nth_bit(mask: u64, turn: u32) -> Option<usize> {
    let set = mask.count_ones();
    if set == 0 {
        return None;
    }
    let mut skip = turn % set;
    (0..64).find(|&i| {
        let hit = mask & (1 << i) != 0;
        if hit && skip == 0 {
            return true;
        }
        skip -= u32::from(hit);
        false
    })
}

/// Message `k`, to storm user `u`, stamped with its send time (now).
pub fn message(run: u32, trial: u32, u: usize, k: u64) -> serde_json::Value {
    let st = Stamp {
        run,
        trial,
        k,
        sched_us: unix_micros(),
    };
    serde_json::json!({
        "to": {"users": [storm_user(run, u)]},
        "category": "system",
        "body": st.body(),
        "data": st.data(),
    })
}

/// One progress line; the time since `event` (its name and unix µs, the
/// kill), or else since the traffic started.
pub fn line(
    phase: &str,
    live: &Live,
    event: Option<(&str, u64)>,
    p: &Progress,
    clients: usize,
) -> String {
    let now = unix_micros();
    let t = match event {
        Some((what, at)) => format!("{what}{:+.1}s", (now as f64 - at as f64) / 1e6),
        None => format!("start+{:.1}s", live.started.elapsed().as_secs_f64()),
    };
    let s = live.sender.stats();
    let redis = live
        .sampler
        .as_ref()
        .and_then(|x| redis_info::mean(&x.snapshot(), now.saturating_sub(1_000_000), now))
        .map(|o| format!(" | redis {o:.0} ops/s"))
        .unwrap_or_default();
    format!(
        "{phase:<17} {t:>11} | online {:>6} | resumed {:>6} ({:>6}) lost {:>6} | refused {:>6} | sent {} accepted {} received {}{redis}",
        p.online,
        p.clients_resumed,
        percent(p.clients_resumed as u64, clients as u64),
        p.lost,
        p.refused,
        s.dispatched,
        s.accepted,
        p.received,
    )
}

impl Live {
    /// Whether every message accepted so far reached its user exactly
    /// once, by the clients' final reports.
    pub fn exactly_once(&self, outcomes: &[ClientOutcome]) -> Tally<usize> {
        let received: Vec<_> = outcomes.iter().map(|c| c.received.clone()).collect();
        check(&self.sender.accepted(), &received)
    }

    /// Stops sending and waits (bounded) for the requests in flight.
    pub async fn stop_sending(&mut self) {
        let _ = self.stop.send(true);
        let _ = (&mut self.sending).await;
        self.sender.drain(Duration::from_secs(30)).await;
    }
}
