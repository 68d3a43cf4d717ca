//! The lean client's parts: the frame parser, the JSON scanner, a
//! connection's state, the reactors and the upgrade, fed with bytes as a
//! gateway writes them.

mod conn;
mod frame;
mod handshake;
mod reactor;
mod scan;

use std::sync::Mutex;

use herald_loadtest::lean::frame::OP_TEXT;
use herald_loadtest::lean::Sink;

/// A server frame: unmasked, with the shortest length encoding unless
/// `long` asks for the 8-byte one.
pub fn frame(fin: bool, op: u8, payload: &[u8], long: bool) -> Vec<u8> {
    let mut f = vec![u8::from(fin) << 7 | op];
    match payload.len() {
        n if long => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
        n if n < 126 => f.push(n as u8),
        n if n <= 0xffff => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    f
}

/// Records what a connection counted.
#[derive(Default)]
pub struct Tally {
    pub delivered: Mutex<Vec<(u32, u64)>>,
    pub duplicates: Mutex<u64>,
    pub closed: Mutex<u64>,
}

impl Sink for Tally {
    fn delivered(&self, round: u32, sent_us: u64) {
        self.delivered.lock().unwrap().push((round, sent_us));
    }
    fn duplicate(&self) {
        *self.duplicates.lock().unwrap() += 1;
    }
    fn closed(&self) {
        *self.closed.lock().unwrap() += 1;
    }
}

pub fn stamped(run: u32, round: u32) -> Vec<u8> {
    let m = format!(
        r#"{{"type":"message","seq":{round},"data":{{"lt_run":{run},"lt_round":{round},"lt_sent_us":{}}}}}"#,
        100 + round
    );
    frame(true, OP_TEXT, m.as_bytes(), false)
}
