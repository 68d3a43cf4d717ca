//! A streaming scanner for the few fields of a JSON server frame that the
//! lean client needs: the top-level `type`, and `data.lt_run`,
//! `data.lt_round` and `data.lt_sent_us` as the unsigned integers that
//! `serde_json::Value::as_u64` gives for them.
//!
//! It sees a message's payload in whatever pieces the socket hands over and
//! keeps a few dozen bytes of state between them: no buffer, no allocation.
//! It follows the JSON structure (strings and their escapes, nesting up to 64
//! levels, arrays against objects), so a key that merely appears inside a
//! string, or a `lt_round` nested deeper than `data`, is not taken. It is not
//! a validator: the server is ours and writes compact, valid JSON.

/// The strings the scanner recognises, by id.
const PATTERNS: [&[u8]; 7] = [
    b"type",
    b"data",
    b"lt_run",
    b"lt_round",
    b"lt_sent_us",
    b"welcome",
    b"message",
];
const TYPE: u8 = 0;
const DATA: u8 = 1;
/// The three `data` fields are ids 2, 3, 4; field `i` of [`Scanner::vals`]
/// is id `i + 2`.
const FIRST_FIELD: u8 = 2;
const WELCOME: u8 = 5;
const MESSAGE: u8 = 6;
/// Candidate sets (bit per id).
const TOP_KEYS: u8 = 1 << TYPE | 1 << DATA;
const DATA_KEYS: u8 = 0b111 << FIRST_FIELD;
const TYPE_VALUES: u8 = 1 << WELCOME | 1 << MESSAGE;
const NO_KEY: u8 = u8::MAX;
const MAX_DEPTH: u8 = 64;

/// What the frame's top-level `type` says, as far as the client cares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kind {
    /// Anything else: another frame type, a binary frame, or bytes that are
    /// not a JSON object.
    #[default]
    Other,
    Welcome,
    Message,
}

/// The scan of one complete message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fields {
    pub kind: Kind,
    pub run: Option<u64>,
    pub round: Option<u64>,
    pub sent_us: Option<u64>,
}

impl Fields {
    /// A `message` frame's load-test stamp `(run, round, sent_us)`, when it
    /// has all three.
    pub fn stamp(&self) -> Option<(u64, u64, u64)> {
        match (self.kind, self.run, self.round, self.sent_us) {
            (Kind::Message, Some(r), Some(n), Some(s)) => Some((r, n, s)),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Before the top-level value.
    Start,
    /// Just after `{`: a key or `}`.
    ObjStart,
    /// After `,` in an object: a key.
    Key,
    KeyStr,
    Colon,
    /// Just after `[`: a value or `]`.
    ArrStart,
    Value,
    Str,
    Num,
    /// `true`, `false`, `null`.
    Lit,
    /// After a value: `,` or the end of its container.
    After,
    /// After the top-level value.
    Done,
    /// Not JSON we understand: the rest is ignored and the message is
    /// [`Kind::Other`].
    Bad,
}

/// The scanner's state between pieces of one message.
#[derive(Clone, Debug)]
pub struct Scanner {
    mode: Mode,
    depth: u8,
    /// Inside a string, the previous byte was a backslash.
    esc: bool,
    /// The object at depth 2 is the top-level `data`.
    in_data: bool,
    /// Ids of the patterns the string being read still matches.
    cand: u8,
    /// Bytes of the string being read so far (saturating).
    pos: u8,
    /// The id of the key whose value comes next, or [`NO_KEY`].
    key: u8,
    num_ok: bool,
    kind: Kind,
    /// Bit `i`: `vals[i]` holds data field `i`.
    have: u8,
    /// Bit `d`: the container at depth `d + 1` is an array.
    arrays: u64,
    num: u64,
    vals: [u64; 3],
}

impl Default for Scanner {
    fn default() -> Self {
        Self::new()
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl Scanner {
    pub const fn new() -> Self {
        Scanner {
            mode: Mode::Start,
            depth: 0,
            esc: false,
            in_data: false,
            cand: 0,
            pos: 0,
            key: NO_KEY,
            num_ok: false,
            kind: Kind::Other,
            have: 0,
            arrays: 0,
            num: 0,
            vals: [0; 3],
        }
    }

    /// Scans the next piece of the message.
    pub fn feed(&mut self, bytes: &[u8]) {
        let mut i = 0;
        while i < bytes.len() {
            match self.mode {
                Mode::Bad => return,
                // The bulk of a frame is strings nobody asked about: skip to
                // the next quote or backslash.
                Mode::Str | Mode::KeyStr if self.cand == 0 && !self.esc => {
                    match bytes[i..].iter().position(|&b| b == b'"' || b == b'\\') {
                        Some(p) => {
                            i += p;
                            self.string_byte(bytes[i]);
                        }
                        None => return,
                    }
                }
                _ => self.byte(bytes[i]),
            }
            i += 1;
        }
    }

    /// Ends the message: returns what it said and resets for the next one.
    pub fn finish(&mut self) -> Fields {
        let fields = if self.mode == Mode::Done {
            let get = |i: usize| (self.have & 1 << i != 0).then_some(self.vals[i]);
            Fields {
                kind: self.kind,
                run: get(0),
                round: get(1),
                sent_us: get(2),
            }
        } else {
            Fields::default()
        };
        *self = Scanner::new();
        fields
    }

    fn bad(&mut self) {
        self.mode = Mode::Bad;
    }

    fn byte(&mut self, b: u8) {
        match self.mode {
            Mode::Start => match b {
                b'{' => self.open(false),
                _ if is_ws(b) => {}
                _ => self.bad(),
            },
            Mode::ObjStart => match b {
                b'"' => self.start_key(),
                b'}' => self.close(false),
                _ if is_ws(b) => {}
                _ => self.bad(),
            },
            Mode::Key => match b {
                b'"' => self.start_key(),
                _ if is_ws(b) => {}
                _ => self.bad(),
            },
            Mode::Colon => match b {
                b':' => self.mode = Mode::Value,
                _ if is_ws(b) => {}
                _ => self.bad(),
            },
            Mode::ArrStart if b == b']' => self.close(true),
            Mode::ArrStart | Mode::Value => self.value(b),
            Mode::KeyStr | Mode::Str => self.string_byte(b),
            Mode::Num => match b {
                b'0'..=b'9' => {
                    match self
                        .num
                        .checked_mul(10)
                        .and_then(|n| n.checked_add(u64::from(b - b'0')))
                    {
                        Some(n) => self.num = n,
                        // Beyond u64: serde_json makes it a float.
                        None => self.num_ok = false,
                    }
                }
                // Fractions and exponents make floats: no `as_u64`.
                b'.' | b'e' | b'E' | b'+' | b'-' => self.num_ok = false,
                _ => {
                    let key = self.key;
                    if self.num_ok && (FIRST_FIELD..FIRST_FIELD + 3).contains(&key) {
                        let i = usize::from(key - FIRST_FIELD);
                        self.vals[i] = self.num;
                        self.have |= 1 << i;
                    }
                    self.end_value();
                    self.byte(b);
                }
            },
            Mode::Lit => {
                if !b.is_ascii_lowercase() {
                    self.end_value();
                    self.byte(b);
                }
            }
            Mode::After => match b {
                b',' => {
                    self.mode = if self.in_array() {
                        Mode::Value
                    } else {
                        Mode::Key
                    }
                }
                b'}' => self.close(false),
                b']' => self.close(true),
                _ if is_ws(b) => {}
                _ => self.bad(),
            },
            Mode::Done => {
                if !is_ws(b) {
                    self.bad()
                }
            }
            Mode::Bad => {}
        }
    }

    fn value(&mut self, b: u8) {
        if is_ws(b) {
            return;
        }
        // A value for `key` begins: whatever an earlier duplicate of the key
        // gave is replaced (serde_json keeps the last one).
        let key = self.key;
        if key == TYPE {
            self.kind = Kind::Other;
        } else if (FIRST_FIELD..FIRST_FIELD + 3).contains(&key) {
            self.have &= !(1 << (key - FIRST_FIELD));
        }
        match b {
            b'{' => {
                let data = key == DATA;
                self.open(false);
                self.in_data |= data;
            }
            b'[' => self.open(true),
            b'"' => {
                self.mode = Mode::Str;
                self.pos = 0;
                self.cand = if key == TYPE { TYPE_VALUES } else { 0 };
            }
            b'0'..=b'9' => {
                self.mode = Mode::Num;
                self.num = u64::from(b - b'0');
                self.num_ok = true;
            }
            b'-' => {
                self.mode = Mode::Num;
                self.num_ok = false;
            }
            b't' | b'f' | b'n' => self.mode = Mode::Lit,
            _ => self.bad(),
        }
    }

    fn start_key(&mut self) {
        self.mode = Mode::KeyStr;
        self.pos = 0;
        self.cand = match self.depth {
            1 => TOP_KEYS,
            2 if self.in_data => DATA_KEYS,
            _ => 0,
        };
    }

    fn string_byte(&mut self, b: u8) {
        if self.esc {
            self.esc = false;
            return;
        }
        match b {
            b'\\' => {
                // serde_json escapes none of the names looked for.
                self.esc = true;
                self.cand = 0;
            }
            b'"' => {
                let pos = usize::from(self.pos);
                let matched = (0..PATTERNS.len() as u8)
                    .find(|&id| self.cand & 1 << id != 0 && PATTERNS[usize::from(id)].len() == pos);
                self.cand = 0;
                if self.mode == Mode::KeyStr {
                    self.key = matched.unwrap_or(NO_KEY);
                    self.mode = Mode::Colon;
                } else {
                    if self.key == TYPE {
                        self.kind = match matched {
                            Some(WELCOME) => Kind::Welcome,
                            Some(MESSAGE) => Kind::Message,
                            _ => Kind::Other,
                        };
                    }
                    self.end_value();
                }
            }
            _ => {
                if self.cand != 0 {
                    let pos = usize::from(self.pos);
                    for (id, pattern) in PATTERNS.iter().enumerate() {
                        if self.cand & 1 << id != 0 && pattern.get(pos) != Some(&b) {
                            self.cand &= !(1 << id);
                        }
                    }
                }
                self.pos = self.pos.saturating_add(1);
            }
        }
    }

    fn open(&mut self, array: bool) {
        if self.depth >= MAX_DEPTH {
            return self.bad();
        }
        if array {
            self.arrays |= 1 << self.depth;
        } else {
            self.arrays &= !(1 << self.depth);
        }
        self.depth += 1;
        self.key = NO_KEY;
        self.mode = if array {
            Mode::ArrStart
        } else {
            Mode::ObjStart
        };
    }

    fn in_array(&self) -> bool {
        self.depth > 0 && self.arrays & 1 << (self.depth - 1) != 0
    }

    fn close(&mut self, array: bool) {
        if self.depth == 0 || self.in_array() != array {
            return self.bad();
        }
        if self.depth == 2 && !array {
            self.in_data = false;
        }
        self.depth -= 1;
        if self.depth == 0 {
            self.mode = Mode::Done;
        } else {
            self.end_value();
        }
    }

    fn end_value(&mut self) {
        self.key = NO_KEY;
        self.mode = Mode::After;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_for_the_fields_the_coordinator_stamps() {
        use crate::scenario::conn::pipe::{ROUND_FIELD, RUN_FIELD, SENT_FIELD};
        let ids = [FIRST_FIELD, FIRST_FIELD + 1, FIRST_FIELD + 2];
        for (name, id) in [RUN_FIELD, ROUND_FIELD, SENT_FIELD].into_iter().zip(ids) {
            assert_eq!(name.as_bytes(), PATTERNS[usize::from(id)]);
        }
    }
}
