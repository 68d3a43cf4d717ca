//! The broker: a subscriber connection of its own, per-user channels and the
//! `all` channel.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use fred::clients::SubscriberClient;
use fred::interfaces::{ClientLike, ClusterInterface, EventInterface, PubsubInterface};
use fred::prelude::Value;
use fred::types::config::Options;
use futures_util::{StreamExt, TryStreamExt};
use herald_core::{validate_user_id, Broker, BrokerSink, CoreError, Delivery, Result, StreamKey};
use herald_protocol::Message;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use crate::keys::Keys;
use crate::{unavailable, Shared};

/// The payload of a counts-changed event on a user's channel (published by
/// the read-state commit script): the msgpack string `"counts"`. A message
/// is a msgpack map, so it never starts with this byte (0xa6, a fixstr).
pub(crate) const COUNTS_CHANGED: &[u8] = b"\xa6counts";

/// The payload of the event that the user's data was erased (published by
/// the erase script): the msgpack string `"erased"`, like
/// [`COUNTS_CHANGED`] never the first byte of a message.
pub(crate) const ERASED: &[u8] = b"\xa6erased";

/// The payload of a receipt on a user's channel: the msgpack array
/// `["receipt", <Receipt>]` (a message is a map, so the first byte tells
/// them apart).
pub(crate) fn encode_receipt(receipt: &herald_protocol::Receipt) -> Result<bytes::Bytes> {
    rmp_serde::to_vec(&(RECEIPT, receipt))
        .map(Into::into)
        .map_err(|e| herald_core::CoreError::Invalid(format!("receipt not encodable: {e}")))
}

const RECEIPT: &str = "receipt";
/// msgpack fixarray of 2: the first byte of a receipt payload.
const RECEIPT_HEAD: u8 = 0x92;

/// The tag of a preferences change on a user's channel:
/// `["preferences", [field, value, …]]` (packed by the preferences script,
/// so it starts with [`RECEIPT_HEAD`] too; the tag tells them apart).
const PREFERENCES: &str = "preferences";

fn decode_preferences(payload: &[u8]) -> Option<herald_core::StoredPreferences> {
    let (tag, flat): (String, Vec<String>) = rmp_serde::from_slice(payload).ok()?;
    (tag == PREFERENCES).then(|| crate::preferences::pairs(&flat))
}

fn decode_receipt(payload: &[u8]) -> Option<herald_protocol::Receipt> {
    let (tag, receipt): (String, herald_protocol::Receipt) = rmp_serde::from_slice(payload).ok()?;
    (tag == RECEIPT).then_some(receipt)
}

/// The payload of a counts change that says why (snoozes that ended), by
/// the read-state commit script: the msgpack array `["changed",
/// <Changed>]`, the frame's fields by name.
pub(crate) fn encode_changed(changed: &herald_protocol::Changed) -> Result<bytes::Bytes> {
    rmp_serde::to_vec_named(&(CHANGED, changed))
        .map(Into::into)
        .map_err(|e| herald_core::CoreError::Invalid(format!("changed not encodable: {e}")))
}

const CHANGED: &str = "changed";

fn decode_changed(payload: &[u8]) -> Option<herald_protocol::Changed> {
    let (tag, changed): (String, herald_protocol::Changed) = rmp_serde::from_slice(payload).ok()?;
    (tag == CHANGED).then_some(changed)
}

/// Decodes a published payload (the msgpack `Message`).
pub(crate) fn decode_message(payload: &[u8]) -> Result<Message> {
    rmp_serde::from_slice(payload)
        .map_err(|e| CoreError::Unavailable(format!("undecodable message in redis: {e}")))
}

/// [`Broker`] on Redis pub/sub (sharded on a Cluster).
pub struct RedisBroker {
    client: SubscriberClient,
    keys: Keys,
    sharded: bool,
    /// The message pump and the resubscriber.
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl RedisBroker {
    pub(crate) async fn start(shared: Arc<Shared>, sink: Arc<dyn BrokerSink>) -> Result<Arc<Self>> {
        let builder = shared.settings.builder(shared.settings.pubsub_buffer)?;
        let client = builder.build_subscriber_client().map_err(unavailable)?;
        client.init().await.map_err(unavailable)?;
        let broker = Arc::new(RedisBroker {
            client,
            keys: shared.keys.clone(),
            sharded: shared.sharded,
            tasks: Mutex::default(),
        });
        // Listen before subscribing, so nothing published after the first
        // SUBSCRIBE is missed.
        let messages = tokio::spawn(pump(
            broker.client.message_rx(),
            broker.keys.clone(),
            sink.clone(),
        ));
        let reconnects = tokio::spawn(resubscriber(broker.client.clone(), broker.sharded, sink));
        broker.tasks.lock().unwrap().extend([messages, reconnects]);
        broker
            .listen(vec![broker.keys.channel(&StreamKey::All)])
            .await?;
        Ok(broker)
    }

    async fn listen(&self, channels: Vec<String>) -> Result<()> {
        subscribe(&self.client, self.sharded, channels)
            .await
            .map_err(unavailable)
    }

    /// Stops the tasks and closes the subscriber connection.
    pub async fn stop(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
        let _ = self.client.quit().await;
    }

    fn channels(&self, users: &[String]) -> Result<Vec<String>> {
        users
            .iter()
            .map(|u| {
                validate_user_id(u)?;
                Ok(self.keys.channel(&StreamKey::inbox(u.as_str())))
            })
            .collect()
    }
}

impl Drop for RedisBroker {
    fn drop(&mut self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

/// Most channels in one SUBSCRIBE command, to keep each reply small.
const BATCH: usize = 1000;
/// SSUBSCRIBE commands (one channel each) in flight at once on a Cluster.
const SSUBSCRIBES_IN_FLIGHT: usize = 256;

/// Subscribes to `channels` and returns once Redis has registered them, so
/// that nothing published afterwards is missed.
///
/// - SUBSCRIBE: fred completes it as soon as it is written (its replies
///   arrive out of band), so a PING on the same connection follows it:
///   Redis runs a connection's commands in order, so the PONG means the
///   SUBSCRIBE ran.
/// - SSUBSCRIBE (Cluster): fred waits for the reply, which it takes as the
///   reply to the command; a command naming k channels gets k replies and
///   the extra ones would be taken as replies to whatever comes next, so
///   one channel per command. (Each command must stay in one slot anyway,
///   and per-user channels rarely share one.)
async fn subscribe(
    client: &SubscriberClient,
    sharded: bool,
    channels: Vec<String>,
) -> Result<(), fred::error::Error> {
    if sharded {
        // One channel per command, but many commands in flight: fred
        // pipelines them on each primary's connection, so a reconnecting
        // node with many users pays a few round trips, not one per user.
        futures_util::stream::iter(channels)
            .map(|channel| client.ssubscribe(channel))
            .buffer_unordered(SSUBSCRIBES_IN_FLIGHT)
            .try_collect::<()>()
            .await?;
    } else {
        for batch in channels.chunks(BATCH) {
            client.subscribe(batch.to_vec()).await?;
            let _: Value = client.ping(None).await?;
        }
    }
    Ok(())
}

/// Unsubscribes and returns once Redis has done it (after that, nothing
/// more arrives for these channels). fred sends UNSUBSCRIBE and SUNSUBSCRIBE
/// without waiting for their replies, so a PING follows on each connection
/// used: on a Cluster, the connection to each slot's primary.
async fn unsubscribe(
    client: &SubscriberClient,
    sharded: bool,
    channels: Vec<String>,
) -> Result<(), fred::error::Error> {
    if sharded {
        let routing = client.cached_cluster_state();
        let mut servers = BTreeSet::new();
        for group in by_slot(channels) {
            let slot = fred::util::redis_keyslot(group[0].as_bytes());
            for batch in group.chunks(BATCH) {
                client.sunsubscribe(batch.to_vec()).await?;
            }
            if let Some(server) = routing.as_ref().and_then(|r| r.get_server(slot)) {
                servers.insert(server.clone());
            }
        }
        for server in servers {
            let on_node = client.with_options(&Options {
                cluster_node: Some(server),
                ..Options::default()
            });
            let _: Value = on_node.ping(None).await?;
        }
    } else {
        for batch in channels.chunks(BATCH) {
            client.unsubscribe(batch.to_vec()).await?;
            let _: Value = client.ping(None).await?;
        }
    }
    Ok(())
}

fn by_slot(channels: Vec<String>) -> Vec<Vec<String>> {
    let mut groups: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for channel in channels {
        let slot = fred::util::redis_keyslot(channel.as_bytes());
        groups.entry(slot).or_default().push(channel);
    }
    groups.into_values().collect()
}

/// Hands every message to the sink, in the order the connection received
/// it (which is each stream's seq order: scripts publish in seq order).
async fn pump(
    mut rx: tokio::sync::broadcast::Receiver<fred::types::Message>,
    keys: Keys,
    sink: Arc<dyn BrokerSink>,
) {
    loop {
        match rx.recv().await {
            Ok(message) => {
                if let Some(o) = crate::observer::observer() {
                    o.pubsub_message();
                }
                let Some(key) = keys.parse_channel(&message.channel) else {
                    tracing::debug!(channel = %message.channel, "message on a channel not ours");
                    continue;
                };
                let Some(payload) = message.value.as_bytes() else {
                    tracing::warn!(channel = %message.channel, "non-binary pub/sub payload");
                    continue;
                };
                if payload == COUNTS_CHANGED {
                    if let StreamKey::Inbox(user) = &key {
                        sink.counts_changed(user);
                    }
                    continue;
                }
                if payload == ERASED {
                    if let StreamKey::Inbox(user) = &key {
                        sink.erased(user);
                    }
                    continue;
                }
                if payload.first() == Some(&RECEIPT_HEAD) {
                    let StreamKey::Inbox(user) = &key else {
                        continue;
                    };
                    if let Some(stored) = decode_preferences(payload) {
                        sink.preferences(user, &stored);
                    } else if let Some(receipt) = decode_receipt(payload) {
                        sink.receipt(user, &receipt);
                    } else if let Some(changed) = decode_changed(payload) {
                        sink.changed(user, &changed);
                    } else {
                        tracing::warn!(channel = %message.channel, "unreadable event dropped");
                    }
                    continue;
                }
                match decode_message(payload) {
                    Ok(decoded) => sink.deliver(Delivery::new(key, decoded)),
                    Err(err) => tracing::warn!(%err, channel = %message.channel, "dropped"),
                }
            }
            Err(RecvError::Lagged(missed)) => {
                // The buffer overflowed: messages were lost here, but they
                // are in the store.
                tracing::warn!(missed, "pub/sub buffer overflowed; resyncing");
                sink.resync();
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// After every reconnection: subscribe again to everything fred tracks
/// (what succeeded minus what was unsubscribed), then tell the sink to compare its connections with the store (whatever was published
/// while the link was down is lost to pub/sub). Not fred's
/// `manage_subscriptions`: its `resubscribe_all` sends PSUBSCRIBE without
/// arguments when there are no patterns, which Redis refuses, and it cannot
/// tell us when it is done.
async fn resubscriber(client: SubscriberClient, sharded: bool, sink: Arc<dyn BrokerSink>) {
    let mut rx = client.reconnect_rx();
    loop {
        match rx.recv().await {
            Ok(server) => tracing::info!(%server, "redis subscriber reconnected"),
            Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
        let mut delay = std::time::Duration::from_millis(50);
        loop {
            let wanted: Vec<String> = if sharded {
                client.tracked_shard_channels()
            } else {
                client.tracked_channels()
            }
            .into_iter()
            .map(|c| c.to_string())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
            match subscribe(&client, sharded, wanted).await {
                Ok(()) => break,
                Err(err) => {
                    tracing::warn!(%err, "resubscribe failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(2));
                }
            }
        }
        if let Some(o) = crate::observer::observer() {
            o.resubscribed();
        }
        sink.resync();
    }
}

#[async_trait]
impl Broker for RedisBroker {
    async fn subscribe(&self, users: &[String]) -> Result<()> {
        let channels = self.channels(users)?;
        self.listen(channels).await
    }

    async fn unsubscribe(&self, users: &[String]) -> Result<()> {
        let channels = self.channels(users)?;
        unsubscribe(&self.client, self.sharded, channels)
            .await
            .map_err(unavailable)
    }
}
