//! The `unicast` scenario: private messages entering the cluster on gateway A
//! and delivered to receivers connected to gateway B, so every message crosses
//! the broker (Redis) between nodes.
//!
//! Sending is open-loop (see [`crate::pacing`]): message `k` of a trial is due
//! at `start + k / rate` and carries that scheduled time; a receiver's latency
//! is `arrival - scheduled`, so a sender that falls behind shows up as latency
//! instead of quietly lowering the load.

mod args;
pub mod report;
mod sender;
pub mod trial;
mod trials;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::bail;
use futures_util::StreamExt;
use herald_harness::clock::unix_micros;
use herald_protocol::ServerFrame;
use tokio::time::Instant;

pub use args::{UnicastArgs, Via};

use self::sender::Sender;
use self::trial::Current;
use self::trials::{receiver, Trials};
use crate::cli::ws_url;
use crate::client::{connect_all, Connector, Ws};
use crate::harness::report::write_json;
use crate::stamp::Stamp;

pub async fn run(args: UnicastArgs) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(args.common.timeout_secs());
    if args.receivers == 0 || args.rate <= 0.0 {
        bail!("--receivers and --rate must be positive");
    }
    let connector = Arc::new(Connector::new(&args.common.client, None));
    // Users are new in every run (`lt-r-<run>-<i>`), so no receiver starts
    // with a backlog of an earlier run's unacked messages to replay.
    let run_id = crate::stamp::run_nonce();
    let current: Current = Arc::new(RwLock::new(None));
    let live = Arc::new(AtomicU64::new(0));

    // Receivers on gateway B.
    let to_url = ws_url(&args.to);
    let started = Instant::now();
    let users = (0..args.receivers).map(|i| receiver(run_id, i)).collect();
    let concurrency = args.common.client.concurrency;
    let (c, cur) = (connector.clone(), current.clone());
    connect_all(
        &connector,
        &to_url,
        users,
        concurrency,
        &live,
        move |_, ws| {
            let (connector, current) = (c.clone(), cur.clone());
            async move { receive(ws, &connector, &current).await }
        },
    )
    .await?;
    tracing::info!(
        receivers = args.receivers,
        secs = started.elapsed().as_secs_f64(),
        "receivers connected"
    );

    let sender = Sender::start(&args, run_id, &connector, &current).await?;
    let mut trials = Trials {
        args: &args,
        run_id,
        sender,
        current,
        live,
        last_id: 0,
    };
    if args.warmup > 0 {
        let r = trials
            .run(args.rate, Duration::from_secs(args.warmup))
            .await?;
        tracing::info!(
            p99_us = r.latency.p99_us,
            lost = r.lost,
            "warm-up trial done (not reported)"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let mut reports = Vec::new();
    if !args.find_max {
        trials.measure(args.rate, &mut reports).await?;
        return write_json(args.common.out.as_deref(), &reports);
    }
    // Grow ×1.5 until a rate is not sustained, then bisect between the
    // best sustained and the first failed rate.
    let (mut best, mut failed): (Option<f64>, Option<f64>) = (None, None);
    let mut rate = args.rate;
    while Instant::now() < deadline && rate <= args.max_rate {
        if trials.measure(rate, &mut reports).await? {
            best = Some(rate);
            rate *= 1.5;
        } else {
            failed = Some(rate);
            if best.is_some() {
                break;
            }
            rate /= 2.0;
            if rate < 10.0 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    if let (Some(mut lo), Some(mut hi)) = (best, failed) {
        for _ in 0..3 {
            if Instant::now() >= deadline || hi - lo < lo * 0.05 {
                break;
            }
            let mid = ((lo + hi) / 2.0).round();
            if trials.measure(mid, &mut reports).await? {
                lo = mid;
            } else {
                hi = mid;
            }
            best = Some(lo);
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    match best {
        Some(b) => println!("highest sustained rate: {b:.0} msg/s (via {:?})", args.via),
        None => println!("no sustained rate found (via {:?})", args.via),
    }
    write_json(args.common.out.as_deref(), &reports)
}

/// Reads one receiver connection until it closes, recording deliveries.
async fn receive(mut ws: Ws, connector: &Connector, current: &Current) {
    while let Some(Ok(msg)) = ws.next().await {
        let fast = match &msg {
            tokio_tungstenite::tungstenite::Message::Text(t) => Stamp::read_json(t),
            _ => None,
        };
        let stamp = fast.or_else(|| match connector.decode(&msg) {
            Some(Ok(ServerFrame::Message(m))) => Stamp::read(&m),
            _ => None,
        });
        let Some(st) = stamp else {
            continue;
        };
        let now = unix_micros();
        let trial = current.read().expect("current lock").clone();
        if let Some(trial) = trial.filter(|tr| tr.run == st.run && tr.id == st.trial) {
            trial.receive(st.k, now.saturating_sub(st.sched_us));
        }
    }
}
