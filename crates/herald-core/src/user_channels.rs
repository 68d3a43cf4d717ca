//! Which users' broker channels this node listens to.
//!
//! A node subscribes to a user's channel when that user's first local
//! connection arrives and unsubscribes a short while (the linger) after the
//! last one leaves, so a page reload costs no broker round trip. Subscribes
//! that pile up while one is in flight go out together in the next call;
//! unsubscribes go out in batches from a sweeper.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::backend::Broker;
use crate::error::Result;

#[derive(Debug, Default)]
struct Entry {
    /// Local connections of the user.
    refs: usize,
    /// The broker confirmed the subscription.
    subscribed: bool,
    /// When `refs` fell to zero while subscribed.
    idle_since: Option<Instant>,
}

pub struct UserChannels {
    broker: Arc<dyn Broker>,
    linger: Duration,
    entries: Mutex<HashMap<String, Entry>>,
    /// Serialises broker calls so an unsubscribe can never overtake the
    /// subscribe of a user who came back.
    ops: tokio::sync::Mutex<()>,
}

impl UserChannels {
    /// Creates the tracker and starts its sweeper, which ends when the
    /// tracker is dropped.
    pub fn new(broker: Arc<dyn Broker>, linger: Duration) -> Arc<Self> {
        let subs = Arc::new(UserChannels {
            broker,
            linger,
            entries: Mutex::new(HashMap::new()),
            ops: tokio::sync::Mutex::new(()),
        });
        tokio::spawn(sweep_loop(Arc::downgrade(&subs), linger));
        subs
    }

    /// Counts one more local connection of `user`; returns once the broker
    /// delivers the user's channel to this node.
    pub async fn acquire(&self, user: &str) -> Result<()> {
        {
            let mut entries = self.entries.lock().unwrap();
            let entry = entries.entry(user.to_owned()).or_default();
            entry.refs += 1;
            entry.idle_since = None;
            if entry.subscribed {
                return Ok(());
            }
        }
        let _op = self.ops.lock().await;
        let batch: Vec<String> = {
            let entries = self.entries.lock().unwrap();
            if entries.get(user).is_some_and(|e| e.subscribed) {
                return Ok(());
            }
            entries
                .iter()
                .filter(|(_, e)| e.refs > 0 && !e.subscribed)
                .map(|(u, _)| u.clone())
                .collect()
        };
        let outcome = self.broker.subscribe(&batch).await;
        let mut entries = self.entries.lock().unwrap();
        match outcome {
            Ok(()) => {
                for u in &batch {
                    if let Some(e) = entries.get_mut(u) {
                        e.subscribed = true;
                    }
                }
                Ok(())
            }
            Err(err) => {
                Self::drop_ref(&mut entries, user);
                Err(err)
            }
        }
    }

    /// Counts one local connection of `user` less.
    pub fn release(&self, user: &str) {
        Self::drop_ref(&mut self.entries.lock().unwrap(), user);
    }

    /// Users whose channel this node listens to now (lingering ones included).
    pub fn subscribed_count(&self) -> usize {
        self.entries
            .lock()
            .unwrap()
            .values()
            .filter(|e| e.subscribed)
            .count()
    }

    fn drop_ref(entries: &mut HashMap<String, Entry>, user: &str) {
        let Some(entry) = entries.get_mut(user) else {
            return;
        };
        entry.refs = entry.refs.saturating_sub(1);
        if entry.refs == 0 {
            if entry.subscribed {
                entry.idle_since = Some(Instant::now());
            } else {
                entries.remove(user);
            }
        }
    }

    /// Unsubscribes every user idle for longer than the linger.
    pub async fn sweep(&self) {
        let _op = self.ops.lock().await;
        let expired: Vec<String> = {
            let mut entries = self.entries.lock().unwrap();
            let now = Instant::now();
            let expired: Vec<String> = entries
                .iter()
                .filter(|(_, e)| {
                    e.refs == 0 && e.idle_since.is_some_and(|t| now - t >= self.linger)
                })
                .map(|(u, _)| u.clone())
                .collect();
            for u in &expired {
                entries.remove(u);
            }
            expired
        };
        if expired.is_empty() {
            return;
        }
        if let Err(err) = self.broker.unsubscribe(&expired).await {
            // A failed unsubscribe only costs stray deliveries, which the hub
            // drops because no local connection wants them.
            tracing::warn!(%err, users = expired.len(), "unsubscribe failed");
        }
    }
}

async fn sweep_loop(subs: Weak<UserChannels>, linger: Duration) {
    let mut tick = tokio::time::interval((linger / 2).max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(subs) = subs.upgrade() else { return };
        subs.sweep().await;
    }
}
