//! A `mark` user's one mark in flight: which counts show it, and how it
//! ends.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use herald_loadtest::scenario::mark::trial::Trial;
use herald_loadtest::scenario::mark::user::{Finish, Pending, UserState};
use tokio::time::Instant;

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
