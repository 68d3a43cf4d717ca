//! A bounded queue that is nearly free while empty: the hub's queue to each
//! connection (the hub instantiates it with its `ConnEvent`).
//!
//! Why not `tokio::sync::mpsc`: a bounded tokio channel costs about 1.1 KiB
//! per connection before anything is sent (its shared state is padded to
//! cache lines, and the first block of 32 slots is allocated up front).
//! With a million mostly idle connections that is over a gigabyte, a sixth
//! of the gateway's memory per connection (docs/benchmarks.md). This queue
//! is one small allocation: a `VecDeque` that allocates on the first event
//! and gives its room back once drained past a few slots, behind a mutex
//! that only the hub's offer and the connection's read ever take (never
//! across an await), and a `Notify` to wake the connection.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// Room kept by an emptied queue; a burst's larger buffer is given back.
const KEEP_WHEN_EMPTY: usize = 4;

/// A queue of at most `capacity` items: the producer's end and the
/// consumer's.
pub fn bounded_queue<T>(capacity: usize) -> (BoundedSender<T>, BoundedReceiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            events: VecDeque::new(),
            capacity,
            senders: 1,
            receiver_gone: false,
        }),
        wake: Notify::new(),
    });
    (BoundedSender(shared.clone()), BoundedReceiver(shared))
}

struct Shared<T> {
    state: Mutex<State<T>>,
    wake: Notify,
}

struct State<T> {
    events: VecDeque<T>,
    capacity: usize,
    senders: usize,
    receiver_gone: bool,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // A panic while holding it leaves a consistent queue.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The producer's end. The queue is closed when every sender is dropped.
pub struct BoundedSender<T>(Arc<Shared<T>>);

impl<T> BoundedSender<T> {
    /// Queues `event`; gives it back when the queue is full or the
    /// receiver is gone.
    pub fn try_send(&self, event: T) -> Result<(), T> {
        {
            let mut state = self.0.lock();
            if state.receiver_gone || state.events.len() >= state.capacity {
                return Err(event);
            }
            state.events.push_back(event);
        }
        self.0.wake.notify_one();
        Ok(())
    }

    /// Events queued now.
    pub fn len(&self) -> usize {
        self.0.lock().events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Clone for BoundedSender<T> {
    fn clone(&self) -> Self {
        self.0.lock().senders += 1;
        BoundedSender(self.0.clone())
    }
}

impl<T> Drop for BoundedSender<T> {
    fn drop(&mut self) {
        let last = {
            let mut state = self.0.lock();
            state.senders -= 1;
            state.senders == 0
        };
        if last {
            self.0.wake.notify_one();
        }
    }
}

impl<T> std::fmt::Debug for BoundedSender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundedSender")
            .field("len", &self.len())
            .finish()
    }
}

/// Why `try_recv` returned nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing queued now.
    Empty,
    /// Nothing queued, and every sender is gone: nothing ever will be.
    Closed,
}

/// The consumer's end.
pub struct BoundedReceiver<T>(Arc<Shared<T>>);

impl<T> BoundedReceiver<T> {
    /// The next event; `None` once the queue is empty and closed.
    /// Cancel-safe: an event is only taken by the poll that returns it.
    pub async fn recv(&mut self) -> Option<T> {
        loop {
            match self.try_recv() {
                Ok(event) => return Some(event),
                Err(TryRecvError::Closed) => return None,
                // `notify_one` stores a permit when nobody waits, so an
                // event queued after the check still wakes this.
                Err(TryRecvError::Empty) => self.0.wake.notified().await,
            }
        }
    }

    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        let mut state = self.0.lock();
        match state.events.pop_front() {
            Some(event) => {
                if state.events.is_empty() && state.events.capacity() > KEEP_WHEN_EMPTY {
                    state.events.shrink_to(KEEP_WHEN_EMPTY);
                }
                Ok(event)
            }
            None if state.senders == 0 => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.lock().events.is_empty()
    }
}

impl<T> Drop for BoundedReceiver<T> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.receiver_gone = true;
        state.events.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn bounded_in_order_and_closed_when_the_senders_are_gone() {
        let (tx, mut rx) = bounded_queue(2);
        assert!(tx.try_send(1).is_ok());
        assert!(tx.try_send(2).is_ok());
        assert!(tx.try_send(3).is_err(), "full");
        assert_eq!(tx.len(), 2);
        assert!(matches!(rx.recv().await, Some(1)));
        assert!(matches!(rx.try_recv(), Ok(2)));
        assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
        let other = tx.clone();
        drop(tx);
        assert_eq!(
            rx.try_recv().unwrap_err(),
            TryRecvError::Empty,
            "one sender left"
        );
        assert!(other.try_send(1).is_ok());
        drop(other);
        assert!(
            matches!(rx.recv().await, Some(1)),
            "queued before the close"
        );
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn a_waiting_receiver_wakes_on_an_event_and_on_the_close() {
        let (tx, mut rx) = bounded_queue(8);
        let waiter = tokio::spawn(async move {
            let first = rx.recv().await;
            let second = rx.recv().await;
            (first.is_some(), second.is_none())
        });
        // Most likely parked by now; either way it must see both.
        tokio::task::yield_now().await;
        tx.try_send(1).unwrap();
        drop(tx);
        let got = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .unwrap();
        assert_eq!(got, (true, true));
    }

    #[test]
    fn a_gone_receiver_refuses_and_a_drained_queue_gives_its_room_back() {
        let (tx, mut rx) = bounded_queue(64);
        for _ in 0..64 {
            tx.try_send(1).unwrap();
        }
        while rx.try_recv().is_ok() {}
        assert!(tx.0.lock().events.capacity() <= KEEP_WHEN_EMPTY);
        drop(rx);
        assert!(tx.try_send(1).is_err());
    }
}
