//! A tiny blocking RESP client: one inline command per connection, one
//! reply, enough for PING, CLUSTER INFO, INFO, GET, DBSIZE and the
//! Sentinel's address query.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Sends one inline command and reads until `parse` recognises a complete
/// reply: `parse` gets the text so far and answers None for "need more",
/// Some(answer) when done. None if the server does not answer.
pub(crate) fn exchange<T>(
    port: u16,
    cmd: &str,
    mut parse: impl FnMut(&str) -> Option<Option<T>>,
) -> Option<T> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(format!("{cmd}\r\n").as_bytes()).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(answer) = parse(&String::from_utf8_lossy(&buf)) {
            return answer;
        }
    }
}

/// One command, one reply (enough of RESP for PING, CLUSTER INFO and GET):
/// a bulk string's contents, or the first line of anything else.
pub(crate) fn command(port: u16, cmd: &str) -> Option<String> {
    exchange(port, cmd, |text| {
        let line_end = text.find("\r\n")?;
        match text.as_bytes()[0] {
            b'$' => {
                let Ok(len) = text[1..line_end].parse::<usize>() else {
                    return Some(None);
                };
                let body = line_end + 2;
                (text.len() >= body + len).then(|| Some(text[body..body + len].to_owned()))
            }
            _ => Some(Some(text[..line_end].to_owned())),
        }
    })
}
