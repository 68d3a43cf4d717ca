//! An incremental parser of the server's WebSocket frames (RFC 6455), fed
//! from a shared scratch buffer: what it keeps between reads is the partial
//! header (at most 10 bytes), the payload length left, the JSON scanner's
//! state for a data message, and — only while a control frame's payload is
//! split across reads — a 125-byte box.
//!
//! Server frames are unmasked; data messages may be fragmented, with control
//! frames between the fragments. Text messages are scanned for the fields in
//! [`Fields`]; binary ones are reported as [`Kind::Other`](super::scan::Kind).

use super::scan::{Fields, Scanner};

pub const OP_CONT: u8 = 0;
pub const OP_TEXT: u8 = 1;
pub const OP_BINARY: u8 = 2;
pub const OP_CLOSE: u8 = 8;
pub const OP_PING: u8 = 9;
pub const OP_PONG: u8 = 10;
/// The most a control frame may carry.
pub const MAX_CONTROL: usize = 125;

/// What a complete frame (or data message) said.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// The last frame of a text or binary message.
    Message(Fields),
    /// A ping's payload, to be echoed in a pong.
    Ping(&'a [u8]),
    Pong,
    /// The close frame's status code, if it had one.
    Close(Option<u16>),
}

/// A violation of the protocol: the connection is given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    Reserved,
    Masked,
    BadOpcode(u8),
    FragmentedControl,
    ControlTooLong,
    UnexpectedContinuation,
    ExpectedContinuation,
    TooLong,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Reserved => f.write_str("reserved bits set"),
            FrameError::Masked => f.write_str("masked server frame"),
            FrameError::BadOpcode(op) => write!(f, "unknown opcode {op}"),
            FrameError::FragmentedControl => f.write_str("fragmented control frame"),
            FrameError::ControlTooLong => f.write_str("control frame over 125 bytes"),
            FrameError::UnexpectedContinuation => f.write_str("continuation without a message"),
            FrameError::ExpectedContinuation => f.write_str("new message inside a fragmented one"),
            FrameError::TooLong => f.write_str("payload length over 2^63"),
        }
    }
}

impl std::error::Error for FrameError {}

/// A control frame's payload split across reads.
struct Control {
    len: u8,
    buf: [u8; MAX_CONTROL],
}

/// The parser's state between reads of one connection.
pub struct FrameParser {
    hdr: [u8; 10],
    hlen: u8,
    in_payload: bool,
    /// Opcode and FIN bit of the frame whose payload is being read.
    op: u8,
    fin: bool,
    /// The data message in progress: 0 (none), [`OP_TEXT`] or [`OP_BINARY`].
    msg: u8,
    remaining: u64,
    control: Option<Box<Control>>,
    scan: Scanner,
}

impl Default for FrameParser {
    fn default() -> Self {
        Self::new()
    }
}

/// Extended length bytes announced by the second header byte.
fn ext_len(b1: u8) -> usize {
    match b1 & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    }
}

impl FrameParser {
    pub const fn new() -> Self {
        FrameParser {
            hdr: [0; 10],
            hlen: 0,
            in_payload: false,
            op: 0,
            fin: false,
            msg: 0,
            remaining: 0,
            control: None,
            scan: Scanner::new(),
        }
    }

    /// Parses the next bytes from the socket, calling `on` for every
    /// complete message and control frame. `on` returns `false` to stop
    /// (the rest of `data` is then left unparsed, and so is the parser's
    /// state): `Ok(true)` says it did.
    pub fn feed<F>(&mut self, mut data: &[u8], on: &mut F) -> Result<bool, FrameError>
    where
        F: FnMut(Event<'_>) -> bool,
    {
        while !data.is_empty() {
            if !self.in_payload {
                let need = if self.hlen < 2 {
                    2
                } else {
                    2 + ext_len(self.hdr[1])
                };
                let have = usize::from(self.hlen);
                let take = (need - have).min(data.len());
                self.hdr[have..have + take].copy_from_slice(&data[..take]);
                self.hlen += take as u8;
                data = &data[take..];
                if self.hlen >= 2 && self.hdr[1] & 0x80 != 0 {
                    return Err(FrameError::Masked);
                }
                if usize::from(self.hlen) < need || need == 2 && ext_len(self.hdr[1]) > 0 {
                    continue;
                }
                self.start_frame()?;
                if self.remaining == 0 && !self.end_frame(&[], on) {
                    return Ok(true);
                }
                continue;
            }
            let n = self.remaining.min(data.len() as u64) as usize;
            let (chunk, rest) = data.split_at(n);
            data = rest;
            self.remaining -= n as u64;
            if self.op <= OP_BINARY {
                if self.msg == OP_TEXT {
                    self.scan.feed(chunk);
                }
                if self.remaining == 0 && !self.end_frame(&[], on) {
                    return Ok(true);
                }
            } else if self.remaining == 0 && self.control.is_none() {
                // The whole payload is in this read: no copy.
                if !self.end_frame(chunk, on) {
                    return Ok(true);
                }
            } else {
                let c = self.control.get_or_insert_with(|| {
                    Box::new(Control {
                        len: 0,
                        buf: [0; MAX_CONTROL],
                    })
                });
                let at = usize::from(c.len);
                c.buf[at..at + n].copy_from_slice(chunk);
                c.len += n as u8;
                if self.remaining == 0 {
                    let c = self.control.take().expect("control buffer");
                    if !self.end_frame(&c.buf[..usize::from(c.len)], on) {
                        return Ok(true);
                    }
                }
            }
        }
        Ok(false)
    }

    fn start_frame(&mut self) -> Result<(), FrameError> {
        let (b0, b1) = (self.hdr[0], self.hdr[1]);
        if b0 & 0x70 != 0 {
            return Err(FrameError::Reserved);
        }
        let (fin, op) = (b0 & 0x80 != 0, b0 & 0x0f);
        let len = match b1 & 0x7f {
            126 => u64::from(u16::from_be_bytes([self.hdr[2], self.hdr[3]])),
            127 => {
                let len = u64::from_be_bytes(self.hdr[2..10].try_into().expect("8 bytes"));
                if len >> 63 != 0 {
                    return Err(FrameError::TooLong);
                }
                len
            }
            n => u64::from(n),
        };
        match op {
            OP_CONT if self.msg == 0 => return Err(FrameError::UnexpectedContinuation),
            OP_CONT => {}
            OP_TEXT | OP_BINARY if self.msg != 0 => return Err(FrameError::ExpectedContinuation),
            OP_TEXT | OP_BINARY => self.msg = op,
            OP_CLOSE | OP_PING | OP_PONG if !fin => return Err(FrameError::FragmentedControl),
            OP_CLOSE | OP_PING | OP_PONG if len > MAX_CONTROL as u64 => {
                return Err(FrameError::ControlTooLong)
            }
            OP_CLOSE | OP_PING | OP_PONG => {}
            _ => return Err(FrameError::BadOpcode(op)),
        }
        self.hlen = 0;
        self.in_payload = true;
        self.op = op;
        self.fin = fin;
        self.remaining = len;
        Ok(())
    }

    /// The current frame's payload is complete (`control`: a control
    /// frame's whole payload).
    fn end_frame<F>(&mut self, control: &[u8], on: &mut F) -> bool
    where
        F: FnMut(Event<'_>) -> bool,
    {
        self.in_payload = false;
        match self.op {
            OP_PING => on(Event::Ping(control)),
            OP_PONG => on(Event::Pong),
            OP_CLOSE => on(Event::Close(
                (control.len() >= 2).then(|| u16::from_be_bytes([control[0], control[1]])),
            )),
            _ if self.fin => {
                let fields = if self.msg == OP_TEXT {
                    self.scan.finish()
                } else {
                    Fields::default()
                };
                self.msg = 0;
                on(Event::Message(fields))
            }
            _ => true,
        }
    }
}

/// Appends a client frame (masked with `mask`, as every client frame must
/// be) carrying `payload`, at most [`MAX_CONTROL`] bytes: a pong or a close.
pub fn write_control(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    assert!(payload.len() <= MAX_CONTROL, "control payload too long");
    out.push(0x80 | opcode);
    out.push(0x80 | payload.len() as u8);
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::lean::scan::Kind;

    /// A server frame: unmasked, with the shortest length encoding unless
    /// `long` asks for the 8-byte one.
    pub(crate) fn frame(fin: bool, op: u8, payload: &[u8], long: bool) -> Vec<u8> {
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

    /// Events as owned values, to compare runs.
    #[derive(Debug, PartialEq, Eq, Clone)]
    pub(crate) enum Owned {
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
        let mut p = FrameParser::new();
        p.feed(&s[..100_000], &mut |_| true).unwrap();
        assert!(p.control.is_none(), "a data frame keeps no buffer");
    }

    #[test]
    fn a_split_control_frame_is_buffered_only_until_complete() {
        let s = frame(true, OP_PING, b"0123456789", false);
        let mut p = FrameParser::new();
        let mut got = Vec::new();
        p.feed(&s[..5], &mut |ev| {
            got.push(own(ev));
            true
        })
        .unwrap();
        assert!(p.control.is_some());
        p.feed(&s[5..], &mut |ev| {
            got.push(own(ev));
            true
        })
        .unwrap();
        assert!(p.control.is_none());
        assert_eq!(got, vec![Owned::Ping(b"0123456789".to_vec())]);
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
}
