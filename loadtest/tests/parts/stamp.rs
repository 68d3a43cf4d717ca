//! Stamps: read from `data` or the body, and from a JSON frame's text;
//! request ids that carry trial and message.

use herald_loadtest::stamp::{from_rid, rid_for, Stamp};
use herald_protocol::{Codec, ServerFrame};

use crate::message as msg;

#[test]
fn stamps_come_from_data_or_body() {
    let st = Stamp {
        run: 5,
        trial: 3,
        k: 7,
        sched_us: 99,
    };
    assert_eq!(Stamp::read(&msg("x", st.data())), Some(st));
    assert_eq!(
        Stamp::read(&msg(&st.body(), serde_json::json!({}))),
        Some(st)
    );
    assert_eq!(Stamp::read(&msg("hello", serde_json::json!({}))), None);
    let frame = Codec::Json.encode_server(&ServerFrame::Message(msg("x", st.data())));
    let text = std::str::from_utf8(&frame).unwrap();
    assert_eq!(Stamp::read_json(text), Some(st));
    assert_eq!(Stamp::read_json(r#"{"type":"reply","ok":true}"#), None);
}

#[test]
fn rids_carry_trial_and_message() {
    for (t, k) in [(0, 0), (1, 12345), (700, (1 << 40) - 1)] {
        assert_eq!(from_rid(rid_for(t, k)), (t, k));
    }
}
