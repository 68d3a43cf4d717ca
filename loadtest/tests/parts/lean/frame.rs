//! The frame parser over every split of a stream of every kind of frame.

use herald_loadtest::lean::frame::*;
use herald_loadtest::lean::scan::{Fields, Kind};

use super::frame;

/// Events as owned values, to compare runs.
#[derive(Debug, PartialEq, Eq, Clone)]
enum Owned {
    Message(Fields),
    Ping(Vec<u8>),
    Pong,
    Close(Option<u16>),
}

fn own(ev: Event<'_>) -> Owned {
    match ev {
        Event::Message(f) => Owned::Message(f),
        Event::Ping(p) => Owned::Ping(p.to_vec()),
        Event::Pong => Owned::Pong,
        Event::Close(c) => Owned::Close(c),
    }
}

/// Feeds `pieces` in order; the events, or the first error.
fn run(pieces: &[&[u8]]) -> Result<Vec<Owned>, FrameError> {
    let mut p = FrameParser::new();
    let mut events = Vec::new();
    for piece in pieces {
        p.feed(piece, &mut |ev| {
            events.push(own(ev));
            true
        })?;
    }
    Ok(events)
}

fn msg(round: u64, pad: usize) -> Vec<u8> {
    format!(
        r#"{{"type":"message","seq":{round},"stream":"all","body":"{}","data":{{"lt_run":5,"lt_round":{round},"lt_sent_us":{}}}}}"#,
        "x".repeat(pad),
        1000 + round
    )
    .into_bytes()
}

fn stamp(round: u64) -> Owned {
    Owned::Message(Fields {
        kind: Kind::Message,
        run: Some(5),
        round: Some(round),
        sent_us: Some(1000 + round),
    })
}

/// A stream with every kind of frame: welcome, messages with 7-, 16-
/// and 64-bit lengths, a message fragmented in three with a ping and a
/// pong between the fragments, a binary message, an empty ping, a close.
fn stream() -> (Vec<u8>, Vec<Owned>) {
    let mut s = Vec::new();
    let mut want = Vec::new();
    s.extend(frame(
        true,
        OP_TEXT,
        br#"{"type":"welcome","user_id":"u"}"#,
        false,
    ));
    want.push(Owned::Message(Fields {
        kind: Kind::Welcome,
        ..Fields::default()
    }));
    s.extend(frame(true, OP_TEXT, &msg(0, 0), false));
    want.push(stamp(0));
    s.extend(frame(true, OP_PING, b"hb-1", false));
    want.push(Owned::Ping(b"hb-1".to_vec()));
    s.extend(frame(true, OP_TEXT, &msg(1, 300), false));
    want.push(stamp(1));
    s.extend(frame(true, OP_TEXT, &msg(2, 10), true));
    want.push(stamp(2));
    let m3 = msg(3, 40);
    s.extend(frame(false, OP_TEXT, &m3[..20], false));
    s.extend(frame(true, OP_PING, &[7; 125], false));
    want.push(Owned::Ping(vec![7; 125]));
    s.extend(frame(false, OP_CONT, &m3[20..50], false));
    s.extend(frame(true, OP_PONG, b"", false));
    want.push(Owned::Pong);
    s.extend(frame(true, OP_CONT, &m3[50..], false));
    want.push(stamp(3));
    s.extend(frame(true, OP_BINARY, &[0x81, 0xa1, b'x'], false));
    want.push(Owned::Message(Fields::default()));
    s.extend(frame(true, OP_PING, b"", false));
    want.push(Owned::Ping(Vec::new()));
    s.extend(frame(true, OP_TEXT, b"", false));
    want.push(Owned::Message(Fields::default()));
    s.extend(frame(true, OP_CLOSE, &1001u16.to_be_bytes(), false));
    want.push(Owned::Close(Some(1001)));
    (s, want)
}

#[test]
fn parses_a_stream_in_one_read() {
    let (s, want) = stream();
    assert_eq!(run(&[&s]).unwrap(), want);
}

#[test]
fn every_split_point_gives_the_same_events() {
    let (s, want) = stream();
    for cut in 0..=s.len() {
        assert_eq!(run(&[&s[..cut], &s[cut..]]).unwrap(), want, "cut at {cut}");
    }
}

#[test]
fn every_pair_of_split_points_gives_the_same_events() {
    // Three pieces, both cuts anywhere (the stream without its long
    // message, to keep this quadratic run short).
    let mut s = Vec::new();
    s.extend(frame(true, OP_TEXT, &msg(9, 0), false));
    s.extend(frame(true, OP_PING, b"abc", false));
    s.extend(frame(true, OP_TEXT, &msg(10, 130), false));
    s.extend(frame(true, OP_CLOSE, b"", false));
    let want = vec![
        stamp(9),
        Owned::Ping(b"abc".to_vec()),
        stamp(10),
        Owned::Close(None),
    ];
    for a in 0..=s.len() {
        for b in a..=s.len() {
            assert_eq!(
                run(&[&s[..a], &s[a..b], &s[b..]]).unwrap(),
                want,
                "cuts {a} {b}"
            );
        }
    }
}

#[test]
fn byte_by_byte_gives_the_same_events() {
    let (s, want) = stream();
    let pieces: Vec<&[u8]> = s.chunks(1).collect();
    assert_eq!(run(&pieces).unwrap(), want);
}

#[test]
fn a_large_frame_spans_many_reads_without_a_buffer() {
    // 3 MiB of body, read 64 KiB at a time (the reactor's scratch size).
    let m = msg(42, 3 << 20);
    let mut s = frame(true, OP_TEXT, &m, false);
    s.extend(frame(true, OP_PING, b"after", false));
    let pieces: Vec<&[u8]> = s.chunks(64 << 10).collect();
    assert!(pieces.len() > 40);
    assert_eq!(
        run(&pieces).unwrap(),
        vec![stamp(42), Owned::Ping(b"after".to_vec())]
    );
}

#[test]
fn the_callback_can_stop_parsing() {
    let (s, _) = stream();
    let mut p = FrameParser::new();
    let mut n = 0;
    let stopped = p
        .feed(&s, &mut |_| {
            n += 1;
            n < 3
        })
        .unwrap();
    assert!(stopped);
    assert_eq!(n, 3);
}

#[test]
fn protocol_violations_are_errors() {
    let masked = [0x81, 0x80 | 1, 1, 2, 3, 4, b'x'];
    assert_eq!(run(&[&masked]), Err(FrameError::Masked));
    assert_eq!(run(&[&[0xc1, 0]]), Err(FrameError::Reserved));
    assert_eq!(run(&[&[0x83, 0]]), Err(FrameError::BadOpcode(3)));
    assert_eq!(run(&[&[0x09, 0]]), Err(FrameError::FragmentedControl));
    assert_eq!(
        run(&[&frame(true, OP_PING, &[0; 126], false)]),
        Err(FrameError::ControlTooLong)
    );
    assert_eq!(
        run(&[&frame(true, OP_CONT, b"x", false)]),
        Err(FrameError::UnexpectedContinuation)
    );
    let mut two = frame(false, OP_TEXT, b"{", false);
    two.extend(frame(true, OP_TEXT, b"{}", false));
    assert_eq!(run(&[&two]), Err(FrameError::ExpectedContinuation));
    let mut huge = vec![0x81, 127];
    huge.extend_from_slice(&u64::MAX.to_be_bytes());
    assert_eq!(run(&[&huge]), Err(FrameError::TooLong));
}

#[test]
fn client_control_frames_are_masked() {
    let mut out = Vec::new();
    write_control(&mut out, OP_PONG, b"hello", [1, 2, 3, 4]);
    assert_eq!(&out[..2], &[0x8a, 0x85]);
    assert_eq!(&out[2..6], &[1, 2, 3, 4]);
    let unmasked: Vec<u8> = out[6..]
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ [1, 2, 3, 4][i % 4])
        .collect();
    assert_eq!(unmasked, b"hello");
}
