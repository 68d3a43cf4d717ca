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
mod tests {
    use super::*;

    #[test]
    fn only_a_split_control_frame_is_buffered_and_only_until_complete() {
        let ping = [&[0x89, 10][..], b"0123456789"].concat();
        let mut p = FrameParser::new();
        let mut pings = 0;
        p.feed(&ping[..5], &mut |_| true).unwrap();
        assert!(p.control.is_some());
        p.feed(&ping[5..], &mut |ev| {
            pings += usize::from(matches!(ev, Event::Ping(b) if b == b"0123456789"));
            true
        })
        .unwrap();
        assert!(p.control.is_none());
        assert_eq!(pings, 1);
        let text = [&[0x81, 126, 0x01, 0x00][..], &[b' '; 256]].concat();
        p.feed(&text[..100], &mut |_| true).unwrap();
        assert!(p.control.is_none(), "a data frame keeps no buffer");
    }
}
