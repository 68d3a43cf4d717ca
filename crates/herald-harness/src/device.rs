//! A resuming client: what the fault tests and the load generator's
//! `storm` and `soak` connect with.
//!
//! Unlike a bare connection, a [`Device`] behaves like the browser SDK: it
//! acknowledges what it gets, reconnects with jittered backoff to another
//! node after a close, `sync`s from the highest seq it has (with the id it
//! holds there, so a store that went back answers with a `reset`), and
//! dedups by seq; every arrival is booked in its [`StreamLog`]s so that
//! [`check`](crate::check()) can tell, at the end, whether each accepted message
//! arrived exactly once. [`crate::session::run`] lives its life; a test or
//! scenario watches it through an [`Observer`] and may make it stop reading
//! (a stalled consumer), stay silent, close (churn) or send frames.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use herald_protocol::{Codec, Message, Reply, Welcome};
use tokio::sync::{mpsc, watch, Notify};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::backoff::Backoff;
use crate::check::Received;
use crate::ledger::{Arrival, StreamLog};

pub use crate::frames::Ws;

/// How long acknowledgements wait to go out as one per stream (the highest
/// seq), as the browser SDK batches them: one store write per burst
/// instead of one per message.
pub const SDK_ACK_DELAY: Duration = Duration::from_millis(50);

/// Frames a scenario may queue for a device's connection.
const OUTBOX: usize = 16;

/// What a test or scenario learns of a device's life. Every method has a
/// no-op default: each implements what it measures.
pub trait Observer: Send + Sync {
    /// A connect attempt to node `node` (an index into the URLs) starts.
    fn connecting(&self, _dev: &Device, _node: usize) {}
    /// A connection was welcomed by node `node`.
    fn welcomed(&self, _dev: &Device, _node: usize, _welcome: &Welcome) {}
    /// The `sync` after a welcome was answered: the device is caught up.
    fn resumed(&self, _dev: &Device) {}
    /// A connection ended (not because the run stopped or churned it).
    fn ended(&self, _dev: &Device, _code: Option<u16>) {}
    /// The node asked the device to reconnect elsewhere after `after_ms`
    /// (the `reconnect` frame of a drain or a rebalancing move).
    fn reconnect(&self, _dev: &Device, _after_ms: u64) {}
    /// A connect attempt to node `node` failed.
    fn refused(&self, _dev: &Device, _node: usize, _error: &anyhow::Error) {}
    /// A `message` frame arrived.
    fn message(&self, _dev: &Device, _m: &Message, _arrival: Arrival) {}
    /// A reply to a frame the scenario queued ([`Device::send`]).
    fn reply(&self, _dev: &Device, _reply: &Reply) {}
    /// The server broke the protocol (an undecodable frame, a refused
    /// `sync`); the device skips the frame or reconnects.
    fn protocol_error(&self, dev: &Device, what: &str) {
        tracing::debug!(user = dev.user, "{what}");
    }
}

/// How devices open connections: the transport (token, source address,
/// socket buffers) is the caller's.
pub trait Dial: Send + Sync {
    /// Connects `dev` to the node at `url` (`ws://host:port/ws`) and
    /// returns once the node's `welcome` has arrived.
    fn dial<'a>(
        &'a self,
        url: &'a str,
        dev: &'a Device,
    ) -> BoxFuture<'a, anyhow::Result<(Ws, Welcome)>>;
    /// The codec of the connections it opens.
    fn codec(&self) -> Codec;
    /// The node a device tries after node `current` closed or refused it:
    /// by default [`next_node`](crate::session::next_node), another one
    /// that has not refused since the last connection (the SDK's list of
    /// URLs). A dial through a load balancer overrides it: a Service picks
    /// any node.
    fn next_node(&self, current: usize, nodes: usize, refused: &mut u64) -> usize {
        crate::failover::next_node(current, nodes, refused, &mut rand::rng())
    }
}

/// What every device of a run shares.
pub struct Ctx {
    pub dial: Arc<dyn Dial>,
    /// `ws://…/ws` of every node, in the run's order.
    pub urls: Vec<String>,
    pub backoff: Backoff,
    /// How long acknowledgements wait to go out together; zero
    /// acknowledges each message as it arrives.
    pub ack_delay: Duration,
    /// Set to true to end every device (its connection is closed).
    pub stop: watch::Receiver<bool>,
    pub observer: Arc<dyn Observer>,
}

/// How a device behaves, besides resuming.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// The `device` it connects as; None for the user's default device.
    pub name: Option<String>,
    /// Starts held ([`Device::hold`]): not reading its socket at all.
    pub held: bool,
    /// Writes nothing (no `sync`, no `ack`) until its first connection ends.
    pub silent_until_closed: bool,
}

/// One device of one user.
pub struct Device {
    /// The device's number in the run.
    pub index: usize,
    pub user: String,
    pub setup: Setup,
    pub inbox: Mutex<StreamLog>,
    pub all: Mutex<StreamLog>,
    pub(crate) online: AtomicBool,
    pub(crate) churn: Notify,
    pub(crate) hold: watch::Sender<bool>,
    pub(crate) silent: AtomicBool,
    outbox: mpsc::Sender<WsMessage>,
    outbox_rx: Mutex<Option<mpsc::Receiver<WsMessage>>>,
}

impl Device {
    /// The user's default device, reading and writing as the SDK does.
    pub fn new(index: usize, user: String) -> Arc<Device> {
        Self::with(index, user, Setup::default())
    }

    pub fn with(index: usize, user: String, setup: Setup) -> Arc<Device> {
        let (tx, rx) = mpsc::channel(OUTBOX);
        Arc::new(Device {
            index,
            user,
            inbox: Mutex::new(StreamLog::with_gaps()),
            all: Mutex::new(StreamLog::default()),
            online: AtomicBool::new(false),
            churn: Notify::new(),
            hold: watch::Sender::new(setup.held),
            silent: AtomicBool::new(setup.silent_until_closed),
            setup,
            outbox: tx,
            outbox_rx: Mutex::new(Some(rx)),
        })
    }

    /// Whether a connection is up (welcomed and not ended).
    pub fn online(&self) -> bool {
        self.online.load(Ordering::Relaxed)
    }

    /// Queues a frame for the current connection; false when offline or
    /// the queue is full (the frame is dropped).
    pub fn send(&self, frame: WsMessage) -> bool {
        self.online() && self.outbox.try_send(frame).is_ok()
    }

    /// Closes the current connection as a user closing a tab would; the
    /// device reconnects (a connect/disconnect of a soak's churn).
    pub fn churn(&self) {
        self.churn.notify_one();
    }

    /// While `held`, the device does not read its socket at all (a
    /// consumer that stalled): the node's writes to it block once the
    /// socket buffers are full.
    pub fn hold(&self, held: bool) {
        self.hold.send_replace(held);
    }

    /// Whether it writes nothing for now.
    pub(crate) fn silent(&self) -> bool {
        self.silent.load(Ordering::Relaxed)
    }

    /// What it received of its inbox, for [`check`](crate::check()), its user
    /// known as `user`.
    pub fn received<U>(&self, user: U) -> Received<U> {
        let log = self.inbox.lock().expect("log lock");
        Received {
            user,
            messages: log.received(),
            faults: log.faults,
        }
    }

    /// The receiver of its outbox, once: its session takes it.
    pub(crate) fn take_outbox(&self) -> Option<mpsc::Receiver<WsMessage>> {
        self.outbox_rx.lock().expect("outbox lock").take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_offline_takes_no_frames() {
        let dev = Device::new(0, "u".into());
        assert!(!dev.send(WsMessage::Text("x".into())));
    }

    #[test]
    fn a_held_device_starts_held_and_lets_go() {
        let setup = Setup {
            held: true,
            ..Setup::default()
        };
        let dev = Device::with(0, "u".into(), setup);
        assert!(*dev.hold.borrow());
        dev.hold(false);
        assert!(!*dev.hold.borrow());
        assert!(dev.take_outbox().is_some() && dev.take_outbox().is_none());
    }
}
