//! One device's life as a well-behaved client lives it: connect, read,
//! acknowledge (batched, as the SDK does), and after every close reconnect — to another node, after
//! a jittered backoff — and resume with `sync` from the highest seq it has
//! (docs/protocol.md). Scenarios watch it through an [`Observer`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use herald_protocol::{ClientFrame, Message, Reply, Rid, ServerFrame, Stream, Welcome};
use tokio::sync::{mpsc, watch, Notify, OwnedSemaphorePermit};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::ledger::{Arrival, ConnView, StreamLog};
use crate::backoff::Backoff;
use crate::client::{Connector, Ws};
use crate::pacing::Rng;

/// The `rid` of the resume `sync`.
const RESUME: &str = "resume";
/// A connection silent this long is taken for dead (the server pings
/// every `ws.heartbeat_ms`, 25 s by default).
const SILENCE: Duration = Duration::from_secs(60);
/// Bounds on one device's loops: connect attempts over the run, frames
/// per connection. Far above any run's needs; they only make every loop
/// finite.
const MAX_ATTEMPTS: u32 = 100_000;
const MAX_FRAMES: u64 = 100_000_000;
/// Frames a scenario may queue for a device's connection.
const OUTBOX: usize = 16;
/// Acknowledgements wait this long and go out as one per stream (the
/// highest seq), as the browser SDK batches them: one store write per
/// burst instead of one per message.
const ACK_DELAY: Duration = Duration::from_millis(50);

/// What a scenario learns of a device's life. Every method has a no-op
/// default: a scenario implements what it measures.
pub trait Observer: Send + Sync {
    /// A connection was welcomed by node `node` (an index into the URLs).
    fn welcomed(&self, _dev: &Device, _node: usize, _welcome: &Welcome) {}
    /// The `sync` after a welcome was answered: the device is caught up.
    fn resumed(&self, _dev: &Device) {}
    /// A connection ended (not because the run stopped or churned it).
    fn ended(&self, _dev: &Device, _code: Option<u16>) {}
    /// A connect attempt to node `node` failed.
    fn refused(&self, _dev: &Device, _node: usize, _error: &anyhow::Error) {}
    /// A `message` frame arrived.
    fn message(&self, _dev: &Device, _m: &Message, _arrival: Arrival) {}
    /// A reply to a frame the scenario queued ([`Device::send`]).
    fn reply(&self, _dev: &Device, _reply: &Reply) {}
}

/// What every device of a process shares.
pub struct Ctx {
    pub connector: Connector,
    /// `ws://…/ws` of every node, in the scenario's order.
    pub urls: Vec<String>,
    pub backoff: Backoff,
    /// Set to true to end every device (its connection is closed).
    pub stop: watch::Receiver<bool>,
    pub observer: Arc<dyn Observer>,
}

/// One device (one user with the default device name).
pub struct Device {
    /// The device's number in the run (its user's index).
    pub index: usize,
    pub user: String,
    pub inbox: Mutex<StreamLog>,
    pub all: Mutex<StreamLog>,
    online: AtomicBool,
    churn: Notify,
    outbox: mpsc::Sender<WsMessage>,
    outbox_rx: Mutex<Option<mpsc::Receiver<WsMessage>>>,
}

impl Device {
    pub fn new(index: usize, user: String) -> Arc<Device> {
        let (tx, rx) = mpsc::channel(OUTBOX);
        Arc::new(Device {
            index,
            user,
            inbox: Mutex::new(StreamLog::with_gaps()),
            all: Mutex::new(StreamLog::default()),
            online: AtomicBool::new(false),
            churn: Notify::new(),
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
}

/// How a connection ended.
enum Ended {
    Stopped,
    Churned,
    Closed(Option<u16>),
}

/// Runs `dev` until the run stops: first to node `home` (holding
/// `permit`, the process's limit on first connects in flight, during that
/// attempt only: reconnects are spread by the backoff, as real clients'
/// are), then wherever [`next_node`] sends it.
pub async fn run(dev: Arc<Device>, home: usize, ctx: Arc<Ctx>, permit: OwnedSemaphorePermit) {
    let Some(mut outbox) = dev.outbox_rx.lock().expect("outbox lock").take() else {
        return; // already running
    };
    let mut permit = Some(permit);
    let mut stop = ctx.stop.clone();
    let mut rng = Rng(crate::sys::unix_micros() ^ ((dev.index as u64) << 24));
    let nodes = ctx.urls.len();
    let (mut node, mut refused, mut failures) = (home % nodes, 0u64, 0u32);
    for _ in 0..MAX_ATTEMPTS {
        if *stop.borrow() {
            return;
        }
        let attempt = tokio::select! {
            r = ctx.connector.connect(&ctx.urls[node], &dev.user) => r,
            _ = stop.changed() => return,
        };
        drop(permit.take());
        let wait = match attempt {
            Ok((mut ws, welcome)) => {
                (refused, failures) = (0, 0);
                dev.online.store(true, Ordering::Relaxed);
                ctx.observer.welcomed(&dev, node, &welcome);
                let ended = serve(&dev, &ctx, &mut ws, &mut outbox, &mut stop).await;
                dev.online.store(false, Ordering::Relaxed);
                match ended {
                    Ended::Stopped => return,
                    Ended::Churned => {}
                    Ended::Closed(code) => ctx.observer.ended(&dev, code),
                }
                node = next_node(node, nodes, &mut refused, &mut rng);
                ctx.backoff.delay(1, &mut rng)
            }
            Err(e) => {
                ctx.observer.refused(&dev, node, &e);
                refused |= 1 << node;
                node = next_node(node, nodes, &mut refused, &mut rng);
                failures += 1;
                ctx.backoff.delay(failures, &mut rng)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}

/// The node to try after `current` closed or refused: at random among the
/// others that have not refused since the last connection (`refused`, a
/// bit per node); when all have, the slate is wiped.
pub fn next_node(current: usize, nodes: usize, refused: &mut u64, rng: &mut Rng) -> usize {
    if nodes <= 1 {
        return 0;
    }
    let others = |refused: u64| -> Vec<usize> {
        (0..nodes)
            .filter(|&n| n != current && refused & (1 << n) == 0)
            .collect()
    };
    let mut candidates = others(*refused);
    if candidates.is_empty() {
        *refused = 0;
        candidates = others(0);
    }
    candidates[rng.below(candidates.len())]
}

/// A client frame from its JSON form (the wire shape is the contract; the
/// Rust type may grow optional fields), in the connector's codec.
fn encode(connector: &Connector, frame: serde_json::Value) -> WsMessage {
    let frame: ClientFrame = serde_json::from_value(frame).expect("a valid client frame");
    connector.encode(&frame)
}

/// Reads one connection until it ends: records and acknowledges every
/// message, resumes with `sync` after the welcome's backlog, writes what
/// the scenario queued.
async fn serve(
    dev: &Device,
    ctx: &Ctx,
    ws: &mut Ws,
    outbox: &mut mpsc::Receiver<WsMessage>,
    stop: &mut watch::Receiver<bool>,
) -> Ended {
    let mut views = [ConnView::default(), ConnView::default()];
    let mut synced = false;
    let mut acks = Acks::default();
    for _ in 0..MAX_FRAMES {
        let ack_at = acks.due.unwrap_or_else(|| Instant::now() + SILENCE);
        let next = tokio::select! {
            _ = stop.changed() => return close(ws, Ended::Stopped).await,
            _ = dev.churn.notified() => return close(ws, Ended::Churned).await,
            Some(frame) = outbox.recv() => {
                if ws.send(frame).await.is_err() {
                    return Ended::Closed(None);
                }
                continue;
            }
            _ = tokio::time::sleep_until(ack_at), if acks.due.is_some() => {
                for frame in acks.take() {
                    if ws.feed(encode(&ctx.connector, frame)).await.is_err() {
                        return Ended::Closed(None);
                    }
                }
                if ws.flush().await.is_err() {
                    return Ended::Closed(None);
                }
                continue;
            }
            next = tokio::time::timeout(SILENCE, ws.next()) => next,
        };
        let msg = match next {
            Ok(Some(Ok(msg))) => msg,
            _ => return Ended::Closed(None),
        };
        if let WsMessage::Close(c) = &msg {
            return Ended::Closed(c.as_ref().map(|c| u16::from(c.code)));
        }
        let Some(Ok(frame)) = ctx.connector.decode(&msg) else {
            continue;
        };
        let answer = match frame {
            ServerFrame::Message(m) => {
                let (log, view) = match m.stream {
                    Stream::Inbox => (&dev.inbox, &mut views[0]),
                    Stream::All => (&dev.all, &mut views[1]),
                };
                let arrival = log.lock().expect("log lock").record(m.seq, m.id, view);
                ctx.observer.message(dev, &m, arrival);
                acks.note(m.stream, m.seq);
                None
            }
            // The first counts frame ends the welcome's backlog.
            ServerFrame::Counts(_) if !synced => {
                synced = true;
                Some(resume_frame(dev, &mut views))
            }
            ServerFrame::Reply(r) if r.rid == Some(Rid::Str(RESUME.into())) => {
                if !r.ok {
                    tracing::debug!(user = dev.user, "sync refused: {:?}", r.error);
                    return close(ws, Ended::Closed(None)).await;
                }
                views.iter_mut().for_each(ConnView::sync_answered);
                ctx.observer.resumed(dev);
                None
            }
            ServerFrame::Reply(r) => {
                ctx.observer.reply(dev, &r);
                None
            }
            _ => None,
        };
        if let Some(frame) = answer {
            if ws.send(encode(&ctx.connector, frame)).await.is_err() {
                return Ended::Closed(None);
            }
        }
    }
    close(ws, Ended::Closed(None)).await
}

/// Acknowledgements waiting to go out: the highest seq per stream.
#[derive(Default)]
struct Acks {
    upto: [u64; 2],
    due: Option<Instant>,
}

impl Acks {
    /// `seq` of `stream` arrived; it is acknowledged within [`ACK_DELAY`].
    fn note(&mut self, stream: Stream, seq: u64) {
        let i = usize::from(stream == Stream::All);
        self.upto[i] = self.upto[i].max(seq);
        self.due.get_or_insert_with(|| Instant::now() + ACK_DELAY);
    }

    /// The `ack` frames due, and nothing pending after.
    fn take(&mut self) -> Vec<serde_json::Value> {
        self.due = None;
        let names = ["inbox", "all"];
        let frames = (0..2)
            .filter(|&i| self.upto[i] > 0)
            .map(|i| serde_json::json!({"type": "ack", "seq": self.upto[i], "stream": names[i]}))
            .collect();
        self.upto = [0, 0];
        frames
    }
}

/// The `sync` from the highest seq of each stream the device has (the
/// `all` stream only once it has any), noted on the connection's views.
fn resume_frame(dev: &Device, views: &mut [ConnView; 2]) -> serde_json::Value {
    let since = dev.inbox.lock().expect("log lock").high();
    let since_all = dev.all.lock().expect("log lock").high();
    views[0].synced_from(since);
    let mut frame = serde_json::json!({"type": "sync", "rid": RESUME, "since": since});
    if since_all > 0 {
        views[1].synced_from(since_all);
        frame["since_all"] = since_all.into();
    }
    frame
}

/// Closes `ws` politely (bounded), then reports `how`.
async fn close(ws: &mut Ws, how: Ended) -> Ended {
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
    how
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_node_is_another_one_that_did_not_refuse() {
        let mut rng = Rng(3);
        let mut refused = 0u64;
        for _ in 0..100 {
            let n = next_node(1, 4, &mut refused, &mut rng);
            assert_ne!(n, 1);
        }
        refused = 0b0101; // 0 and 2 refused
        for _ in 0..100 {
            assert_eq!(next_node(1, 4, &mut refused, &mut rng), 3);
        }
        refused = 0b1101; // every other node refused: start over
        let n = next_node(1, 4, &mut refused, &mut rng);
        assert!(n != 1 && refused == 0, "{n} {refused:b}");
        assert_eq!(next_node(0, 1, &mut refused, &mut rng), 0);
    }

    #[test]
    fn next_node_spreads_over_the_others() {
        let mut rng = Rng(11);
        let mut seen = [0u32; 4];
        for _ in 0..3_000 {
            let mut refused = 0;
            seen[next_node(0, 4, &mut refused, &mut rng)] += 1;
        }
        assert_eq!(seen[0], 0);
        assert!(
            seen[1..].iter().all(|&c| (850..1150).contains(&c)),
            "{seen:?}"
        );
    }

    #[test]
    fn resume_syncs_from_the_highest_seqs() {
        let dev = Device::new(0, "u".into());
        let mut views = [ConnView::default(), ConnView::default()];
        let f = resume_frame(&dev, &mut views);
        assert_eq!(
            f,
            serde_json::json!({"type":"sync","rid":"resume","since":0})
        );
        let id = uuid::Uuid::from_u128(1);
        dev.inbox
            .lock()
            .unwrap()
            .record(4, id, &mut ConnView::default());
        dev.all
            .lock()
            .unwrap()
            .record(2, id, &mut ConnView::default());
        let f = resume_frame(&dev, &mut views);
        assert_eq!(
            (f["since"].as_u64(), f["since_all"].as_u64()),
            (Some(4), Some(2))
        );
        let frame: ClientFrame = serde_json::from_value(f).unwrap();
        assert!(matches!(frame, ClientFrame::Sync { .. }));
    }

    #[test]
    fn acks_go_out_as_the_highest_seq_per_stream() {
        let mut acks = Acks::default();
        assert!(acks.due.is_none() && acks.take().is_empty());
        acks.note(Stream::Inbox, 3);
        acks.note(Stream::Inbox, 5);
        acks.note(Stream::Inbox, 4);
        acks.note(Stream::All, 2);
        assert!(acks.due.is_some());
        let frames = acks.take();
        assert_eq!(
            frames,
            [
                serde_json::json!({"type": "ack", "seq": 5, "stream": "inbox"}),
                serde_json::json!({"type": "ack", "seq": 2, "stream": "all"}),
            ]
        );
        for f in frames {
            let frame: ClientFrame = serde_json::from_value(f).unwrap();
            assert!(matches!(frame, ClientFrame::Ack { .. }));
        }
        assert!(acks.due.is_none() && acks.take().is_empty());
    }

    #[test]
    fn a_device_offline_takes_no_frames() {
        let dev = Device::new(0, "u".into());
        assert!(!dev.send(WsMessage::Text("x".into())));
    }
}
