//! What the soak's observer times, window by window, and the frames and
//! clients its mix picks.

use std::sync::Arc;

use herald_harness::clock::unix_micros;
use herald_harness::ledger::Arrival;
use herald_harness::{Device, Observer};
use herald_loadtest::scenario::soak::observer::{SoakObserver, BROADCAST, UNICAST};
use herald_loadtest::scenario::soak::traffic::{encode, pick_online};
use herald_loadtest::stamp::Stamp;
use herald_protocol::{Message, Reply, Rid, ServerFrame, Stream};
use tokio_tungstenite::tungstenite::Message as WsMessage;

fn message(stream: Stream, stamp: Stamp) -> Message {
    let frame = serde_json::json!({
        "type": "message", "seq": 1, "stream": stream, "id": uuid::Uuid::nil(),
        "category": "system", "body": "x", "data": stamp.data(),
        "ts": "2026-11-28T10:00:00Z"
    });
    match serde_json::from_value::<ServerFrame>(frame).unwrap() {
        ServerFrame::Message(m) => m,
        other => panic!("{other:?}"),
    }
}

#[test]
fn deliveries_of_this_run_are_timed_by_kind() {
    let o = SoakObserver::new(7, 2);
    let dev = Device::new(1, "u".into());
    let now = unix_micros();
    let st = |run, trial| Stamp {
        run,
        trial,
        k: 0,
        sched_us: now - 5_000,
    };
    o.message(
        &dev,
        &message(Stream::Inbox, st(7, UNICAST)),
        Arrival::First,
    );
    o.message(
        &dev,
        &message(Stream::Inbox, st(7, UNICAST)),
        Arrival::Again,
    );
    o.message(
        &dev,
        &message(Stream::All, st(7, BROADCAST)),
        Arrival::First,
    );
    o.message(
        &dev,
        &message(Stream::Inbox, st(8, UNICAST)),
        Arrival::First,
    );
    let acc = o.take();
    assert_eq!((acc.unicast_received, acc.broadcast_received), (1, 1));
    assert!(acc.unicast.summary().p50_us >= 5_000);
    assert_eq!(o.take().unicast_received, 0, "a new window starts empty");
}

#[test]
fn marks_and_reconnects_are_timed() {
    let o = SoakObserver::new(7, 2);
    let dev = Device::new(1, "u".into());
    o.mark_sent(5);
    o.reply(&dev, &Reply::ok(Rid::Int(5)));
    o.reply(&dev, &Reply::ok(Rid::Int(6))); // not ours
    o.mark_sent(9);
    o.expire_marks(0);
    o.churning(1);
    o.resumed(&dev);
    o.resumed(&dev); // only once per churn
    let acc = o.take();
    assert_eq!((acc.marks_ok, acc.mark_errors, acc.churned), (1, 1, 1));
    assert_eq!(acc.reconnect.summary().count, 1);
}

#[test]
fn marks_encode_as_the_protocol_says() {
    let frame = serde_json::json!({"type": "mark", "rid": 3, "state": "read", "all": true});
    let WsMessage::Text(t) = encode(herald_protocol::Codec::Json, frame) else {
        panic!("JSON is text")
    };
    let back: serde_json::Value = serde_json::from_str(&t).unwrap();
    assert_eq!(
        (back["type"].as_str(), back["all"].as_bool()),
        (Some("mark"), Some(true))
    );
}

#[test]
fn only_online_clients_are_picked() {
    let devices: Vec<Arc<Device>> = (0..4).map(|i| Device::new(i, format!("u{i}"))).collect();
    assert!(pick_online(&devices, &mut rand::make_rng()).is_none());
}
