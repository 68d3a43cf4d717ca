use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use herald_protocol::Message;

use crate::backend::{Broker, BrokerSink};
use crate::delivery::Delivery;
use crate::error::Result;
use crate::model::StreamKey;

struct Listener {
    sink: Arc<dyn BrokerSink>,
    users: HashSet<String>,
}

/// The in-process stand-in for Redis pub/sub: every broker attached to the
/// bus gets the `all` stream and the inboxes of the users it subscribed to.
#[derive(Default)]
pub struct MemoryBus {
    next_id: AtomicU64,
    listeners: RwLock<HashMap<u64, Listener>>,
}

impl MemoryBus {
    pub fn new() -> Arc<Self> {
        Arc::new(MemoryBus::default())
    }

    /// Hands `message` to every listener of `key`. Called by the store while
    /// it holds the stream, so listeners see each stream in seq order.
    pub(crate) fn publish(&self, key: &StreamKey, message: Message) {
        let delivery = Delivery::new(key.clone(), message);
        let listeners = self.listeners.read().unwrap();
        for listener in listeners.values() {
            let wanted = match key {
                StreamKey::All => true,
                StreamKey::Inbox(user) => listener.users.contains(user),
            };
            if wanted {
                listener.sink.deliver(delivery.clone());
            }
        }
    }
}

impl MemoryBus {
    /// Hands a receipt to every listener of `user`.
    pub(crate) fn publish_receipt(&self, user: &str, receipt: &herald_protocol::Receipt) {
        let listeners = self.listeners.read().unwrap();
        for listener in listeners.values() {
            if listener.users.contains(user) {
                listener.sink.receipt(user, receipt);
            }
        }
    }

    /// Hands `user`'s changed preferences to every listener of `user`.
    pub(crate) fn publish_preferences(
        &self,
        user: &str,
        stored: &crate::backend::StoredPreferences,
    ) {
        let listeners = self.listeners.read().unwrap();
        for listener in listeners.values() {
            if listener.users.contains(user) {
                listener.sink.preferences(user, stored);
            }
        }
    }

    /// Tells every listener of `user` that the user's data was erased.
    pub(crate) fn publish_erased(&self, user: &str) {
        let listeners = self.listeners.read().unwrap();
        for listener in listeners.values() {
            if listener.users.contains(user) {
                listener.sink.erased(user);
            }
        }
    }

    /// Tells every listener of `user` that the user's counts changed,
    /// with the `changed` frame that says why when there is one.
    pub(crate) fn publish_counts_changed(
        &self,
        user: &str,
        changed: Option<&herald_protocol::Changed>,
    ) {
        let listeners = self.listeners.read().unwrap();
        for listener in listeners.values() {
            if listener.users.contains(user) {
                match changed {
                    Some(changed) => listener.sink.changed(user, changed),
                    None => listener.sink.counts_changed(user),
                }
            }
        }
    }
}

/// One node's connection to the [`MemoryBus`].
pub struct MemoryBroker {
    bus: Arc<MemoryBus>,
    id: u64,
}

impl MemoryBroker {
    pub fn new(bus: Arc<MemoryBus>, sink: Arc<dyn BrokerSink>) -> Self {
        let id = bus.next_id.fetch_add(1, Ordering::Relaxed);
        bus.listeners.write().unwrap().insert(
            id,
            Listener {
                sink,
                users: HashSet::new(),
            },
        );
        MemoryBroker { bus, id }
    }

    fn with_users(&self, f: impl FnOnce(&mut HashSet<String>)) {
        if let Some(l) = self.bus.listeners.write().unwrap().get_mut(&self.id) {
            f(&mut l.users)
        }
    }
}

impl Drop for MemoryBroker {
    fn drop(&mut self) {
        self.bus.listeners.write().unwrap().remove(&self.id);
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    async fn subscribe(&self, users: &[String]) -> Result<()> {
        self.with_users(|set| set.extend(users.iter().cloned()));
        Ok(())
    }

    async fn unsubscribe(&self, users: &[String]) -> Result<()> {
        self.with_users(|set| set.retain(|u| !users.contains(u)));
        Ok(())
    }
}
