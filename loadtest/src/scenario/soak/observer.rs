//! What the soak's clients saw, window by window: latencies of unicast
//! and broadcast deliveries (from their scheduled send time, carried in
//! the stamp), of `mark` replies and of churned clients' reconnects.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use herald_harness::clock::unix_micros;
use herald_harness::latency::LatencyHist;
use herald_harness::ledger::Arrival;
use herald_harness::{Device, Observer};
use herald_protocol::{Message, Reply, Rid, Stream, Welcome};

use crate::stamp::Stamp;

/// The stamp's `trial` says what kind of message it is.
pub const UNICAST: u32 = 0;
pub const BROADCAST: u32 = 1;

/// One window's measurements.
#[derive(Default)]
pub struct Acc {
    pub unicast: LatencyHist,
    pub broadcast: LatencyHist,
    pub mark: LatencyHist,
    pub reconnect: LatencyHist,
    pub unicast_received: u64,
    pub broadcast_received: u64,
    pub marks_ok: u64,
    pub mark_errors: u64,
    pub churned: u64,
    /// Connections that ended without being churned.
    pub unexpected_ends: u64,
    pub refused: u64,
}

#[derive(Default)]
pub struct SoakObserver {
    run: u32,
    acc: Mutex<Acc>,
    /// When each client was churned (unix µs; 0: not waiting).
    churned_at: Vec<AtomicU64>,
    /// Marks awaiting their reply: rid → sent (unix µs).
    marks: Mutex<HashMap<i64, u64>>,
    /// Distinct unicast messages received over the run.
    pub unicast_total: AtomicU64,
}

impl SoakObserver {
    pub fn new(run: u32, clients: usize) -> Self {
        SoakObserver {
            run,
            churned_at: (0..clients).map(|_| AtomicU64::new(0)).collect(),
            ..SoakObserver::default()
        }
    }

    /// Hands over the window's measurements and starts the next one.
    pub fn take(&self) -> Acc {
        std::mem::take(&mut *self.acc.lock().expect("acc lock"))
    }

    fn acc(&self) -> std::sync::MutexGuard<'_, Acc> {
        self.acc.lock().expect("acc lock")
    }

    /// A churn of client `i` starts now.
    pub fn churning(&self, i: usize) {
        self.churned_at[i].store(unix_micros(), Ordering::Relaxed);
        self.acc().churned += 1;
    }

    /// A mark with `rid` went out now.
    pub fn mark_sent(&self, rid: i64) {
        self.marks
            .lock()
            .expect("marks lock")
            .insert(rid, unix_micros());
    }

    /// A mark that could not be queued after all (the client went offline).
    pub fn mark_unsent(&self, rid: i64) {
        self.marks.lock().expect("marks lock").remove(&rid);
    }

    /// Forgets marks older than `limit_us` (their connection ended): they
    /// count as errors.
    pub fn expire_marks(&self, limit_us: u64) {
        let now = unix_micros();
        let mut marks = self.marks.lock().expect("marks lock");
        let before = marks.len();
        marks.retain(|_, sent| now.saturating_sub(*sent) < limit_us);
        let expired = (before - marks.len()) as u64;
        drop(marks);
        self.acc().mark_errors += expired;
    }
}

impl Observer for SoakObserver {
    fn resumed(&self, dev: &Device) {
        let at = self.churned_at[dev.index].swap(0, Ordering::Relaxed);
        if at > 0 {
            let took = unix_micros().saturating_sub(at);
            self.acc().reconnect.record(took);
        }
    }

    fn welcomed(&self, _dev: &Device, _node: usize, _welcome: &Welcome) {}

    fn ended(&self, _dev: &Device, _code: Option<u16>) {
        self.acc().unexpected_ends += 1;
    }

    fn refused(&self, _dev: &Device, _node: usize, _error: &anyhow::Error) {
        self.acc().refused += 1;
    }

    fn message(&self, _dev: &Device, m: &Message, arrival: Arrival) {
        if arrival != Arrival::First {
            return;
        }
        let Some(st) = Stamp::read(m).filter(|s| s.run == self.run) else {
            return;
        };
        let latency = unix_micros().saturating_sub(st.sched_us);
        let mut acc = self.acc();
        match (m.stream, st.trial) {
            (Stream::Inbox, UNICAST) => {
                acc.unicast.record(latency);
                acc.unicast_received += 1;
                self.unicast_total.fetch_add(1, Ordering::Relaxed);
            }
            (Stream::All, BROADCAST) => {
                acc.broadcast.record(latency);
                acc.broadcast_received += 1;
            }
            _ => {}
        }
    }

    fn reply(&self, _dev: &Device, reply: &Reply) {
        let Some(Rid::Int(rid)) = reply.rid else {
            return;
        };
        let Some(sent) = self.marks.lock().expect("marks lock").remove(&rid) else {
            return;
        };
        let mut acc = self.acc();
        if reply.ok {
            acc.marks_ok += 1;
            acc.mark.record(unix_micros().saturating_sub(sent));
        } else {
            acc.mark_errors += 1;
        }
    }
}
