//! One lean connection's state after the HTTP upgrade, and what it does
//! with the server's frames: wait for the `welcome`, count stamped
//! broadcasts exactly as the tungstenite worker does, answer pings, answer
//! a close.

use super::frame::{write_control, Event, FrameError, FrameParser, OP_CLOSE, OP_PONG};
use super::scan::Kind;

/// Where a connection's deliveries and its end are counted (the worker's
/// shared state).
pub trait Sink: Send + Sync {
    /// The first delivery of `round` on a connection, sent at `sent_us`.
    fn delivered(&self, round: u32, sent_us: u64);
    /// A delivery of a round the connection already had.
    fn duplicate(&self);
    /// A welcomed connection has ended.
    fn closed(&self);
}

/// Counts one stamped message `(run, round, sent_us)` on a connection whose
/// newest counted round is `last_round`. A connection may get a round
/// twice when broadcasts are posted to several nodes; only the first
/// counts, the others are counted as duplicates (which a topic publish must
/// not have). Messages of another run are ignored.
pub fn count(last_round: &mut Option<u32>, run: u32, stamp: (u64, u64, u64), sink: &dyn Sink) {
    let (r, round, sent_us) = stamp;
    if r != u64::from(run) {
        return;
    }
    let round = round as u32;
    if last_round.is_some_and(|last| last >= round) {
        sink.duplicate();
        return;
    }
    *last_round = Some(round);
    sink.delivered(round, sent_us);
}

/// Why a connection is given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnError {
    Frame(FrameError),
    /// The first data frame was not a `welcome`.
    NotWelcome,
}

impl std::fmt::Display for ConnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnError::Frame(e) => write!(f, "WebSocket protocol: {e}"),
            ConnError::NotWelcome => f.write_str("expected welcome as the first frame"),
        }
    }
}

impl std::error::Error for ConnError {}

/// A connection's whole state apart from its socket: a few dozen bytes,
/// and no heap unless a control frame is split across reads.
#[derive(Default)]
pub struct Conn {
    parser: FrameParser,
    last_round: Option<u32>,
    welcomed: bool,
    /// The server sent a close frame (answered in `out`): nothing more is
    /// read.
    closing: bool,
}

impl Conn {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn welcomed(&self) -> bool {
        self.welcomed
    }

    pub fn closing(&self) -> bool {
        self.closing
    }

    /// Handles bytes read from the socket. Frames to send back (pongs, the
    /// answer to a close) are appended to `out`, masked at random as RFC
    /// 6455 asks of a client.
    pub fn on_bytes(
        &mut self,
        data: &[u8],
        run: u32,
        sink: &dyn Sink,
        out: &mut Vec<u8>,
    ) -> Result<(), ConnError> {
        if self.closing {
            return Ok(());
        }
        let Conn {
            parser,
            last_round,
            welcomed,
            closing,
        } = self;
        let mut error = None;
        parser
            .feed(data, &mut |ev| match ev {
                Event::Message(fields) if !*welcomed => {
                    if fields.kind == Kind::Welcome {
                        *welcomed = true;
                        true
                    } else {
                        error = Some(ConnError::NotWelcome);
                        false
                    }
                }
                Event::Message(fields) => {
                    if let Some(stamp) = fields.stamp() {
                        count(last_round, run, stamp, sink);
                    }
                    true
                }
                Event::Ping(payload) => {
                    write_control(out, OP_PONG, payload, rand::random());
                    true
                }
                Event::Pong => true,
                Event::Close(code) => {
                    let code = code.map(u16::to_be_bytes);
                    write_control(
                        out,
                        OP_CLOSE,
                        code.as_ref().map_or(&[], |c| &c[..]),
                        rand::random(),
                    );
                    *closing = true;
                    false
                }
            })
            .map_err(ConnError::Frame)?;
        error.map_or(Ok(()), Err)
    }
}
