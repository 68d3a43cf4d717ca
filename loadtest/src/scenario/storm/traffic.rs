//! The storm's traffic and instruments: the steady sender through the
//! survivors' API and the Redis sampler, running from before the kill to
//! the end of the tail, and the progress line that shows both.

use std::sync::Arc;
use std::time::Duration;

use herald_harness::clock::unix_micros;
use herald_harness::redis_info::{self, RedisSampler};
use herald_harness::ApiSender;
use rand::rngs::SmallRng;
use rand::RngExt;
use tokio::sync::watch;
use tokio::time::Instant;

use super::args::{storm_user, StormArgs};
use super::pipe::Progress;
use crate::harness::report::percent;
use crate::pacing::{paced, Driven};

/// What the phases share while traffic flows.
pub struct Live {
    pub sender: Arc<ApiSender<usize>>,
    pub sampler: Option<RedisSampler>,
    stop: watch::Sender<bool>,
    sending: tokio::task::JoinHandle<Driven>,
    pub started: Instant,
    pub started_us: u64,
}

/// Starts the Redis sampler and the steady sender (to random storm users,
/// through the survivors in turn).
pub fn start_traffic(args: &StormArgs, run: u32) -> anyhow::Result<Live> {
    let sampler = args.redis.clone().map(|addr| {
        let limit = Duration::from_secs(args.common.timeout_secs());
        RedisSampler::start(addr, Duration::from_millis(args.redis_sample_ms), limit)
    });
    let sender = Arc::new(ApiSender::new(
        args.survivors.clone(),
        args.common.api_key.clone(),
        args.http_concurrency,
        Duration::from_secs(10),
        move |&u| storm_user(run, u),
    )?);
    let (stop, stopped) = watch::channel(false);
    let longest = Duration::from_secs(args.baseline + args.storm_timeout + args.tail + 60);
    let (s, clients, mut rng) = (sender.clone(), args.clients, rand::make_rng::<SmallRng>());
    let sending = paced(args.rate, longest, stopped, move |ks| {
        let users: Vec<usize> = ks.map(|_| rng.random_range(0..clients)).collect();
        let s = s.clone();
        async move {
            for u in users {
                s.post(vec![u], message(run, u)).await;
            }
        }
    });
    Ok(Live {
        sender,
        sampler,
        stop,
        sending,
        started: Instant::now(),
        started_us: unix_micros(),
    })
}

/// A one-user message to storm user `u`.
pub fn message(run: u32, u: usize) -> serde_json::Value {
    serde_json::json!({
        "to": {"users": [storm_user(run, u)]},
        "category": "system",
        "body": format!("storm {run}"),
    })
}

/// One progress line.
pub fn line(
    phase: &str,
    live: &Live,
    kill_us: Option<u64>,
    p: &Progress,
    clients: usize,
) -> String {
    let now = unix_micros();
    let t = match kill_us {
        Some(k) => format!("kill{:+.1}s", (now as f64 - k as f64) / 1e6),
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
        "storm {phase:<8} {t:>11} | online {:>6} | resumed {:>6} ({:>6}) lost {:>6} | refused {:>6} | sent {} accepted {} received {}{redis}",
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
    /// Stops sending and waits (bounded) for the requests in flight.
    pub async fn stop_sending(&mut self) {
        let _ = self.stop.send(true);
        let _ = (&mut self.sending).await;
        self.sender.drain(Duration::from_secs(30)).await;
    }
}
