//! The one RESP client of Herald's tests and tools: a blocking connection
//! to a Redis (or a Sentinel) that sends each command as a RESP array and
//! reads the reply as a [`Resp`] value.
//!
//! Several commands may share one connection, which some need: `WAIT`
//! counts the replicas that acknowledged this connection's own writes.
//! Blocking and std-only like the rest of this crate; an async caller runs
//! it on a blocking thread.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long a connect, a write or a read may take before it fails.
const TIMEOUT: Duration = Duration::from_secs(5);

/// A RESP (version 2) reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resp {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<String>),
    Array(Vec<Resp>),
}

impl Resp {
    /// A bulk string's contents, or the first line of any other reply as
    /// Redis writes it (`+PONG`, `:3`, `-ERR …`, `*2`, `$-1`): what callers
    /// that compare a reply with a literal want.
    pub fn first_line(&self) -> String {
        match self {
            Resp::Simple(s) => format!("+{s}"),
            Resp::Error(e) => format!("-{e}"),
            Resp::Int(n) => format!(":{n}"),
            Resp::Bulk(Some(text)) => text.clone(),
            Resp::Bulk(None) => "$-1".to_owned(),
            Resp::Array(items) => format!("*{}", items.len()),
        }
    }
}

/// One connection to a Redis server.
pub struct RespConn {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl RespConn {
    /// Connects to `addr` (e.g. `("127.0.0.1", port)` or `"host:port"`).
    pub fn connect(addr: impl ToSocketAddrs) -> std::io::Result<RespConn> {
        let addr = addr
            .to_socket_addrs()?
            .next()
            .ok_or(std::io::ErrorKind::AddrNotAvailable)?;
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(RespConn {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    /// Sends one command (`["CONFIG", "SET", "k", "v"]`) and reads its reply.
    pub fn call(&mut self, args: &[&str]) -> std::io::Result<Resp> {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.writer.write_all(out.as_bytes())?;
        self.read()
    }

    /// `INFO <section>`: the text of the reply (`name:value` lines).
    pub fn info(&mut self, section: &str) -> std::io::Result<String> {
        match self.call(&["INFO", section])? {
            Resp::Bulk(Some(text)) => Ok(text),
            other => Err(std::io::Error::other(format!("INFO answered {other:?}"))),
        }
    }

    fn read(&mut self) -> std::io::Result<Resp> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end_matches("\r\n");
        if line.is_empty() {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        let (kind, rest) = line.split_at(1);
        let bad = |_| std::io::Error::from(std::io::ErrorKind::InvalidData);
        Ok(match kind {
            "+" => Resp::Simple(rest.to_owned()),
            "-" => Resp::Error(rest.to_owned()),
            ":" => Resp::Int(rest.parse().map_err(bad)?),
            "$" => {
                let len: i64 = rest.parse().map_err(bad)?;
                Resp::Bulk(if len < 0 {
                    None
                } else {
                    Some(self.read_bulk(len as usize)?)
                })
            }
            "*" => {
                let len: i64 = rest.parse().map_err(bad)?;
                let mut items = Vec::new();
                for _ in 0..len.max(0) {
                    items.push(self.read()?);
                }
                Resp::Array(items)
            }
            _ => return Err(std::io::ErrorKind::InvalidData.into()),
        })
    }

    /// A bulk string's `len` bytes and the CRLF after them.
    fn read_bulk(&mut self, len: usize) -> std::io::Result<String> {
        let mut buf = vec![0u8; len + 2];
        self.reader.read_exact(&mut buf)?;
        buf.truncate(len);
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }
}

/// One command (`"INFO replication"`, split at whitespace) on a fresh
/// connection to 127.0.0.1:`port`: [`Resp::first_line`] of the reply, or
/// None if the server does not answer.
#[cfg(test)]
pub(crate) fn command(port: u16, cmd: &str) -> Option<String> {
    command_as(port, None, cmd)
}

/// [`command`] after `auth` (`["AUTH", user, password]`) when given, on the
/// same connection; None if the login is refused.
pub(crate) fn command_as(port: u16, auth: Option<&[&str]>, cmd: &str) -> Option<String> {
    let args: Vec<&str> = cmd.split_whitespace().collect();
    let mut conn = RespConn::connect(("127.0.0.1", port)).ok()?;
    if let Some(auth) = auth {
        if conn.call(auth).ok()? != Resp::Simple("OK".into()) {
            return None;
        }
    }
    Some(conn.call(&args).ok()?.first_line())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-shot server that answers any command with `reply`; what it
    /// read comes out of the receiver.
    fn answering_and_telling(reply: &'static str) -> (u16, std::sync::mpsc::Receiver<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let n = stream.read(&mut buf).unwrap_or(0);
            let _ = tx.send(buf[..n].to_vec());
            stream.write_all(reply.as_bytes()).unwrap();
        });
        (port, rx)
    }

    fn answering(reply: &'static str) -> u16 {
        answering_and_telling(reply).0
    }

    #[test]
    fn commands_go_as_arrays_of_bulk_strings() {
        let (port, read) = answering_and_telling("+OK\r\n");
        let mut conn = RespConn::connect(("127.0.0.1", port)).unwrap();
        assert_eq!(
            conn.call(&["INFO", "memory"]).unwrap(),
            Resp::Simple("OK".into())
        );
        assert_eq!(
            read.recv().unwrap(),
            b"*2\r\n$4\r\nINFO\r\n$6\r\nmemory\r\n"
        );
    }

    #[test]
    fn replies_parse_into_values() {
        let port = answering("*3\r\n$4\r\nhost\r\n:7\r\n$-1\r\n");
        let reply = RespConn::connect(("127.0.0.1", port))
            .unwrap()
            .call(&["SENTINEL", "x"])
            .unwrap();
        assert_eq!(
            reply,
            Resp::Array(vec![
                Resp::Bulk(Some("host".into())),
                Resp::Int(7),
                Resp::Bulk(None)
            ])
        );
    }

    #[test]
    fn first_lines_read_as_redis_writes_them() {
        assert_eq!(command(answering("+PONG\r\n"), "PING").unwrap(), "+PONG");
        assert_eq!(command(answering("$2\r\nab\r\n"), "GET k").unwrap(), "ab");
        assert_eq!(Resp::Error("ERR no".into()).first_line(), "-ERR no");
        assert_eq!(Resp::Array(vec![]).first_line(), "*0");
    }
}
