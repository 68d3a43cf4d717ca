//! Request order for pipelined sends.
//!
//! A connection may have many `send`s in flight, and the messages to one
//! receiver must take seqs in the order they were sent. Appends take their
//! place in a stream when first polled, so sends that append at once keep
//! their order by themselves; but a send first checks things that take a
//! round trip (a block list, an idempotency key), and those can finish out
//! of order. So each send gets a [`Turn`]: it does its checks at once, then
//! waits until the send before it has taken its place in the store, takes
//! its own, and lets the next one go.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use tokio::sync::watch;

/// Hands out the turns of one connection's sends, in request order. Made
/// on the first send (a connection that never sends carries one pointer).
#[derive(Debug, Default)]
pub struct SendOrder {
    shared: Option<Arc<Shared>>,
    issued: u64,
}

#[derive(Debug)]
struct Shared {
    /// The turn that may take its place now.
    next: watch::Sender<u64>,
    /// Turns given up (dropped) before theirs came: skipped when it does.
    skipped: Mutex<BTreeSet<u64>>,
}

impl SendOrder {
    /// The turn of the next send, or `None` when it needs none: it awaits
    /// nothing before appending (`awaits_checks` false) and every send
    /// before it has taken its place already, so appending at once keeps
    /// the order (the common case costs no channel operation).
    pub fn turn_if_needed(&mut self, awaits_checks: bool) -> Option<Turn> {
        let all_placed = self
            .shared
            .as_ref()
            .is_none_or(|s| *s.next.borrow() == self.issued);
        if !awaits_checks && all_placed {
            None
        } else {
            Some(self.next_turn())
        }
    }

    /// The turn of the next send.
    pub fn next_turn(&mut self) -> Turn {
        let shared = self
            .shared
            .get_or_insert_with(|| {
                Arc::new(Shared {
                    next: watch::Sender::new(0),
                    skipped: Mutex::default(),
                })
            })
            .clone();
        let n = self.issued;
        self.issued += 1;
        Turn {
            shared,
            n,
            released: false,
        }
    }
}

/// One send's place in its connection's order. Dropping it (a send that
/// failed its checks, or was cancelled) gives the place up: the next send
/// goes when this one's turn comes.
#[derive(Debug)]
pub struct Turn {
    shared: Arc<Shared>,
    n: u64,
    released: bool,
}

impl Turn {
    /// Runs `appends` once the sends before have taken their places, and
    /// lets the next send go as soon as these have taken theirs (their
    /// first poll), not when they complete: pipelining stays.
    pub async fn take<F: Future>(mut self, appends: F) -> F::Output {
        let mut next = self.shared.next.subscribe();
        // The sender lives in `self.shared`, so this cannot fail.
        let _ = next.wait_for(|&turn| turn == self.n).await;
        let mut appends = std::pin::pin!(appends);
        let first = std::future::poll_fn(|cx| Poll::Ready(appends.as_mut().poll(cx))).await;
        self.release();
        match first {
            Poll::Ready(output) => output,
            Poll::Pending => appends.await,
        }
    }

    /// Passes the turn on now if it has come, else marks it to be skipped.
    fn release(&mut self) {
        if std::mem::replace(&mut self.released, true) {
            return;
        }
        let mut skipped = self.shared.skipped.lock().unwrap();
        if *self.shared.next.borrow() != self.n {
            skipped.insert(self.n);
            return;
        }
        let mut next = self.n + 1;
        while skipped.remove(&next) {
            next += 1;
        }
        self.shared.next.send_replace(next);
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn turns_take_their_places_in_request_order_whatever_finishes_first() {
        let mut order = SendOrder::default();
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5u64 {
            let turn = order.next_turn();
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                // Checks that finish in reverse order.
                tokio::time::sleep(Duration::from_millis(50 - 10 * i)).await;
                if i == 2 {
                    drop(turn); // a send refused by its checks
                    return;
                }
                turn.take(async { log.lock().unwrap().push(i) }).await;
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*log.lock().unwrap(), vec![0, 1, 3, 4]);
    }

    #[tokio::test]
    async fn a_send_with_nothing_to_await_skips_its_turn_only_when_all_are_placed() {
        let mut order = SendOrder::default();
        assert!(order.turn_if_needed(false).is_none(), "nothing issued yet");
        let first = order.turn_if_needed(true).expect("checks need a turn");
        assert!(
            order.turn_if_needed(false).is_some(),
            "a send before has not taken its place"
        );
        first.take(async {}).await;
        // The second turn (issued above, dropped) has been given up too.
        assert!(order.turn_if_needed(false).is_none());
    }
}
