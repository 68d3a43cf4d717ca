//! The open loop (see [`crate::pacing`]) of one trial of marks: hands each
//! mark to an idle user, then times out what is left.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use herald_protocol::{ClientFrame, MarkSelector, MarkState, Rid};
use rand::rngs::SmallRng;
use rand::RngExt;
use tokio::time::Instant;

use super::trial::Trial;
use super::user::{Finish, Pending, User};
use crate::bounded::wait_until;
use crate::client::Connector;
use crate::pacing::Schedule;

/// One trial: marks at `rate` for `duration`, then waits (up to `grace`)
/// for what is in flight and times out the rest. Also returns when the
/// last mark was handed out, since the start.
pub async fn run_trial(
    id: u32,
    rate: f64,
    duration: Duration,
    grace: Duration,
    users: &[Arc<User>],
    timeout: Duration,
    connector: &Connector,
) -> (Arc<Trial>, Duration) {
    let schedule = Schedule::new(rate, duration);
    let trial = Arc::new(Trial::new(id));
    tracing::info!(trial = id, rate, total = schedule.total, "trial starts");
    let mut rng: SmallRng = rand::make_rng();
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
    let idle = || trial.in_flight.load(Ordering::Relaxed) == 0;
    wait_until(grace, Duration::from_millis(10), idle).await;
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
    rng: &mut SmallRng,
    timeout: Duration,
    connector: &Connector,
    lag: Duration,
) {
    let first = rng.random_range(0..users.len());
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
            until: None,
            tags: None,
            severity: None,
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
