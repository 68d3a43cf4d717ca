//! A connection's state: the welcome first, rounds counted once, pings
//! and a close answered.

use herald_loadtest::lean::conn::{Conn, ConnError};
use herald_loadtest::lean::frame::{OP_CLOSE, OP_PING, OP_TEXT};

use super::{frame, stamped, Tally};

fn unmask(frame: &[u8]) -> (u8, Vec<u8>) {
    assert_eq!(frame[1] & 0x80, 0x80, "client frames are masked");
    let len = usize::from(frame[1] & 0x7f);
    let mask = &frame[2..6];
    let payload = frame[6..6 + len]
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ mask[i % 4])
        .collect();
    (frame[0], payload)
}

#[test]
fn counts_rounds_once_in_order_and_ignores_other_runs() {
    let tally = Tally::default();
    let mut c = Conn::new();
    let mut out = Vec::new();
    let mut s = frame(true, OP_TEXT, br#"{"type":"welcome"}"#, false);
    for (run, round) in [(1, 0), (1, 1), (1, 1), (2, 5), (1, 0), (1, 2)] {
        s.extend(stamped(run, round));
    }
    c.on_bytes(&s, 1, &tally, &mut out).unwrap();
    assert!(c.welcomed());
    assert_eq!(
        *tally.delivered.lock().unwrap(),
        vec![(0, 100), (1, 101), (2, 102)]
    );
    assert_eq!(*tally.duplicates.lock().unwrap(), 2);
    assert!(out.is_empty());
}

#[test]
fn the_first_data_frame_must_be_the_welcome() {
    let mut c = Conn::new();
    let mut out = Vec::new();
    let s = stamped(1, 0);
    assert_eq!(
        c.on_bytes(&s, 1, &Tally::default(), &mut out),
        Err(ConnError::NotWelcome)
    );
    // Pings before the welcome are answered.
    let mut c = Conn::new();
    let mut s = frame(true, OP_PING, b"p", false);
    s.extend(frame(true, OP_TEXT, br#"{"type":"welcome"}"#, false));
    c.on_bytes(&s, 1, &Tally::default(), &mut out).unwrap();
    assert!(c.welcomed());
    assert_eq!(unmask(&out), (0x8a, b"p".to_vec()));
}

#[test]
fn answers_a_close_and_reads_nothing_after_it() {
    let tally = Tally::default();
    let mut c = Conn::new();
    let mut out = Vec::new();
    let mut s = frame(true, OP_TEXT, br#"{"type":"welcome"}"#, false);
    s.extend(frame(true, OP_CLOSE, &4000u16.to_be_bytes(), false));
    s.extend(stamped(1, 0));
    c.on_bytes(&s, 1, &tally, &mut out).unwrap();
    assert!(c.closing());
    assert_eq!(unmask(&out), (0x88, 4000u16.to_be_bytes().to_vec()));
    c.on_bytes(&stamped(1, 1), 1, &tally, &mut out).unwrap();
    assert!(tally.delivered.lock().unwrap().is_empty());
}

#[test]
fn the_state_is_small() {
    let size = std::mem::size_of::<Conn>();
    assert!(size <= 128, "Conn is {size} bytes");
}
