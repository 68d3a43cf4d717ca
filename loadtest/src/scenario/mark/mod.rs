//! The `mark` scenario: the notification center's "mark + counts push" path
//! across two gateway nodes.
//!
//! Every user has two connections: a *marker* on node A and a *watcher* on
//! node B. Each user first gets `--messages` messages (posted to A), so there
//! is something to mark. Then, at an open-loop rate (see [`crate::pacing`]),
//! a user is picked and its marker sends
//! `{"type":"mark","rid":n,"state":"read"|"unread","all":true}`; two times
//! are recorded from the moment the frame is handed to the marker's
//! connection:
//!
//! - until the marker gets the `reply` (the store's compare-and-set on A);
//! - until the watcher on B gets a `counts` frame showing the change
//!   (`unread_total` 0 after `read`, more than 0 after `unread`), i.e. the
//!   counts-changed event crossed the broker and B read the new counts.
//!
//! A user has at most one mark in flight: the next state is chosen from the
//! counts its watcher saw last (read while something is unread, else unread),
//! so marks of one user alternate and a stale `counts` frame (the one after
//! the welcome, a duplicate) can never be taken for the answer. A pick that
//! lands on a busy user moves on to the next idle one; when every user is
//! busy the mark is skipped and counted (the system is far behind). The
//! delay between a mark's scheduled time and its sending is reported too
//! (`dispatch lag`), so a load generator falling behind is visible.

mod args;
mod drive;
pub mod report;
pub mod trial;
pub mod user;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use herald_harness::process::cpu_micros;
use tokio::sync::mpsc;
use tokio::time::Instant;

pub use args::MarkArgs;

use self::drive::run_trial;
use self::report::{target_met, MarkReport};
use self::user::{mark_loop, watch, User, UserState};
use crate::bounded::wait_until;
use crate::cli::{base_url, ws_url};
use crate::client::{connect_all, http_client, post_json, Connector};
use crate::harness::cpu::{CpuMeter, Share};
use crate::harness::report::write_json;
use crate::loopback::check_loopback;
use crate::pacing::Schedule;

/// The run, bounded by `--timeout` (see `main.rs`).
pub async fn run(args: MarkArgs) -> anyhow::Result<()> {
    let [a, b] = args.targets.as_slice() else {
        bail!("--targets takes exactly two nodes: A (markers),B (watchers)");
    };
    let (base_a, base_b) = (base_url(a), base_url(b));
    check_loopback(&base_a).await?;
    check_loopback(&base_b).await?;
    if !(args.rate > 0.0 && args.rate <= 100_000.0) {
        bail!("--rate must be in (0, 100000] marks/s");
    }
    let cpu_pids = &args.cpu.cpu_pids;
    let users_n = args.users as usize;
    let run_id = crate::stamp::run_nonce();

    // Something to mark: `--messages` messages in every inbox, one POST per
    // message and up to 1,000 users, before anyone connects (so the
    // counts after each welcome are final).
    let http = http_client(Duration::from_secs(30), None)?;
    let names: Vec<String> = (0..users_n).map(|i| format!("lt-m-{run_id}-{i}")).collect();
    for j in 0..args.messages {
        for chunk in names.chunks(1000) {
            let body = serde_json::json!({
                "to": {"users": chunk},
                "category": "system",
                "body": format!("lt-mark {run_id} {j}"),
            });
            post_json(&http, &base_a, "/v1/messages", &args.common.api_key, &body)
                .await
                .context("posting the setup messages")?;
        }
    }

    // Connections: watchers on B, markers on A.
    let connector = Arc::new(Connector::new(&args.common.client, None));
    let markers_live = Arc::new(AtomicU64::new(0));
    let watchers_live = Arc::new(AtomicU64::new(0));
    let (users, marker_rx): (Vec<_>, Vec<_>) = (0..users_n)
        .map(|_| {
            let (tx, rx) = mpsc::channel(64);
            let state = Mutex::new(UserState::default());
            (Arc::new(User { marker: tx, state }), Mutex::new(Some(rx)))
        })
        .unzip();
    let users = Arc::new(users);
    let started = Instant::now();
    let concurrency = args.common.client.concurrency;
    let (c, u) = (connector.clone(), users.clone());
    connect_all(
        &connector,
        &ws_url(&base_b),
        names.clone(),
        concurrency,
        &watchers_live,
        move |i, ws| {
            let (connector, user) = (c.clone(), u[i].clone());
            async move { watch(ws, &connector, &user).await }
        },
    )
    .await?;
    let (c, u) = (connector.clone(), users.clone());
    connect_all(
        &connector,
        &ws_url(&base_a),
        names,
        concurrency,
        &markers_live,
        move |i, ws| {
            let (connector, user) = (c.clone(), u[i].clone());
            let rx = marker_rx[i].lock().expect("rx lock").take();
            async move { mark_loop(ws, rx.expect("one marker per user"), &connector, &user).await }
        },
    )
    .await?;
    tracing::info!(
        users = users_n,
        secs = started.elapsed().as_secs_f64(),
        "markers and watchers connected"
    );

    // Every watcher must have its first counts (the one after the welcome's
    // backlog) before marks start: the next state is chosen from them.
    let totals = || -> Vec<Option<u64>> {
        let total = |u: &Arc<User>| u.state.lock().expect("user lock").watcher_total;
        users.iter().map(total).collect()
    };
    let all_counted = || totals().iter().all(Option::is_some);
    if !wait_until(
        Duration::from_secs(30),
        Duration::from_millis(20),
        all_counted,
    )
    .await
    {
        let waiting = totals().iter().filter(|t| t.is_none()).count();
        bail!("{waiting} of {users_n} watchers got no counts frame within 30 s");
    }
    let expected = u64::from(args.messages);
    let odd = totals().iter().filter(|t| **t != Some(expected)).count();
    if odd > 0 {
        tracing::warn!(
            odd,
            expected,
            "watchers whose first counts are not the posted messages"
        );
    }

    let timeout = Duration::from_millis(args.mark_timeout_ms);
    if args.warmup > 0 {
        let warm = Duration::from_secs(args.warmup);
        let grace = Duration::from_secs(args.grace);
        let (t, _) = run_trial(0, args.rate, warm, grace, &users, timeout, &connector).await;
        tracing::info!(
            sent = t.load(&t.sent),
            completed = t.load(&t.completed),
            counts_p99_us = t.counts.lock().expect("hist lock").summary().p99_us,
            "warm-up done (not reported)"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // A `--cpu-pid` that cannot be read, before or after, fails the run.
    let readable = || -> anyhow::Result<()> {
        for (_, pid) in cpu_pids {
            cpu_micros(*pid)?;
        }
        Ok(())
    };
    readable()?;
    let meter = CpuMeter::start(cpu_pids, Some(vec![std::process::id()]));
    let measured = Duration::from_secs(args.duration);
    let grace = Duration::from_secs(args.grace);
    let (trial, last_dispatch) =
        run_trial(1, args.rate, measured, grace, &users, timeout, &connector).await;
    readable()?;
    let sent = trial.load(&trial.sent);
    let per_mark = |us: u64| (sent > 0).then(|| us as f64 / sent as f64);
    let cpu = meter.rows(|us| Share::PerMark {
        us_per_mark: per_mark(us),
    });
    let servers: u64 = cpu[..cpu_pids.len()].iter().map(|c| c.cpu_us).sum();

    let completed = trial.load(&trial.completed);
    // The sending phase: the trial's duration, or longer if it fell behind.
    let send_elapsed = last_dispatch.max(measured);
    let mut report = MarkReport {
        node_a: base_a,
        node_b: base_b,
        users: args.users,
        messages_per_user: args.messages,
        offered_rate: args.rate,
        duration_secs: args.duration,
        scheduled: Schedule::new(args.rate, measured).total,
        sent,
        skipped_busy: trial.load(&trial.skipped_busy),
        send_errors: trial.load(&trial.send_errors),
        replies_ok: trial.load(&trial.replies_ok),
        reply_errors: trial.load(&trial.reply_errors),
        reply_timeouts: trial.load(&trial.reply_timeouts),
        unchanged: trial.load(&trial.unchanged),
        counts_received: trial.load(&trial.counts_received),
        counts_timeouts: trial.load(&trial.counts_timeouts),
        completed,
        achieved_rate: completed as f64 / send_elapsed.as_secs_f64(),
        reply_latency: trial.reply.lock().expect("hist lock").summary(),
        counts_latency: trial.counts.lock().expect("hist lock").summary(),
        dispatch_lag: trial.lag.lock().expect("hist lock").summary(),
        markers_live: markers_live.load(Ordering::Relaxed),
        watchers_live: watchers_live.load(Ordering::Relaxed),
        max_p99_ms: args.max_p99_ms,
        target_met: false,
        cpu_us_per_mark: (!cpu_pids.is_empty()).then(|| per_mark(servers)).flatten(),
        cpu,
        first_error: trial.first_error.lock().expect("error lock").clone(),
    };
    report.target_met = target_met(&report);
    report::print(&report);
    write_json(args.common.out.as_deref(), &report)
}
