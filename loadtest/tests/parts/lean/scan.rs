//! The JSON scanner against serde on the same bytes, whole and split.

use herald_loadtest::lean::scan::{Fields, Kind, Scanner};
use herald_protocol::{Codec, ServerFrame, Welcome};

fn scan(bytes: &[u8]) -> Fields {
    let mut s = Scanner::new();
    s.feed(bytes);
    s.finish()
}

/// What the tungstenite worker reads from the same bytes.
fn reference(bytes: &[u8]) -> Fields {
    match Codec::Json.decode_server(bytes) {
        Ok(ServerFrame::Welcome(_)) => Fields {
            kind: Kind::Welcome,
            ..Fields::default()
        },
        Ok(ServerFrame::Message(m)) => {
            let field = |name: &str| m.data.get(name).and_then(|v| v.as_u64());
            Fields {
                kind: Kind::Message,
                run: field("lt_run"),
                round: field("lt_round"),
                sent_us: field("lt_sent_us"),
            }
        }
        _ => Fields::default(),
    }
}

/// A gateway's `message` frame with `data` and `body`, as bytes.
fn message(data: serde_json::Value, body: &str) -> Vec<u8> {
    Codec::Json
        .encode_message(&crate::message(body, data))
        .to_vec()
}

#[test]
fn reads_the_stamp_of_a_gateway_message_frame() {
    let bytes = message(
        serde_json::json!({"lt_run": 12, "lt_round": 3, "lt_sent_us": 1_700_000_000_123_456u64}),
        "loadtest broadcast 3",
    );
    let f = scan(&bytes);
    assert_eq!(f.stamp(), Some((12, 3, 1_700_000_000_123_456)));
    assert_eq!(f, reference(&bytes));
}

#[test]
fn tells_welcome_from_other_frames() {
    let w = Codec::Json.encode_server(&ServerFrame::Welcome(Welcome {
        conn_id: uuid::Uuid::new_v4(),
        user_id: "lt-0-1".into(),
        node_id: "n".into(),
        heartbeat_ms: 1000,
        last_seq: 4,
        last_all_seq: 9,
    }));
    assert_eq!(scan(&w).kind, Kind::Welcome);
    let r = Codec::Json.encode_server(&ServerFrame::Reconnect { after_ms: 5 });
    assert_eq!(scan(&r).kind, Kind::Other);
    assert_eq!(scan(br#"{"type":"messages","data":{}}"#).kind, Kind::Other);
    assert_eq!(scan(br#"{"type":"messag"}"#).kind, Kind::Other);
    assert_eq!(scan(br#"{"type":"message"}"#).kind, Kind::Message);
    assert_eq!(scan(br#"{"type":"mess\u0061ge"}"#).kind, Kind::Other);
}

#[test]
fn agrees_with_serde_on_tricky_frames() {
    let cases: Vec<Vec<u8>> = vec![
        // Keys in strings, nested deeper, in arrays, in other objects.
        message(
            serde_json::json!({"x": {"lt_round": 5}, "lt_run": 1, "lt_round": 2, "lt_sent_us": 3}),
            "\"lt_round\":99",
        ),
        message(
            serde_json::json!({"lt_run": [1, 2], "lt_round": 2, "lt_sent_us": 3}),
            "b",
        ),
        message(
            serde_json::json!({"lt_run": -1, "lt_round": 2.5, "lt_sent_us": 1e3}),
            "b",
        ),
        message(
            serde_json::json!({"lt_run": "1", "lt_round": true, "lt_sent_us": null}),
            "b",
        ),
        message(
            serde_json::json!({"lt_run": u64::MAX, "lt_round": 0, "lt_sent_us": 0}),
            "b",
        ),
        message(serde_json::json!({"a": [[{"lt_run": 1}]], "lt_x": 1}), "b"),
        message(serde_json::json!([]), "b"),
        br#"{"type":"message","data":{"lt_run":1,"lt_round":2,"lt_sent_us":3}}"#.to_vec(),
        br#"{"data":{"lt_run":1,"lt_round":2,"lt_sent_us":3},"type":"counts"}"#.to_vec(),
        br#"{"type":"message","data":{"lt_run":18446744073709551616}}"#.to_vec(),
        br#" { "type" : "message" , "data" : { "lt_run" : 1 , "lt_round" : 2 , "lt_sent_us" : 3 } } "#.to_vec(),
        br#"{"type":"message","data":{"lt_run":1,"lt_run":"x"}}"#.to_vec(),
        br#"{"type":"message","data":{"lt_run":"x","lt_run":4}}"#.to_vec(),
    ];
    for bytes in cases {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let got = scan(&bytes);
        // The reference decodes a whole ServerFrame: hand-written frames
        // that miss a message's required fields are compared on the
        // scanned fields alone.
        let want = reference(&bytes);
        if want.kind == Kind::Message || want.kind == Kind::Welcome {
            assert_eq!(got, want, "{text}");
        } else {
            let loose: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            let field = |n: &str| loose["data"].get(n).and_then(|v| v.as_u64());
            assert_eq!(
                (got.run, got.round, got.sent_us),
                (field("lt_run"), field("lt_round"), field("lt_sent_us")),
                "{text}"
            );
        }
    }
}

#[test]
fn anything_but_a_json_object_is_other() {
    for bytes in [
        &b""[..],
        b"[1,2]",
        b"{\"type\":\"message\"",
        b"{\"type\":\"message\"}}",
        b"{\"type\":\"message\"] ",
        b"{\"type\" \"message\"}",
        b"\x93\x01\x02",
    ] {
        assert_eq!(scan(bytes), Fields::default(), "{bytes:?}");
    }
    let deep = format!(
        "{{\"type\":\"message\",\"d\":{}{}}}",
        "[".repeat(70),
        "]".repeat(70)
    );
    assert_eq!(scan(deep.as_bytes()).kind, Kind::Other);
}

#[test]
fn every_split_gives_the_same_fields() {
    let bytes = message(
        serde_json::json!({"lt_run": 77, "lt_round": 12345, "lt_sent_us": 98765}),
        "body with \\ and \" and {}",
    );
    let whole = scan(&bytes);
    assert_eq!(whole.stamp(), Some((77, 12345, 98765)));
    for cut in 0..=bytes.len() {
        let mut s = Scanner::new();
        s.feed(&bytes[..cut]);
        s.feed(&bytes[cut..]);
        assert_eq!(s.finish(), whole, "cut at {cut}");
    }
    let mut s = Scanner::new();
    for b in &bytes {
        s.feed(std::slice::from_ref(b));
    }
    assert_eq!(s.finish(), whole, "byte by byte");
}
