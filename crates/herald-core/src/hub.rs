//! The hub: this node's local connections, by user.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use uuid::Uuid;

use crate::backend::BrokerSink;
use crate::bounded_queue::{bounded_queue, BoundedReceiver, BoundedSender};
use crate::delivery::Delivery;
use crate::error::Result;
use crate::model::StreamKey;
use crate::user_channels::UserChannels;

/// What the hub hands a connection.
#[derive(Debug, Clone)]
pub enum ConnEvent {
    Deliver(Arc<Delivery>),
    /// The broker may have missed messages: compare with the store.
    Resync,
    /// Presence dropped this node's connections (it was taken for dead):
    /// register again.
    Reregister,
    /// The user's read state changed (a mark, maybe on another node): read
    /// the counts again and push them.
    CountsChanged,
    /// A private message the user sent was delivered or read.
    Receipt(Arc<herald_protocol::Receipt>),
    /// The user's preferences changed: what they set now (the connection
    /// fills in the defaults and pushes a `preferences` frame).
    Preferences(Arc<crate::backend::StoredPreferences>),
    /// Messages of the user changed state by the server's doing (a snooze
    /// ended): write the `changed` frame, then read the counts again.
    Changed(Arc<herald_protocol::Changed>),
    /// The node drains: answer what is pending, tell the client to
    /// reconnect after `after_ms`, and close.
    Drain {
        after_ms: u64,
    },
    /// The user's data was erased (`DELETE /v1/users/{id}`): close with
    /// 4003 at once, answering nothing more.
    Erased,
}

/// The hub's end of a connection's queue.
pub type QueueSender = BoundedSender<ConnEvent>;
/// The connection's end of its queue.
pub type QueueReceiver = BoundedReceiver<ConnEvent>;

/// A connection's queue of at most `capacity` events.
pub fn conn_queue(capacity: usize) -> (QueueSender, QueueReceiver) {
    bounded_queue(capacity)
}

/// The hub's end of one connection: a bounded queue. When it is full the
/// connection reads too slowly; the hub drops it from the registry, which
/// closes the queue, and the connection closes itself as a slow consumer.
#[derive(Debug, Clone)]
pub struct ConnHandle {
    pub conn_id: Uuid,
    pub tx: QueueSender,
}

const SHARDS: usize = 64;

type Shard = Mutex<HashMap<String, Vec<ConnHandle>>>;

/// Local connections by user. Lookups take one shard lock; a broadcast walks
/// the shards one at a time and never waits on a connection.
pub struct Hub {
    shards: Box<[Shard]>,
    hasher: RandomState,
    connections: AtomicUsize,
    channels: OnceLock<Arc<UserChannels>>,
    /// The most deliveries one connection had queued since the last
    /// [`Hub::take_queue_high_water`].
    queue_high_water: AtomicUsize,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            connections: AtomicUsize::new(0),
            channels: OnceLock::new(),
            queue_high_water: AtomicUsize::new(0),
        }
    }
}

impl Hub {
    pub fn new() -> Arc<Self> {
        Arc::new(Hub::default())
    }

    /// Connects the hub to the user channels it listens to. The broker needs the hub
    /// as its sink before those exist, hence the second step.
    pub fn bind(&self, channels: Arc<UserChannels>) {
        if self.channels.set(channels).is_err() {
            panic!("Hub::bind called twice");
        }
    }

    fn channels(&self) -> &UserChannels {
        self.channels.get().expect("Hub::bind was not called")
    }

    fn shard(&self, user: &str) -> &Shard {
        &self.shards[(self.hasher.hash_one(user) as usize) % SHARDS]
    }

    /// Registers a connection of `user`. When this returns Ok, every message
    /// appended to the user's inbox from now on is handed to `handle`.
    pub async fn attach(&self, user: &str, handle: ConnHandle) -> Result<()> {
        self.channels().acquire(user).await?;
        self.shard(user)
            .lock()
            .unwrap()
            .entry(user.to_owned())
            .or_default()
            .push(handle);
        self.connections.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Removes a connection; harmless if the hub already dropped it.
    pub fn detach(&self, user: &str, conn_id: Uuid) {
        let removed = {
            let mut shard = self.shard(user).lock().unwrap();
            remove_conn(&mut shard, user, conn_id)
        };
        if removed {
            self.connections.fetch_sub(1, Ordering::Relaxed);
            self.channels().release(user);
        }
    }

    /// Lets go of every connection: their queues close and each connection
    /// ends itself (used on shutdown).
    pub fn close_all(&self) {
        for shard in self.shards.iter() {
            let users: Vec<(String, usize)> = shard
                .lock()
                .unwrap()
                .drain()
                .map(|(user, conns)| (user, conns.len()))
                .collect();
            for (user, n) in users {
                self.connections.fetch_sub(n, Ordering::Relaxed);
                for _ in 0..n {
                    self.channels().release(&user);
                }
            }
        }
    }

    /// Every local connection now, with its user (for draining them in
    /// batches).
    pub fn connections(&self) -> Vec<(String, ConnHandle)> {
        let mut all = Vec::with_capacity(self.connection_count());
        for shard in self.shards.iter() {
            for (user, conns) in shard.lock().unwrap().iter() {
                all.extend(conns.iter().map(|c| (user.clone(), c.clone())));
            }
        }
        all
    }

    /// Hands `event` to one connection; a connection whose queue is full is
    /// dropped (it then closes by itself).
    pub fn offer_to(&self, user: &str, conn: &ConnHandle, event: ConnEvent) {
        if conn.tx.try_send(event).is_err() {
            self.detach(user, conn.conn_id);
        }
    }

    /// Local connections now.
    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// This user's local connections now.
    pub fn connections_of(&self, user: &str) -> usize {
        self.shard(user)
            .lock()
            .unwrap()
            .get(user)
            .map_or(0, Vec::len)
    }

    /// Local users now.
    pub fn user_count(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap().len()).sum()
    }

    /// The most deliveries one connection had queued since the last call.
    pub fn take_queue_high_water(&self) -> usize {
        self.queue_high_water.swap(0, Ordering::Relaxed)
    }

    /// Offers `event` to every connection in `conns`; returns those whose
    /// queue is full or closed, to be dropped.
    fn offer(&self, conns: &[ConnHandle], event: &ConnEvent) -> Vec<Uuid> {
        let mut deepest = 0;
        let dropped = conns
            .iter()
            .filter(|c| {
                let refused = c.tx.try_send(event.clone()).is_err();
                deepest = deepest.max(c.tx.len());
                refused
            })
            .map(|c| c.conn_id)
            .collect();
        // One atomic per offer, not per connection.
        self.queue_high_water.fetch_max(deepest, Ordering::Relaxed);
        dropped
    }

    fn offer_user(&self, user: &str, event: ConnEvent) {
        let dropped = {
            let shard = self.shard(user).lock().unwrap();
            match shard.get(user) {
                Some(conns) => self.offer(conns, &event),
                None => return,
            }
        };
        self.drop_lagging(user, dropped);
    }

    fn offer_all(&self, event: ConnEvent) {
        for shard in self.shards.iter() {
            let dropped: Vec<(String, Vec<Uuid>)> = {
                let shard = shard.lock().unwrap();
                shard
                    .iter()
                    .map(|(user, conns)| (user.clone(), self.offer(conns, &event)))
                    .filter(|(_, d)| !d.is_empty())
                    .collect()
            };
            for (user, ids) in dropped {
                self.drop_lagging(&user, ids);
            }
        }
    }

    fn drop_lagging(&self, user: &str, conn_ids: Vec<Uuid>) {
        for conn_id in conn_ids {
            tracing::debug!(user, %conn_id, "outbound queue full: dropping connection");
            self.detach(user, conn_id);
        }
    }
}

fn remove_conn(shard: &mut HashMap<String, Vec<ConnHandle>>, user: &str, conn_id: Uuid) -> bool {
    let Some(conns) = shard.get_mut(user) else {
        return false;
    };
    let before = conns.len();
    conns.retain(|c| c.conn_id != conn_id);
    let removed = conns.len() < before;
    if conns.is_empty() {
        shard.remove(user);
    }
    removed
}

impl BrokerSink for Hub {
    fn deliver(&self, delivery: Arc<Delivery>) {
        match &delivery.key {
            StreamKey::Inbox(user) => {
                let user = user.clone();
                self.offer_user(&user, ConnEvent::Deliver(delivery))
            }
            StreamKey::All => self.offer_all(ConnEvent::Deliver(delivery)),
        }
    }

    fn resync(&self) {
        self.offer_all(ConnEvent::Resync);
    }

    fn receipt(&self, user: &str, receipt: &herald_protocol::Receipt) {
        self.offer_user(user, ConnEvent::Receipt(Arc::new(receipt.clone())));
    }

    fn counts_changed(&self, user: &str) {
        self.offer_user(user, ConnEvent::CountsChanged);
    }

    fn preferences(&self, user: &str, stored: &crate::backend::StoredPreferences) {
        self.offer_user(user, ConnEvent::Preferences(Arc::new(stored.clone())));
    }

    fn changed(&self, user: &str, changed: &herald_protocol::Changed) {
        self.offer_user(user, ConnEvent::Changed(Arc::new(changed.clone())));
    }

    fn erased(&self, user: &str) {
        self.offer_user(user, ConnEvent::Erased);
    }
}
