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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use herald_harness::clock::unix_micros;
use herald_harness::latency::{fmt_us, LatencyHist, Summary};
use herald_harness::process::cpu_micros;
use herald_protocol::{ClientFrame, MarkSelector, MarkState, Rid, ServerFrame};
use serde::Serialize;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::cli::{base_url, ws_url, MarkArgs};
use crate::client::{post_message, Connector, Ws};
use crate::cpu::parse_cpu_pids;
use crate::loopback::check_loopback;
use crate::pacing::{Rng, Schedule};
use crate::report::write_json;

/// CPU one process used during the measured trial.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessCpu {
    pub label: String,
    pub pid: u32,
    pub cpu_us: u64,
    /// `cpu_us` per mark sent.
    pub us_per_mark: Option<f64>,
}

/// The outcome of the measured trial.
#[derive(Debug, Clone, Serialize)]
pub struct MarkReport {
    pub node_a: String,
    pub node_b: String,
    pub users: u32,
    pub messages_per_user: u32,
    pub offered_rate: f64,
    pub duration_secs: u64,
    pub scheduled: u64,
    /// Marks written to a marker connection.
    pub sent: u64,
    /// Marks not sent because every user had one in flight.
    pub skipped_busy: u64,
    /// Marks that could not be handed to their connection (it had closed).
    pub send_errors: u64,
    pub replies_ok: u64,
    pub reply_errors: u64,
    pub reply_timeouts: u64,
    /// `ok` replies saying no message changed state (should stay 0).
    pub unchanged: u64,
    pub counts_received: u64,
    pub counts_timeouts: u64,
    /// Marks with both an `ok` reply and the counts push on B.
    pub completed: u64,
    /// `completed` per second of the sending phase.
    pub achieved_rate: f64,
    /// mark sent on A → its reply on A.
    pub reply_latency: Summary,
    /// mark sent on A → matching `counts` frame on B.
    pub counts_latency: Summary,
    /// Scheduled time → sent: how far the load generator lagged.
    pub dispatch_lag: Summary,
    pub markers_live: u64,
    pub watchers_live: u64,
    pub max_p99_ms: f64,
    /// p99 of the counts push within `max_p99_ms`, no error or timeout, and
    /// at least 95% of the offered rate completed.
    pub target_met: bool,
    /// Per `--cpu-pid` process, then the load generator itself.
    pub cpu: Vec<ProcessCpu>,
    /// Sum over the `--cpu-pid` processes (not the load generator).
    pub cpu_us_per_mark: Option<f64>,
    pub first_error: Option<String>,
}

/// Counters and histograms of one trial.
struct Trial {
    id: u32,
    reply: Mutex<LatencyHist>,
    counts: Mutex<LatencyHist>,
    lag: Mutex<LatencyHist>,
    sent: AtomicU64,
    skipped_busy: AtomicU64,
    send_errors: AtomicU64,
    replies_ok: AtomicU64,
    reply_errors: AtomicU64,
    reply_timeouts: AtomicU64,
    unchanged: AtomicU64,
    counts_received: AtomicU64,
    counts_timeouts: AtomicU64,
    completed: AtomicU64,
    /// Marks sent and not yet finished (answered and pushed, failed, or
    /// timed out).
    in_flight: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Trial {
    fn new(id: u32) -> Self {
        Trial {
            id,
            reply: Mutex::new(LatencyHist::new()),
            counts: Mutex::new(LatencyHist::new()),
            lag: Mutex::new(LatencyHist::new()),
            sent: AtomicU64::new(0),
            skipped_busy: AtomicU64::new(0),
            send_errors: AtomicU64::new(0),
            replies_ok: AtomicU64::new(0),
            reply_errors: AtomicU64::new(0),
            reply_timeouts: AtomicU64::new(0),
            unchanged: AtomicU64::new(0),
            counts_received: AtomicU64::new(0),
            counts_timeouts: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            first_error: Mutex::new(None),
        }
    }

    fn error(&self, e: String) {
        self.first_error
            .lock()
            .expect("error lock")
            .get_or_insert(e);
    }

    fn load(&self, c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// The one mark a user has in flight.
struct Pending {
    trial: Arc<Trial>,
    rid: i64,
    /// `read` (counts must drop to 0) or `unread` (counts must rise above 0).
    read: bool,
    sent: Instant,
    replied: bool,
    counted: bool,
}

impl Pending {
    /// Whether a `counts` frame with this `unread_total` shows the change.
    fn shown_by(&self, unread_total: u64) -> bool {
        (unread_total == 0) == self.read
    }
}

#[derive(Default)]
struct UserState {
    /// `unread_total` of the last `counts` frame the watcher got.
    watcher_total: Option<u64>,
    pending: Option<Pending>,
}

/// One user: the queue into its marker connection and its mark state.
struct User {
    marker: mpsc::Sender<WsMessage>,
    state: Mutex<UserState>,
}

/// What finished a pending mark.
enum Finish {
    /// Reply and counts both arrived.
    Completed,
    /// Error reply, timeout, or the connection could not take it.
    Failed,
}

impl UserState {
    /// Ends the pending mark, if any, keeping the trial's books.
    fn finish(&mut self, how: Finish) {
        if let Some(p) = self.pending.take() {
            if let Finish::Completed = how {
                p.trial.completed.fetch_add(1, Ordering::Relaxed);
            }
            p.trial.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Ends a pending mark that has waited longer than `limit` (all of
    /// them with `limit` zero), counting what it was still waiting for.
    fn expire(&mut self, limit: Duration) {
        let Some(p) = &self.pending else { return };
        if p.sent.elapsed() < limit {
            return;
        }
        if !p.replied {
            p.trial.reply_timeouts.fetch_add(1, Ordering::Relaxed);
        }
        if !p.counted {
            p.trial.counts_timeouts.fetch_add(1, Ordering::Relaxed);
        }
        p.trial.error(format!(
            "mark rid {} timed out (reply {}, counts {})",
            p.rid,
            if p.replied { "arrived" } else { "missing" },
            if p.counted { "arrived" } else { "missing" },
        ));
        self.finish(Finish::Failed);
    }
}

pub async fn run(args: MarkArgs) -> anyhow::Result<()> {
    crate::bounded::within(Duration::from_secs(args.timeout), run_inner(args)).await
}

async fn run_inner(args: MarkArgs) -> anyhow::Result<()> {
    let [a, b] = args.targets.as_slice() else {
        bail!("--targets takes exactly two nodes: A (markers),B (watchers)");
    };
    let (base_a, base_b) = (base_url(a), base_url(b));
    check_loopback(&base_a).await?;
    check_loopback(&base_b).await?;
    if !(args.rate > 0.0 && args.rate <= 100_000.0) {
        bail!("--rate must be in (0, 100000] marks/s");
    }
    let cpu_pids = parse_cpu_pids(&args.cpu_pids)?;
    let users_n = args.users as usize;
    let run_id = crate::stamp::run_nonce();
    let name = |i: usize| format!("lt-m-{run_id}-{i}");

    // Something to mark: `--messages` messages in every inbox, one POST per
    // message and up to 1,000 users, before anyone connects (so the
    // counts after each welcome are final).
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let names: Vec<String> = (0..users_n).map(name).collect();
    for j in 0..args.messages {
        for chunk in names.chunks(1000) {
            let body = serde_json::json!({
                "to": {"users": chunk},
                "category": "system",
                "body": format!("lt-mark {run_id} {j}"),
            });
            post_message(&http, &base_a, &args.api_key, &body)
                .await
                .context("posting the setup messages")?;
        }
    }

    // Connections: watchers on B, markers on A.
    let connector = Arc::new(Connector::new(&args.client, None));
    let markers_live = Arc::new(AtomicU64::new(0));
    let watchers_live = Arc::new(AtomicU64::new(0));
    let mut users = Vec::with_capacity(users_n);
    let mut marker_rx = Vec::with_capacity(users_n);
    for _ in 0..users_n {
        let (tx, rx) = mpsc::channel(64);
        users.push(Arc::new(User {
            marker: tx,
            state: Mutex::new(UserState::default()),
        }));
        marker_rx.push(rx);
    }
    let started = Instant::now();
    let sem = Arc::new(Semaphore::new(args.client.concurrency.max(1)));
    let (url_a, url_b) = (ws_url(&base_a), ws_url(&base_b));
    let mut connecting = Vec::with_capacity(2 * users_n);
    for (i, rx) in marker_rx.into_iter().enumerate() {
        let mut rx = Some(rx);
        for watcher in [true, false] {
            let permit = sem.clone().acquire_owned().await?;
            let url = if watcher {
                url_b.clone()
            } else {
                url_a.clone()
            };
            let (connector, user, user_name) = (connector.clone(), users[i].clone(), name(i));
            let live = if watcher {
                watchers_live.clone()
            } else {
                markers_live.clone()
            };
            let rx = if watcher { None } else { rx.take() };
            connecting.push(tokio::spawn(async move {
                let r = connector.connect(&url, &user_name).await;
                drop(permit);
                let (ws, _) = r.with_context(|| format!("connecting {user_name} to {url}"))?;
                live.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    match rx {
                        None => watch(ws, &connector, &user).await,
                        Some(rx) => mark_loop(ws, rx, &connector, &user).await,
                    }
                    live.fetch_sub(1, Ordering::Relaxed);
                });
                anyhow::Ok(())
            }));
        }
    }
    for c in connecting {
        c.await??;
    }
    tracing::info!(
        users = users_n,
        secs = started.elapsed().as_secs_f64(),
        "markers and watchers connected"
    );

    // Every watcher must have its first counts (the one after the welcome's
    // backlog) before marks start: the next state is chosen from them.
    let settle_until = Instant::now() + Duration::from_secs(30);
    loop {
        let totals: Vec<Option<u64>> = users
            .iter()
            .map(|u| u.state.lock().expect("user lock").watcher_total)
            .collect();
        let waiting = totals.iter().filter(|t| t.is_none()).count();
        if waiting == 0 {
            let expected = u64::from(args.messages);
            let odd = totals.iter().filter(|t| **t != Some(expected)).count();
            if odd > 0 {
                tracing::warn!(
                    odd,
                    expected,
                    "watchers whose first counts are not the posted messages"
                );
            }
            break;
        }
        if Instant::now() > settle_until {
            bail!("{waiting} of {users_n} watchers got no counts frame within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let timeout = Duration::from_millis(args.mark_timeout_ms);
    if args.warmup > 0 {
        let warm = Duration::from_secs(args.warmup);
        let (t, _) = run_trial(0, args.rate, warm, &args, &users, timeout, &connector).await;
        tracing::info!(
            sent = t.load(&t.sent),
            completed = t.load(&t.completed),
            counts_p99_us = t.counts.lock().expect("hist lock").summary().p99_us,
            "warm-up done (not reported)"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    let cpu_before = cpu_pids
        .iter()
        .map(|&(_, pid)| cpu_micros(pid))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let own_before = cpu_micros(std::process::id())?;
    let measured = Duration::from_secs(args.duration);
    let (trial, last_dispatch) =
        run_trial(1, args.rate, measured, &args, &users, timeout, &connector).await;
    let own = cpu_micros(std::process::id())?.saturating_sub(own_before);
    let sent = trial.load(&trial.sent);
    let per_mark = |us: u64| (sent > 0).then(|| us as f64 / sent as f64);
    let mut cpu = Vec::new();
    for ((label, pid), before) in cpu_pids.iter().zip(cpu_before) {
        let used = cpu_micros(*pid)?.saturating_sub(before);
        cpu.push(ProcessCpu {
            label: label.clone(),
            pid: *pid,
            cpu_us: used,
            us_per_mark: per_mark(used),
        });
    }
    let servers: u64 = cpu.iter().map(|c| c.cpu_us).sum();
    cpu.push(ProcessCpu {
        label: "loadgen".into(),
        pid: std::process::id(),
        cpu_us: own,
        us_per_mark: per_mark(own),
    });

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
    print_report(&report);
    write_json(args.out.as_deref(), &report)
}

fn target_met(r: &MarkReport) -> bool {
    r.completed > 0
        && r.achieved_rate >= 0.95 * r.offered_rate
        && r.skipped_busy == 0
        && r.send_errors == 0
        && r.reply_errors == 0
        && r.reply_timeouts == 0
        && r.counts_timeouts == 0
        && r.counts_latency.p99_us as f64 <= r.max_p99_ms * 1000.0
}

/// One trial: marks at `rate` for `duration`, then waits (up to `--grace`)
/// for what is in flight and times out the rest. Also returns when the
/// last mark was handed out, since the start.
async fn run_trial(
    id: u32,
    rate: f64,
    duration: Duration,
    args: &MarkArgs,
    users: &[Arc<User>],
    timeout: Duration,
    connector: &Connector,
) -> (Arc<Trial>, Duration) {
    let schedule = Schedule::new(rate, duration);
    let trial = Arc::new(Trial::new(id));
    tracing::info!(trial = id, rate, total = schedule.total, "trial starts");
    let mut rng = Rng(unix_micros() ^ ((id as u64) << 32));
    let stop_at = duration + (duration / 2).max(Duration::from_secs(2));
    let start = Instant::now();
    let driven = schedule
        .drive(start, stop_at, |ks| {
            for k in ks {
                let lag = start.elapsed().saturating_sub(schedule.due(k));
                send_mark(&trial, k, users, &mut rng, timeout, connector, lag);
            }
            std::future::ready(())
        })
        .await;
    let grace_end = Instant::now() + Duration::from_secs(args.grace);
    while Instant::now() < grace_end && trial.in_flight.load(Ordering::Relaxed) > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for u in users {
        let mut st = u.state.lock().expect("user lock");
        if st.pending.as_ref().is_some_and(|p| p.trial.id == id) {
            st.expire(Duration::ZERO);
        }
    }
    (trial, driven.last_dispatch)
}

/// Picks an idle user (starting at a random one) and hands its marker
/// connection the next mark.
fn send_mark(
    trial: &Arc<Trial>,
    k: u64,
    users: &[Arc<User>],
    rng: &mut Rng,
    timeout: Duration,
    connector: &Connector,
    lag: Duration,
) {
    let first = rng.below(users.len());
    for j in 0..users.len() {
        let user = &users[(first + j) % users.len()];
        let mut st = user.state.lock().expect("user lock");
        st.expire(timeout);
        if st.pending.is_some() {
            continue;
        }
        // Read while anything is unread, else unread again.
        let read = st.watcher_total != Some(0);
        let rid = crate::stamp::rid_for(trial.id, k);
        let frame = connector.encode(&ClientFrame::Mark {
            rid: Rid::Int(rid),
            state: if read {
                MarkState::Read
            } else {
                MarkState::Unread
            },
            selector: MarkSelector {
                all: Some(true),
                ..MarkSelector::default()
            },
        });
        st.pending = Some(Pending {
            trial: trial.clone(),
            rid,
            read,
            sent: Instant::now(),
            replied: false,
            counted: false,
        });
        trial.in_flight.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = user.marker.try_send(frame) {
            trial.send_errors.fetch_add(1, Ordering::Relaxed);
            trial.error(format!("marker connection: {e}"));
            st.finish(Finish::Failed);
            return;
        }
        trial.sent.fetch_add(1, Ordering::Relaxed);
        trial
            .lag
            .lock()
            .expect("hist lock")
            .record(lag.as_micros() as u64);
        return;
    }
    trial.skipped_busy.fetch_add(1, Ordering::Relaxed);
}

/// A marker connection: writes the marks queued for it and matches the
/// replies to the user's pending mark. Counts frames here are ignored.
async fn mark_loop(
    mut ws: Ws,
    mut rx: mpsc::Receiver<WsMessage>,
    connector: &Connector,
    user: &User,
) {
    loop {
        tokio::select! {
            frame = rx.recv() => {
                let Some(frame) = frame else { return }; // run over
                if let Err(e) = ws.send(frame).await {
                    tracing::warn!("marker write failed: {e}");
                    break;
                }
            }
            msg = ws.next() => {
                let Some(Ok(msg)) = msg else { break };
                let Some(Ok(ServerFrame::Reply(reply))) = connector.decode(&msg) else {
                    continue;
                };
                let mut st = user.state.lock().expect("user lock");
                let Some(p) = st.pending.as_mut() else { continue };
                if reply.rid != Some(Rid::Int(p.rid)) || p.replied {
                    continue;
                }
                let trial = p.trial.clone();
                if !reply.ok {
                    trial.reply_errors.fetch_add(1, Ordering::Relaxed);
                    trial.error(format!("mark reply: {:?}", reply.error));
                    st.finish(Finish::Failed);
                    continue;
                }
                trial
                    .reply
                    .lock()
                    .expect("hist lock")
                    .record(p.sent.elapsed().as_micros() as u64);
                trial.replies_ok.fetch_add(1, Ordering::Relaxed);
                if reply.changed == Some(0) {
                    trial.unchanged.fetch_add(1, Ordering::Relaxed);
                }
                p.replied = true;
                if p.counted {
                    st.finish(Finish::Completed);
                }
            }
        }
    }
    tracing::warn!("a marker connection ended");
}

/// A watcher connection: notes every `counts` frame and completes the
/// user's pending mark when one shows its change.
async fn watch(mut ws: Ws, connector: &Connector, user: &User) {
    while let Some(Ok(msg)) = ws.next().await {
        let Some(Ok(ServerFrame::Counts(counts))) = connector.decode(&msg) else {
            continue;
        };
        let mut st = user.state.lock().expect("user lock");
        st.watcher_total = Some(counts.unread_total);
        let Some(p) = st.pending.as_mut() else {
            continue;
        };
        if p.counted || !p.shown_by(counts.unread_total) {
            continue; // a frame from before this mark
        }
        p.trial
            .counts
            .lock()
            .expect("hist lock")
            .record(p.sent.elapsed().as_micros() as u64);
        p.trial.counts_received.fetch_add(1, Ordering::Relaxed);
        p.counted = true;
        if p.replied {
            st.finish(Finish::Completed);
        }
    }
    tracing::warn!("a watcher connection ended");
}

fn print_report(r: &MarkReport) {
    println!(
        "mark A→B: users {} ({} msgs each) offered {:.0}/s achieved {:.0}/s over {}s | sent {} completed {} skipped-busy {} send-errors {}",
        r.users,
        r.messages_per_user,
        r.offered_rate,
        r.achieved_rate,
        r.duration_secs,
        r.sent,
        r.completed,
        r.skipped_busy,
        r.send_errors,
    );
    println!(
        "  mark → reply on A:  {} | ok {} errors {} timeouts {} unchanged {}",
        r.reply_latency, r.replies_ok, r.reply_errors, r.reply_timeouts, r.unchanged
    );
    println!(
        "  mark → counts on B: {} | received {} timeouts {}",
        r.counts_latency, r.counts_received, r.counts_timeouts
    );
    println!("  dispatch lag:       {}", r.dispatch_lag);
    println!(
        "  target: counts p99 {} <= {}ms at {:.0}/s, no errors: {}",
        fmt_us(r.counts_latency.p99_us),
        r.max_p99_ms,
        r.offered_rate,
        if r.target_met { "MET" } else { "NOT MET" }
    );
    if !r.cpu.is_empty() {
        let parts: Vec<String> = r
            .cpu
            .iter()
            .map(|c| match c.us_per_mark {
                Some(us) => format!("{} {us:.1}µs", c.label),
                None => format!("{} -", c.label),
            })
            .collect();
        let sum = r
            .cpu_us_per_mark
            .map(|s| format!(" (measured processes together {s:.1}µs)"))
            .unwrap_or_default();
        println!("  CPU per mark: {}{sum}", parts.join(", "));
    }
    if let Some(e) = &r.first_error {
        println!("  first error: {e}");
    }
    if r.markers_live < u64::from(r.users) || r.watchers_live < u64::from(r.users) {
        println!(
            "  warning: {} markers and {} watchers of {} users still open",
            r.markers_live, r.watchers_live, r.users
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(trial: &Arc<Trial>, read: bool) -> Pending {
        trial.in_flight.fetch_add(1, Ordering::Relaxed);
        Pending {
            trial: trial.clone(),
            rid: 1,
            read,
            sent: Instant::now(),
            replied: false,
            counted: false,
        }
    }

    #[test]
    fn counts_show_a_mark_only_in_its_direction() {
        let t = Arc::new(Trial::new(1));
        let read = pending(&t, true);
        assert!(read.shown_by(0));
        assert!(!read.shown_by(3), "the counts after the welcome are stale");
        let unread = pending(&t, false);
        assert!(unread.shown_by(3));
        assert!(!unread.shown_by(0));
    }

    #[test]
    fn expiry_counts_what_was_missing_and_frees_the_user() {
        let t = Arc::new(Trial::new(1));
        let mut st = UserState {
            watcher_total: Some(3),
            pending: Some(pending(&t, true)),
        };
        st.expire(Duration::from_secs(60));
        assert!(st.pending.is_some(), "not old enough");
        st.pending.as_mut().unwrap().replied = true;
        st.expire(Duration::ZERO);
        assert!(st.pending.is_none());
        assert_eq!(
            (
                t.load(&t.reply_timeouts),
                t.load(&t.counts_timeouts),
                t.load(&t.in_flight),
                t.load(&t.completed)
            ),
            (0, 1, 0, 0)
        );
        assert!(t.first_error.lock().unwrap().is_some());
        st.pending = Some(pending(&t, false));
        st.finish(Finish::Completed);
        assert_eq!((t.load(&t.in_flight), t.load(&t.completed)), (0, 1));
    }

    #[test]
    fn target_needs_latency_rate_and_no_failures() {
        let good = MarkReport {
            node_a: "a".into(),
            node_b: "b".into(),
            users: 200,
            messages_per_user: 3,
            offered_rate: 1000.0,
            duration_secs: 10,
            scheduled: 10_000,
            sent: 10_000,
            skipped_busy: 0,
            send_errors: 0,
            replies_ok: 10_000,
            reply_errors: 0,
            reply_timeouts: 0,
            unchanged: 0,
            counts_received: 10_000,
            counts_timeouts: 0,
            completed: 10_000,
            achieved_rate: 999.0,
            reply_latency: Summary::default(),
            counts_latency: Summary {
                count: 10_000,
                p50_us: 700,
                p99_us: 1_900,
                p999_us: 3_000,
                max_us: 5_000,
            },
            dispatch_lag: Summary::default(),
            markers_live: 200,
            watchers_live: 200,
            max_p99_ms: 2.0,
            target_met: false,
            cpu: Vec::new(),
            cpu_us_per_mark: None,
            first_error: None,
        };
        assert!(target_met(&good));
        let p99 = |us| Summary {
            p99_us: us,
            ..good.counts_latency
        };
        assert!(!target_met(&MarkReport {
            counts_latency: p99(2_100),
            ..good.clone()
        }));
        assert!(!target_met(&MarkReport {
            counts_timeouts: 1,
            ..good.clone()
        }));
        assert!(!target_met(&MarkReport {
            achieved_rate: 900.0,
            ..good.clone()
        }));
    }
}
