//! The trials of a run: messages at one offered rate for a while, open
//! loop (see [`crate::pacing`]), each trial booked in its own [`Trial`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use herald_harness::clock::unix_micros;
use rand::rngs::SmallRng;
use rand::RngExt;
use tokio::time::Instant;

use super::report::{is_sustained, CpuPerMsg, TrialReport};
use super::sender::{Job, Sender};
use super::trial::{Current, Trial};
use super::{UnicastArgs, Via};
use crate::bounded::wait_until;
use crate::harness::cpu::CpuMeter;
use crate::pacing::Schedule;
use crate::stamp::Stamp;

/// What every trial of a run shares.
pub struct Trials<'a> {
    pub args: &'a UnicastArgs,
    pub run_id: u32,
    pub sender: Sender,
    pub current: Current,
    /// Receiver connections open now.
    pub live: Arc<AtomicU64>,
    pub last_id: u32,
}

impl Trials<'_> {
    /// Runs a measured trial (`--duration`) at `rate`, prints its report
    /// and keeps it in `reports`: whether the rate was sustained.
    pub async fn measure(
        &mut self,
        rate: f64,
        reports: &mut Vec<TrialReport>,
    ) -> anyhow::Result<bool> {
        let r = self
            .run(rate, Duration::from_secs(self.args.duration))
            .await?;
        super::report::print(&r);
        let sustained = r.sustained;
        reports.push(r);
        Ok(sustained)
    }

    /// Runs the next trial: `rate` messages per second for `duration`.
    pub async fn run(&mut self, rate: f64, duration: Duration) -> anyhow::Result<TrialReport> {
        self.last_id += 1;
        let (args, run_id, id) = (self.args, self.run_id, self.last_id);
        let schedule = Schedule::new(rate, duration);
        let trial = Arc::new(Trial::new(run_id, id, schedule.total));
        *self.current.write().expect("current lock") = Some(trial.clone());
        tracing::info!(trial = id, rate, total = schedule.total, "trial starts");

        let cpu = CpuMeter::start(&args.cpu.cpu_pids, None);
        let mut rng: SmallRng = rand::make_rng();
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
                        to: receiver(run_id, rng.random_range(0..args.receivers)),
                    })
                    .collect();
                self.sender.dispatch(due)
            })
            .await;
        let dispatched = driven.dispatched;
        let drain = Duration::from_secs(30);
        self.sender.drain(&trial, dispatched, drain).await;
        let send_elapsed = driven.last_dispatch.max(duration).as_secs_f64();
        // Grace: wait for what is accepted but not yet received.
        let all =
            || trial.received.load(Ordering::Relaxed) >= trial.accepted.load(Ordering::Relaxed);
        wait_until(
            Duration::from_secs(args.grace),
            Duration::from_millis(50),
            all,
        )
        .await;
        *self.current.write().expect("current lock") = None;

        let accepted = trial.accepted.load(Ordering::Relaxed);
        let per_msg = |us: u64| us as f64 / accepted.max(1) as f64;
        let cpu: Vec<CpuPerMsg> = (cpu.stop().into_iter())
            .map(|c| CpuPerMsg {
                label: c.label,
                user_us_per_msg: per_msg(c.user_us),
                system_us_per_msg: per_msg(c.system_us),
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
            receivers_live: self.live.load(Ordering::Relaxed),
            latency: trial.hist.lock().expect("hist lock").summary(),
            cpu_us_per_msg: (!cpu.is_empty() && accepted > 0).then(|| {
                (cpu.iter())
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
}

/// The user name of receiver `i` of run `run`: the run connects them
/// (`mod.rs`), its trials send to them.
pub(super) fn receiver(run: u32, i: usize) -> String {
    format!("lt-r-{run}-{i}")
}
