use super::*;
use herald_protocol::Category;

/// `entry_head` (Lua) reads seq, stream, id, category from the head of
/// the encoded message, in this order, with these msgpack types, with
/// or without an `expires_at` (the last field), and with a configured
/// category name as long as names may be (a str8).
#[test]
fn message_head_is_what_the_scripts_read() {
    let long: Category = "c".repeat(Category::MAX_LEN).parse().unwrap();
    for (category, expires) in [
        (Category::RESOURCE_SUBSCRIPTION, false),
        (Category::RESOURCE_SUBSCRIPTION, true),
        (long, true),
    ] {
        let mut draft = Draft::new(category.clone(), "b");
        if expires {
            draft.expires_at = Some(draft.ts + std::time::Duration::from_secs(60));
        }
        let message = draft.into_message(Stream::Inbox, 300);
        let bytes = rmp_serde::to_vec_named(&message).unwrap();
        let mut head = vec![bytes[0]];
        head.extend_from_slice(b"\xa3seq\xcd\x01\x2c\xa6stream\xa5inbox\xa2id\xc4\x10");
        head.extend_from_slice(message.id.as_bytes());
        head.extend_from_slice(b"\xa8category");
        let name = category.as_str().as_bytes();
        if name.len() < 32 {
            head.push(0xa0 + name.len() as u8);
        } else {
            head.extend_from_slice(&[0xd9, name.len() as u8]);
        }
        head.extend_from_slice(name);
        assert_eq!(bytes[0] & 0xf0, 0x80, "a fixmap");
        assert_eq!(&bytes[..head.len()], &head[..]);
        // A severity other than normal follows the category; normal
        // is absent.
        assert_ne!(&bytes[head.len()..head.len() + 9], b"\xa8severity");
        let mut severe = message.clone();
        severe.severity = herald_protocol::Severity::Critical;
        severe.tags = vec!["billing".into()];
        let bytes = rmp_serde::to_vec_named(&severe).unwrap();
        head.extend_from_slice(b"\xa8severity\xa8critical");
        assert_eq!(&bytes[1..head.len()], &head[1..]);
    }
}

#[test]
fn seq_splices_into_the_payload() {
    for expires in [false, true] {
        let mut draft = Draft::new(Category::REMIND, "hello");
        draft.title = Some("t".into());
        if expires {
            draft.expires_at = Some(draft.ts + std::time::Duration::from_millis(1500));
        }
        let message = draft.into_message(Stream::Inbox, 0);
        let (head, tail) = split_payload(&message).unwrap();
        for seq in [1u64, 127, 128, 65_535, 1 << 40] {
            let mut bytes = head.to_vec();
            rmp::encode::write_uint(&mut bytes, seq).unwrap();
            bytes.extend_from_slice(&tail);
            let decoded: Message = rmp_serde::from_slice(&bytes).unwrap();
            assert_eq!(
                decoded,
                Message {
                    seq,
                    ..message.clone()
                }
            );
        }
    }
}

/// An expiry is never taken as passed early: the score rounds up, `now`
/// rounds down.
#[test]
fn expiry_scores_round_up_and_now_rounds_down() {
    let at = |ns: i128| OffsetDateTime::from_unix_timestamp_nanos(ns).unwrap();
    assert_eq!(expiry_ms(None), 0);
    assert_eq!(
        expiry_ms(Some(at(1_700_000_000_000_000_000))),
        1_700_000_000_000
    );
    assert_eq!(
        expiry_ms(Some(at(1_700_000_000_000_000_001))),
        1_700_000_000_001
    );
    assert_eq!(
        expiry_ms(Some(at(1_700_000_000_000_999_999))),
        1_700_000_000_001
    );
    assert_eq!(expiry_ms(Some(at(0))), 1, "0 would read as none");
    assert_eq!(expiry_ms(Some(at(-5_000_000))), 1);
    assert_eq!(now_ms(at(1_700_000_000_000_999_999)), "1700000000000");
    assert_eq!(now_ms(at(-1)), "-1");
}
