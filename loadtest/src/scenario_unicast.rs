//! The `unicast` scenario: private messages entering the cluster on gateway A
//! and delivered to receivers connected to gateway B, so every message crosses
//! the broker (Redis) between nodes.
//!
//! Sending is open-loop (see [`crate::pacing`]): message `k` of a trial is due
//! at `start + k / rate` and carries that scheduled time; a receiver's latency
//! is `arrival - scheduled`, so a sender that falls behind shows up as latency
//! instead of quietly lowering the load.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{bail, Context};
use futures_util::StreamExt;
use herald_harness::clock::unix_micros;
use herald_harness::latency::{fmt_us, LatencyHist, Summary};
use herald_protocol::ServerFrame;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::cli::{ws_url, UnicastArgs, Via};
use crate::client::{Connector, Ws};
use crate::pacing::{Rng, Schedule};
use crate::report::write_json;
use crate::stamp::Stamp;

mod sender;
use sender::{Job, Sender};

const ACCEPTED: u8 = 1;
const RECEIVED: u8 = 2;

/// The outcome of one trial at one offered rate.
#[derive(Debug, Clone, Serialize)]
pub struct TrialReport {
    pub via: String,
    /// Messages per HTTP request at most (1 for ws).
    pub batch: u16,
    pub offered_rate: f64,
    pub duration_secs: u64,
    pub scheduled: u64,
    pub dispatched: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub achieved_rate: f64,
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub receivers_live: u64,
    pub latency: Summary,
    /// CPU of the `--cpu-pid` processes during the trial per accepted message.
    pub cpu_us_per_msg: Option<f64>,
    /// The same, per process.
    pub cpu: Vec<ProcessCpu>,
    pub sustained: bool,
    pub first_error: Option<String>,
}

/// One `--cpu-pid` process's CPU during a trial, per accepted message.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessCpu {
    pub label: String,
    pub user_us_per_msg: f64,
    pub system_us_per_msg: f64,
}

/// Everything receivers and senders record for the running trial.
struct Trial {
    /// This process's run nonce: only messages stamped with it count.
    run: u32,
    id: u32,
    /// Per message: ACCEPTED and/or RECEIVED bits.
    marks: Vec<AtomicU8>,
    hist: Mutex<LatencyHist>,
    received: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    duplicates: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Trial {
    fn new(run: u32, id: u32, total: u64) -> Self {
        Trial {
            run,
            id,
            marks: (0..total).map(|_| AtomicU8::new(0)).collect(),
            hist: Mutex::new(LatencyHist::new()),
            received: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            first_error: Mutex::new(None),
        }
    }

    fn accept(&self, k: u64) {
        if let Some(m) = self.marks.get(k as usize) {
            m.fetch_or(ACCEPTED, Ordering::Relaxed);
            self.accepted.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn reject(&self, err: String) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        self.first_error
            .lock()
            .expect("error lock")
            .get_or_insert(err);
    }

    fn receive(&self, k: u64, latency_us: u64) {
        let Some(m) = self.marks.get(k as usize) else {
            return;
        };
        if m.fetch_or(RECEIVED, Ordering::Relaxed) & RECEIVED != 0 {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.received.fetch_add(1, Ordering::Relaxed);
        self.hist.lock().expect("hist lock").record(latency_us);
    }

    /// Accepted by the gateway but never received.
    fn lost(&self) -> u64 {
        self.marks
            .iter()
            .filter(|m| m.load(Ordering::Relaxed) == ACCEPTED)
            .count() as u64
    }
}

/// The trial receivers currently record into (none between trials).
type Current = Arc<RwLock<Option<Arc<Trial>>>>;

/// Whether a trial counts as sustained: the sender kept up (≥ 95% of the
/// offered rate), nothing accepted was lost or refused, and p99 stayed low.
fn is_sustained(r: &TrialReport, max_p99_us: u64) -> bool {
    r.achieved_rate >= 0.95 * r.offered_rate
        && r.lost == 0
        && r.rejected == 0
        && r.received > 0
        && r.latency.p99_us <= max_p99_us
}

pub async fn run(args: UnicastArgs) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    if args.receivers == 0 || args.rate <= 0.0 {
        bail!("--receivers and --rate must be positive");
    }
    let connector = Arc::new(Connector::new(&args.client, None));
    // Users are new in every run (`lt-r-<run>-<i>`), so no receiver starts
    // with a backlog of an earlier run's unacked messages to replay.
    let run_id = crate::stamp::run_nonce();
    let current: Current = Arc::new(RwLock::new(None));
    let live = Arc::new(AtomicU64::new(0));

    // Receivers on gateway B.
    let to_url = ws_url(&args.to);
    let started = Instant::now();
    let sem = Arc::new(Semaphore::new(args.client.concurrency.max(1)));
    let mut connecting = Vec::with_capacity(args.receivers);
    for i in 0..args.receivers {
        let permit = sem.clone().acquire_owned().await?;
        let (connector, url, current, live) = (
            connector.clone(),
            to_url.clone(),
            current.clone(),
            live.clone(),
        );
        connecting.push(tokio::spawn(async move {
            let r = connector.connect(&url, &receiver(run_id, i)).await;
            drop(permit);
            let (ws, _) = r?;
            live.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                receive(ws, &connector, &current).await;
                live.fetch_sub(1, Ordering::Relaxed);
            });
            anyhow::Ok(())
        }));
    }
    for c in connecting {
        c.await?.context("receiver connect")?;
    }
    tracing::info!(
        receivers = args.receivers,
        secs = started.elapsed().as_secs_f64(),
        "receivers connected"
    );

    let sender = Sender::start(&args, run_id, &connector, &current).await?;
    let mut reports = Vec::new();
    let mut trial_id = 0u32;
    if args.warmup > 0 {
        trial_id += 1;
        let warm = Duration::from_secs(args.warmup);
        let r = run_trial(
            run_id, trial_id, args.rate, warm, &args, &sender, &current, &live,
        )
        .await?;
        tracing::info!(
            p99_us = r.latency.p99_us,
            lost = r.lost,
            "warm-up trial done (not reported)"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let measured = Duration::from_secs(args.duration);
    let mut trial = |rate: f64| {
        trial_id += 1;
        run_trial(
            run_id, trial_id, rate, measured, &args, &sender, &current, &live,
        )
    };

    if !args.find_max {
        let r = trial(args.rate).await?;
        print_trial(&r);
        reports.push(r);
    } else {
        // Grow ×1.5 until a rate is not sustained, then bisect between the
        // best sustained and the first failed rate.
        let mut best: Option<f64> = None;
        let mut failed: Option<f64> = None;
        let mut rate = args.rate;
        while Instant::now() < deadline && rate <= args.max_rate {
            let r = trial(rate).await?;
            print_trial(&r);
            let ok = r.sustained;
            reports.push(r);
            if ok {
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
                let r = trial(mid).await?;
                print_trial(&r);
                if r.sustained {
                    lo = mid;
                } else {
                    hi = mid;
                }
                reports.push(r);
                best = Some(lo);
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
        match best {
            Some(b) => println!("highest sustained rate: {b:.0} msg/s (via {:?})", args.via),
            None => println!("no sustained rate found (via {:?})", args.via),
        }
    }
    write_json(args.out.as_deref(), &reports)
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

/// The user name of receiver `i` of run `run`.
fn receiver(run: u32, i: usize) -> String {
    format!("lt-r-{run}-{i}")
}

#[allow(clippy::too_many_arguments)]
async fn run_trial(
    run_id: u32,
    id: u32,
    rate: f64,
    duration: Duration,
    args: &UnicastArgs,
    sender: &Sender,
    current: &Current,
    live: &AtomicU64,
) -> anyhow::Result<TrialReport> {
    let schedule = Schedule::new(rate, duration);
    let trial = Arc::new(Trial::new(run_id, id, schedule.total));
    *current.write().expect("current lock") = Some(trial.clone());
    tracing::info!(trial = id, rate, total = schedule.total, "trial starts");

    let cpu_pids = crate::cpu::parse_cpu_pids(&args.cpu_pids)?;
    let pids: Vec<u32> = cpu_pids.iter().map(|(_, pid)| *pid).collect();
    let cpu_before = crate::cpu::cpu_split_now(&pids);
    let mut rng = Rng(unix_micros() ^ ((id as u64) << 32));
    // Sending stops here even if the sender is behind; what is left counts
    // against the achieved rate.
    let stop_at = duration + (duration / 2).max(Duration::from_secs(2));
    let start = Instant::now();
    let t0_us = unix_micros();
    let driven = schedule
        .drive(start, stop_at, |ks| {
            // Everything due by now goes out, oldest first.
            let due: Vec<Job> = ks
                .map(|k| Job {
                    trial: trial.clone(),
                    stamp: Stamp {
                        run: run_id,
                        trial: id,
                        k,
                        sched_us: t0_us + schedule.due(k).as_micros() as u64,
                    },
                    to: receiver(run_id, rng.below(args.receivers)),
                })
                .collect();
            sender.dispatch(due)
        })
        .await;
    let (dispatched, last_dispatch) = (driven.dispatched, driven.last_dispatch);
    sender
        .drain(&trial, dispatched, Duration::from_secs(30))
        .await;
    let send_elapsed = last_dispatch.max(duration).as_secs_f64();
    // Grace: wait for what is accepted but not yet received.
    let grace_end = Instant::now() + Duration::from_secs(args.grace);
    while Instant::now() < grace_end
        && trial.received.load(Ordering::Relaxed) < trial.accepted.load(Ordering::Relaxed)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    *current.write().expect("current lock") = None;
    let cpu_after = crate::cpu::cpu_split_now(&pids);

    let accepted = trial.accepted.load(Ordering::Relaxed);
    let per_msg = |us: u64| us as f64 / accepted.max(1) as f64;
    let cpu: Vec<ProcessCpu> = cpu_pids
        .iter()
        .zip(cpu_before.iter().zip(&cpu_after))
        .map(|((label, _), (b, a))| ProcessCpu {
            label: label.clone(),
            user_us_per_msg: per_msg(a.0.saturating_sub(b.0)),
            system_us_per_msg: per_msg(a.1.saturating_sub(b.1)),
        })
        .collect();
    let mut report = TrialReport {
        via: format!("{:?}", args.via).to_lowercase(),
        batch: match args.via {
            Via::Http => args.batch,
            Via::Ws => 1,
        },
        offered_rate: rate,
        duration_secs: duration.as_secs(),
        scheduled: schedule.total,
        dispatched,
        accepted,
        rejected: trial.rejected.load(Ordering::Relaxed),
        achieved_rate: accepted as f64 / send_elapsed,
        received: trial.received.load(Ordering::Relaxed),
        lost: trial.lost(),
        duplicates: trial.duplicates.load(Ordering::Relaxed),
        receivers_live: live.load(Ordering::Relaxed),
        latency: trial.hist.lock().expect("hist lock").summary(),
        cpu_us_per_msg: (!cpu.is_empty() && accepted > 0).then(|| {
            cpu.iter()
                .map(|c| c.user_us_per_msg + c.system_us_per_msg)
                .sum()
        }),
        cpu,
        sustained: false,
        first_error: trial.first_error.lock().expect("error lock").clone(),
    };
    report.sustained = is_sustained(&report, args.max_p99_ms * 1000);
    Ok(report)
}

fn print_trial(r: &TrialReport) {
    println!(
        "unicast via {}{} offered {:.0}/s achieved {:.0}/s | sent {} accepted {} rejected {} received {} lost {} dup {} | p50 {} p99 {} p999 {} max {} | {}",
        r.via,
        if r.batch > 1 {
            format!(" (batch {})", r.batch)
        } else {
            String::new()
        },
        r.offered_rate,
        r.achieved_rate,
        r.dispatched,
        r.accepted,
        r.rejected,
        r.received,
        r.lost,
        r.duplicates,
        fmt_us(r.latency.p50_us),
        fmt_us(r.latency.p99_us),
        fmt_us(r.latency.p999_us),
        fmt_us(r.latency.max_us),
        if r.sustained { "SUSTAINED" } else { "not sustained" }
    );
    if let Some(cpu) = r.cpu_us_per_msg {
        let parts: Vec<String> = r
            .cpu
            .iter()
            .map(|c| {
                format!(
                    "{} {:.1} (user {:.1} sys {:.1})",
                    c.label,
                    c.user_us_per_msg + c.system_us_per_msg,
                    c.user_us_per_msg,
                    c.system_us_per_msg
                )
            })
            .collect();
        println!(
            "  CPU of measured processes: {cpu:.1} µs per message = {}",
            parts.join(" + ")
        );
    }
    if let Some(e) = &r.first_error {
        println!("  first error: {e}");
    }
    if r.receivers_live == 0 {
        println!("  warning: no receiver connection is open");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_counts_accepted_but_not_received() {
        let t = Trial::new(9, 1, 4);
        t.accept(0);
        t.accept(1);
        t.receive(1, 10);
        t.receive(1, 10); // duplicate
        t.receive(2, 10); // received before its reply arrived
        t.accept(2);
        assert_eq!(t.lost(), 1);
        assert_eq!(t.received.load(Ordering::Relaxed), 2);
        assert_eq!(t.duplicates.load(Ordering::Relaxed), 1);
        t.receive(99, 1); // out of range: ignored
    }

    #[test]
    fn sustained_needs_rate_latency_and_no_loss() {
        let good = TrialReport {
            via: "http".into(),
            batch: 1,
            offered_rate: 1000.0,
            duration_secs: 10,
            scheduled: 10_000,
            dispatched: 10_000,
            accepted: 10_000,
            rejected: 0,
            achieved_rate: 990.0,
            received: 10_000,
            lost: 0,
            duplicates: 0,
            receivers_live: 10,
            latency: Summary {
                count: 10_000,
                p50_us: 1_000,
                p99_us: 50_000,
                p999_us: 90_000,
                max_us: 200_000,
            },
            cpu_us_per_msg: None,
            cpu: Vec::new(),
            sustained: false,
            first_error: None,
        };
        assert!(is_sustained(&good, 100_000));
        assert!(!is_sustained(
            &TrialReport {
                achieved_rate: 900.0,
                ..good.clone()
            },
            100_000
        ));
        assert!(!is_sustained(
            &TrialReport {
                lost: 1,
                ..good.clone()
            },
            100_000
        ));
        assert!(!is_sustained(&good, 40_000));
    }
}
