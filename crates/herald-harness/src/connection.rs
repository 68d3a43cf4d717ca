//! One connection of a [`Device`], from its welcome to its end: records
//! and acknowledges every message, resumes with `sync` after the welcome's
//! backlog, follows a `reset`, and writes what the scenario queued.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use herald_protocol::{ClientFrame, Rid, ServerFrame, Stream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::device::{Ctx, Device};
use crate::frames::{self, Ws};
use crate::ledger::{ConnView, StreamLog};

/// The `rid` of the resume `sync`.
const RESUME: &str = "resume";
/// A connection silent this long is taken for dead (the server pings
/// every `ws.heartbeat_ms`, 25 s by default).
const SILENCE: Duration = Duration::from_secs(60);
/// Frames per connection at most: far above any run's needs, it only makes
/// the loop finite.
const MAX_FRAMES: u64 = 100_000_000;

/// How a connection ended.
pub(crate) enum Ended {
    Stopped,
    Churned,
    /// The close code, if any, and the delay of a `reconnect` frame that
    /// came before it.
    Closed(Option<u16>, Option<Duration>),
}

/// The views of this connection of the two streams, by stream.
#[derive(Default)]
struct Views([ConnView; 2]);

impl Views {
    fn of(&mut self, stream: Stream) -> &mut ConnView {
        &mut self.0[usize::from(stream == Stream::All)]
    }
}

/// The device's log of `stream`.
fn log(dev: &Device, stream: Stream) -> std::sync::MutexGuard<'_, StreamLog> {
    let log = match stream {
        Stream::Inbox => &dev.inbox,
        Stream::All => &dev.all,
    };
    log.lock().expect("log lock")
}

/// Reads one connection until it ends or the run stops.
pub(crate) async fn serve(
    dev: &Device,
    ctx: &Ctx,
    ws: &mut Ws,
    outbox: &mut mpsc::Receiver<WsMessage>,
    stop: &mut watch::Receiver<bool>,
) -> Ended {
    let mut hold = dev.hold.subscribe();
    let mut views = Views::default();
    let mut synced = false;
    let mut acks = Acks::default();
    let mut after = None;
    for _ in 0..MAX_FRAMES {
        if *hold.borrow_and_update() {
            tokio::select! {
                _ = stop.changed() => return close(ws, Ended::Stopped).await,
                _ = hold.changed() => continue,
            }
        }
        let ack_at = acks.due.unwrap_or_else(|| Instant::now() + SILENCE);
        let next = tokio::select! {
            _ = stop.changed() => return close(ws, Ended::Stopped).await,
            _ = dev.churn.notified() => return close(ws, Ended::Churned).await,
            _ = hold.changed() => continue,
            Some(frame) = outbox.recv() => {
                if ws.send(frame).await.is_err() {
                    return Ended::Closed(None, None);
                }
                continue;
            }
            _ = tokio::time::sleep_until(ack_at), if acks.due.is_some() => {
                if !send_acks(ws, ctx, &mut acks).await {
                    return Ended::Closed(None, None);
                }
                continue;
            }
            next = tokio::time::timeout(SILENCE, ws.next()) => next,
        };
        let msg = match next {
            Ok(Some(Ok(msg))) => msg,
            _ => return Ended::Closed(None, after),
        };
        if let WsMessage::Close(c) = &msg {
            return Ended::Closed(c.as_ref().map(|c| u16::from(c.code)), after);
        }
        let frame = match frames::decode(ctx.dial.codec(), &msg) {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                ctx.observer
                    .protocol_error(dev, &format!("undecodable frame: {e}"));
                continue;
            }
            None => continue,
        };
        let answer = match frame {
            ServerFrame::Message(m) => {
                let arrival = log(dev, m.stream).record(m.seq, m.id, views.of(m.stream));
                ctx.observer.message(dev, &m, arrival);
                if !dev.silent() {
                    acks.note(m.stream, m.seq, ctx.ack_delay);
                }
                if acks.due.is_some()
                    && ctx.ack_delay.is_zero()
                    && !send_acks(ws, ctx, &mut acks).await
                {
                    return Ended::Closed(None, None);
                }
                None
            }
            ServerFrame::Reconnect { after_ms } => {
                ctx.observer.reconnect(dev, after_ms);
                after = Some(Duration::from_millis(after_ms));
                None
            }
            ServerFrame::Reset { stream, seq } => {
                log(dev, stream).reset(seq, views.of(stream));
                None
            }
            // The first counts frame ends the welcome's backlog.
            ServerFrame::Counts(_) if !synced && !dev.silent() => {
                synced = true;
                Some(resume_frame(dev, &mut views))
            }
            ServerFrame::Reply(r) if r.rid == Some(Rid::Str(RESUME.into())) => {
                if !r.ok {
                    ctx.observer
                        .protocol_error(dev, &format!("sync refused: {r:?}"));
                    return close(ws, Ended::Closed(None, None)).await;
                }
                views.0.iter_mut().for_each(ConnView::sync_answered);
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
            if ws.send(encode(ctx, frame)).await.is_err() {
                return Ended::Closed(None, None);
            }
        }
    }
    close(ws, Ended::Closed(None, None)).await
}

/// A client frame from its JSON form (the wire shape is the contract; the
/// Rust type may grow optional fields), in the connection's codec.
fn encode(ctx: &Ctx, frame: serde_json::Value) -> WsMessage {
    let frame: ClientFrame = serde_json::from_value(frame).expect("a valid client frame");
    frames::encode(ctx.dial.codec(), &frame)
}

/// Writes the acknowledgements due; false when the connection is gone.
async fn send_acks(ws: &mut Ws, ctx: &Ctx, acks: &mut Acks) -> bool {
    for frame in acks.take() {
        if ws.feed(encode(ctx, frame)).await.is_err() {
            return false;
        }
    }
    ws.flush().await.is_ok()
}

/// Acknowledgements waiting to go out: the highest seq per stream.
#[derive(Default)]
struct Acks {
    upto: [u64; 2],
    due: Option<Instant>,
}

impl Acks {
    /// `seq` of `stream` arrived; it is acknowledged within `delay`.
    fn note(&mut self, stream: Stream, seq: u64, delay: Duration) {
        let i = usize::from(stream == Stream::All);
        self.upto[i] = self.upto[i].max(seq);
        self.due.get_or_insert_with(|| Instant::now() + delay);
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

/// The `sync` from the highest seq of each stream the device has, with the
/// id it holds there (the `all` stream only once it has any), noted on
/// the connection's views.
fn resume_frame(dev: &Device, views: &mut Views) -> serde_json::Value {
    let mut frame = serde_json::json!({"type": "sync", "rid": RESUME});
    for (stream, since, since_id) in [
        (Stream::Inbox, "since", "since_id"),
        (Stream::All, "since_all", "since_all_id"),
    ] {
        let (high, id) = {
            let log = log(dev, stream);
            (log.high(), log.id_at(log.high()))
        };
        if stream == Stream::All && high == 0 {
            continue;
        }
        views.of(stream).synced_from(high);
        frame[since] = high.into();
        if let Some(id) = id {
            frame[since_id] = id.to_string().into();
        }
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
    fn resume_syncs_from_the_highest_seqs_and_their_ids() {
        let dev = Device::new(0, "u".into());
        let mut views = Views::default();
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
        assert_eq!(f["since_id"], id.to_string());
        assert_eq!(f["since_all_id"], id.to_string());
        let frame: ClientFrame = serde_json::from_value(f).unwrap();
        assert!(matches!(frame, ClientFrame::Sync { .. }));
    }

    #[test]
    fn acks_go_out_as_the_highest_seq_per_stream() {
        let mut acks = Acks::default();
        assert!(acks.due.is_none() && acks.take().is_empty());
        let delay = Duration::from_millis(50);
        acks.note(Stream::Inbox, 3, delay);
        acks.note(Stream::Inbox, 5, delay);
        acks.note(Stream::Inbox, 4, delay);
        acks.note(Stream::All, 2, delay);
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
}
