//! Open-loop pacing: message `k` is due at `start + k / rate`, whatever
//! happened to message `k - 1`.
//!
//! Latency is measured from the *scheduled* time, not from when the sender
//! got around to it, so a stalled system cannot hide its stall by slowing the
//! load down (coordinated omission).

use std::future::Future;
use std::ops::Range;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The send schedule of one trial.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Offered rate in messages per second.
    pub rate: f64,
    /// How many messages the trial sends in all.
    pub total: u64,
}

impl Schedule {
    pub fn new(rate: f64, duration: Duration) -> Self {
        assert!(rate > 0.0, "rate must be positive");
        Schedule {
            rate,
            total: (rate * duration.as_secs_f64()).round() as u64,
        }
    }

    /// When message `k` is due, as an offset from the trial's start.
    pub fn due(&self, k: u64) -> Duration {
        Duration::from_secs_f64(k as f64 / self.rate)
    }

    /// How many messages are due by `elapsed` (those with `due(k) <= elapsed`),
    /// capped at `total`. A sender that fell behind sends all of them at once.
    pub fn due_by(&self, elapsed: Duration) -> u64 {
        // The epsilon absorbs float rounding so that `due_by(due(k)) > k`.
        let n = (elapsed.as_secs_f64() * self.rate + 1e-6).floor() as u64 + 1;
        n.min(self.total)
    }
}

/// What [`Schedule::drive`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Driven {
    /// Messages handed out (less than `total` when `stop_at` cut it short).
    pub dispatched: u64,
    /// When the last ones were handed out, since the start.
    pub last_dispatch: Duration,
}

impl Schedule {
    /// Runs the schedule open loop from `start`: sleeps until the next
    /// message is due, then hands every message due by now (`k..until`,
    /// oldest first) to `send` and awaits it. Stops handing out once more
    /// than `stop_at` has passed since `start`, even if the sender is behind;
    /// what is left counts against the achieved rate.
    pub async fn drive<F, Fut>(&self, start: Instant, stop_at: Duration, send: F) -> Driven
    where
        F: FnMut(Range<u64>) -> Fut,
        Fut: Future<Output = ()>,
    {
        let (_never_sent, mut never) = watch::channel(false);
        self.drive_to(start, stop_at, &mut never, send).await
    }

    /// [`Schedule::drive`] for a run whose end is not known in advance:
    /// ends as soon as `stop` turns true (or its sender is gone).
    pub async fn drive_until<F, Fut>(
        &self,
        start: Instant,
        stop: &mut watch::Receiver<bool>,
        send: F,
    ) -> Driven
    where
        F: FnMut(Range<u64>) -> Fut,
        Fut: Future<Output = ()>,
    {
        self.drive_to(start, Duration::MAX, stop, send).await
    }

    async fn drive_to<F, Fut>(
        &self,
        start: Instant,
        stop_at: Duration,
        stop: &mut watch::Receiver<bool>,
        mut send: F,
    ) -> Driven
    where
        F: FnMut(Range<u64>) -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut dispatched = 0u64;
        let mut last_dispatch = Duration::ZERO;
        while dispatched < self.total && !*stop.borrow() {
            tokio::select! {
                _ = tokio::time::sleep_until(start + self.due(dispatched)) => {}
                changed = stop.changed() => {
                    if changed.is_err() { break }
                    continue;
                }
            }
            let elapsed = start.elapsed();
            if elapsed > stop_at {
                break;
            }
            let until = self.due_by(elapsed);
            send(dispatched..until).await;
            dispatched = until;
            last_dispatch = start.elapsed();
        }
        Driven {
            dispatched,
            last_dispatch,
        }
    }
}

/// A task that runs `each` over the message numbers due, at `rate` per
/// second from now, until `stopped` turns true (or `longest` is over); a
/// rate of 0 sends nothing.
pub fn paced<F, Fut>(
    rate: f64,
    longest: Duration,
    mut stopped: watch::Receiver<bool>,
    each: F,
) -> JoinHandle<Driven>
where
    F: FnMut(Range<u64>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        if rate <= 0.0 {
            return Driven {
                dispatched: 0,
                last_dispatch: Duration::ZERO,
            };
        }
        let schedule = Schedule::new(rate, longest);
        (schedule.drive_until(Instant::now(), &mut stopped, each)).await
    })
}
