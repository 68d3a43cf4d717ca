//! Open-loop pacing: every message once, in order, on time or in a
//! catch-up batch, until the bound or the stop signal.

use std::time::Duration;

use herald_loadtest::pacing::Schedule;
use tokio::time::Instant;

#[tokio::test]
async fn drive_hands_out_every_message_once_in_order() {
    let s = Schedule::new(100.0, Duration::from_millis(200));
    let mut got = Vec::new();
    let d = s
        .drive(Instant::now(), Duration::from_secs(30), |r| {
            got.extend(r);
            async {}
        })
        .await;
    assert_eq!(d.dispatched, 20);
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    assert!(d.last_dispatch >= s.due(19), "{d:?}");
}

#[tokio::test]
async fn drive_catches_up_in_batches_and_stops_at_stop_at() {
    let s = Schedule::new(1000.0, Duration::from_secs(1));
    let mut batches = Vec::new();
    let d = s
        .drive(Instant::now(), Duration::from_millis(300), |r| {
            batches.push(r);
            // A slow sender: 100 ms per hand-out.
            tokio::time::sleep(Duration::from_millis(100))
        })
        .await;
    assert_eq!(batches[0].start, 0);
    assert!(
        batches[1..].iter().all(|b| b.end - b.start >= 50),
        "what fell due during a slow send goes out at once: {batches:?}"
    );
    for w in batches.windows(2) {
        assert_eq!(w[0].end, w[1].start, "{batches:?}");
    }
    assert!(d.dispatched < s.total, "{d:?}");
    assert_eq!(d.dispatched, batches.last().unwrap().end);
}

#[tokio::test]
async fn drive_until_ends_when_told() {
    let s = Schedule::new(1000.0, Duration::from_secs(60));
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let mut sent = 0u64;
    let start = Instant::now();
    let d = s
        .drive_until(start, &mut rx, |r| {
            sent += r.end - r.start;
            if sent >= 50 {
                let _ = tx.send(true);
            }
            async {}
        })
        .await;
    assert_eq!(d.dispatched, sent);
    assert!((50..200).contains(&sent), "{sent}");
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn total_is_rate_times_duration() {
    assert_eq!(Schedule::new(1000.0, Duration::from_secs(10)).total, 10_000);
    assert_eq!(Schedule::new(2.5, Duration::from_secs(4)).total, 10);
}

#[test]
fn due_times_are_evenly_spaced() {
    let s = Schedule::new(1000.0, Duration::from_secs(1));
    assert_eq!(s.due(0), Duration::ZERO);
    assert_eq!(s.due(1), Duration::from_millis(1));
    assert_eq!(s.due(500), Duration::from_millis(500));
}

#[test]
fn due_by_counts_messages_whose_time_has_come() {
    let s = Schedule::new(100.0, Duration::from_secs(1));
    assert_eq!(s.due_by(Duration::ZERO), 1); // message 0 is due at once
    assert_eq!(s.due_by(Duration::from_millis(9)), 1);
    assert_eq!(s.due_by(Duration::from_millis(10)), 2);
    assert_eq!(s.due_by(Duration::from_millis(995)), 100);
    assert_eq!(s.due_by(Duration::from_secs(60)), 100); // capped at total
    for k in 0..s.total {
        assert!(s.due_by(s.due(k)) > k, "message {k} is due at its own time");
    }
}
