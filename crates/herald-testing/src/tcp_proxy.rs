//! A small TCP proxy for fault tests: put it between a client (a `herald`
//! node) and a server (Redis), then [`TcpProxy::cut`] the link and
//! [`TcpProxy::restore`] it.
//!
//! Std only: one listener thread, and two copy threads per proxied
//! connection (one per direction).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the proxy waits for the upstream server to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A TCP proxy from a free port on 127.0.0.1 to `target`.
///
/// While cut, the proxy has no connection open to `target`: [`cut`]
/// shuts every proxied connection down (both sides see the end of the
/// stream), and each new connection is accepted and closed at once
/// without any upstream connection, so a client sees Redis as
/// unreachable: its connects fail right after the TCP handshake.
/// [`restore`] lets new connections through again; connections cut
/// stay cut (the client reconnects, as after any network fault).
///
/// [`cut`]: TcpProxy::cut
/// [`restore`]: TcpProxy::restore
pub struct TcpProxy {
    addr: SocketAddr,
    target: SocketAddr,
    shared: Arc<Shared>,
    listener: Option<JoinHandle<()>>,
}

struct Shared {
    /// The live proxied connections, by id: (client side, upstream side).
    /// Cutting takes this lock, so a connection is either registered
    /// before a cut (and shut down by it) or refused after it.
    conns: Mutex<Conns>,
    stop: AtomicBool,
    /// Connections proxied to the target since the start.
    proxied: AtomicUsize,
    /// Connections closed at once because the link was cut.
    refused: AtomicUsize,
    next_id: AtomicU64,
}

#[derive(Default)]
struct Conns {
    cut: bool,
    live: HashMap<u64, (TcpStream, TcpStream)>,
}

impl TcpProxy {
    /// Starts a proxy to `target` on a free port of 127.0.0.1.
    pub fn start(target: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy's port");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            conns: Mutex::default(),
            stop: AtomicBool::new(false),
            proxied: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
        });
        let accepting = shared.clone();
        let handle = std::thread::Builder::new()
            .name(format!("tcp-proxy-{}", addr.port()))
            .spawn(move || accept_loop(listener, target, accepting))
            .expect("spawn the proxy's listener thread");
        TcpProxy {
            addr,
            target,
            shared,
            listener: Some(handle),
        }
    }

    /// A proxy to a server on 127.0.0.1:`port` (e.g. a
    /// [`RedisServer`](crate::RedisServer)'s).
    pub fn to_port(port: u16) -> TcpProxy {
        TcpProxy::start(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// `redis://127.0.0.1:<proxy port>`: a Redis URL through the proxy.
    pub fn redis_url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Drops every proxied connection and refuses new ones until
    /// [`TcpProxy::restore`]. Returns how many connections were cut.
    pub fn cut(&self) -> usize {
        let mut conns = self.shared.conns.lock().unwrap();
        conns.cut = true;
        let live = std::mem::take(&mut conns.live);
        let n = live.len();
        for (client, upstream) in live.into_values() {
            let _ = client.shutdown(Shutdown::Both);
            let _ = upstream.shutdown(Shutdown::Both);
        }
        n
    }

    /// Lets new connections through again.
    pub fn restore(&self) {
        self.shared.conns.lock().unwrap().cut = false;
    }

    pub fn is_cut(&self) -> bool {
        self.shared.conns.lock().unwrap().cut
    }

    /// Proxied connections open now.
    pub fn live_connections(&self) -> usize {
        self.shared.conns.lock().unwrap().live.len()
    }

    /// Connections proxied to the target since the start.
    pub fn proxied(&self) -> usize {
        self.shared.proxied.load(Ordering::Relaxed)
    }

    /// Connections closed at once because the link was cut.
    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::Relaxed)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.cut();
        // Wake the listener thread, blocked in accept(), so it sees `stop`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(handle) = self.listener.take() {
            let _ = handle.join();
        }
    }
}

fn accept_loop(listener: TcpListener, target: SocketAddr, shared: Arc<Shared>) {
    for incoming in listener.incoming() {
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(client) = incoming else { continue };
        if shared.conns.lock().unwrap().cut {
            refuse(&shared, client);
            continue;
        }
        let Ok(upstream) = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        let (Ok(client_read), Ok(upstream_read)) = (client.try_clone(), upstream.try_clone())
        else {
            continue;
        };
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        {
            // A cut may have come while we connected upstream.
            let mut conns = shared.conns.lock().unwrap();
            if conns.cut {
                drop(conns);
                let _ = upstream.shutdown(Shutdown::Both);
                refuse(&shared, client);
                continue;
            }
            let (Ok(c), Ok(u)) = (client.try_clone(), upstream.try_clone()) else {
                continue;
            };
            conns.live.insert(id, (c, u));
        }
        shared.proxied.fetch_add(1, Ordering::Relaxed);
        // Each direction ends both sides when it ends, so the other copy
        // thread ends too; whichever ends last forgets the connection.
        let ends = Arc::new(AtomicUsize::new(0));
        for (from, to) in [(client_read, upstream), (upstream_read, client)] {
            let (forget, ends) = (shared.clone(), ends.clone());
            let spawned = std::thread::Builder::new()
                .name("tcp-proxy-copy".into())
                .spawn(move || {
                    copy(from, to);
                    if ends.fetch_add(1, Ordering::AcqRel) == 1 {
                        forget.conns.lock().unwrap().live.remove(&id);
                    }
                });
            if spawned.is_err() {
                // Out of threads: this connection cannot be proxied.
                if let Some((c, u)) = shared.conns.lock().unwrap().live.remove(&id) {
                    let _ = c.shutdown(Shutdown::Both);
                    let _ = u.shutdown(Shutdown::Both);
                }
            }
        }
    }
}

fn refuse(shared: &Shared, client: TcpStream) {
    shared.refused.fetch_add(1, Ordering::Relaxed);
    let _ = client.shutdown(Shutdown::Both);
}

/// Copies `from` to `to` until either ends, then shuts both down.
fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::time::Instant;

    /// An echo server on a free port: every line comes back. Runs until the
    /// test process ends (its threads block in accept/read).
    fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let _ = stream.set_nodelay(true);
                    let mut writer = stream.try_clone().unwrap();
                    for line in BufReader::new(stream).lines() {
                        let Ok(line) = line else { return };
                        if writer.write_all(format!("{line}\n").as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    fn connect(proxy: &TcpProxy) -> (TcpStream, BufReader<TcpStream>) {
        let stream = TcpStream::connect(proxy.addr()).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        (stream, reader)
    }

    /// Sends a line and reads the echo; None if the link is down.
    fn echo(
        stream: &mut TcpStream,
        reader: &mut BufReader<TcpStream>,
        text: &str,
    ) -> Option<String> {
        stream.write_all(format!("{text}\n").as_bytes()).ok()?;
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim_end().to_owned()),
        }
    }

    /// Polls `ok` every 5 ms until it holds; panics after 5 s.
    fn wait_for(what: &str, ok: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !ok() {
            assert!(Instant::now() < deadline, "{what}: not within 5 s");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn proxies_both_ways() {
        let proxy = TcpProxy::start(echo_server());
        assert_ne!(proxy.port(), proxy.target().port());
        let (mut a, mut ra) = connect(&proxy);
        let (mut b, mut rb) = connect(&proxy);
        for i in 0..50 {
            assert_eq!(
                echo(&mut a, &mut ra, &format!("a{i}")).as_deref(),
                Some(&*format!("a{i}"))
            );
            assert_eq!(
                echo(&mut b, &mut rb, &format!("b{i}")).as_deref(),
                Some(&*format!("b{i}"))
            );
        }
        // A large write goes through whole.
        let big = "x".repeat(200_000);
        assert_eq!(
            echo(&mut a, &mut ra, &big).map(|s| s.len()),
            Some(big.len())
        );
        assert_eq!(proxy.live_connections(), 2);
        assert_eq!(proxy.proxied(), 2);
    }

    #[test]
    fn cut_drops_connections_and_refuses_new_ones_until_restored() {
        let proxy = TcpProxy::start(echo_server());
        let (mut a, mut ra) = connect(&proxy);
        assert_eq!(echo(&mut a, &mut ra, "before").as_deref(), Some("before"));

        assert_eq!(proxy.cut(), 1);
        assert!(proxy.is_cut());
        assert_eq!(proxy.live_connections(), 0);
        // The open connection is over: its client sees the end of the stream.
        assert_eq!(echo(&mut a, &mut ra, "during"), None);
        // A new one is accepted and closed at once, without reaching the target.
        for _ in 0..3 {
            let (mut c, mut rc) = connect(&proxy);
            assert_eq!(echo(&mut c, &mut rc, "refused"), None);
        }
        wait_for("three refusals counted", || proxy.refused() == 3);
        assert_eq!(proxy.proxied(), 1);

        proxy.restore();
        assert!(!proxy.is_cut());
        let (mut d, mut rd) = connect(&proxy);
        assert_eq!(echo(&mut d, &mut rd, "after").as_deref(), Some("after"));
        assert_eq!(proxy.live_connections(), 1);
        assert_eq!(proxy.proxied(), 2);
    }

    #[test]
    fn a_connection_closed_by_either_side_is_forgotten() {
        let proxy = TcpProxy::start(echo_server());
        let (mut a, mut ra) = connect(&proxy);
        assert_eq!(echo(&mut a, &mut ra, "hi").as_deref(), Some("hi"));
        drop((a, ra));
        wait_for("the closed connection forgotten", || {
            proxy.live_connections() == 0
        });
    }

    #[test]
    fn an_unreachable_target_closes_the_client() {
        // A port nobody listens on.
        let target = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let proxy = TcpProxy::start(target);
        let (mut a, mut ra) = connect(&proxy);
        assert_eq!(echo(&mut a, &mut ra, "anyone?"), None);
        assert_eq!(proxy.proxied(), 0);
    }

    #[test]
    fn dropping_the_proxy_ends_its_connections() {
        let proxy = TcpProxy::start(echo_server());
        let (mut a, mut ra) = connect(&proxy);
        assert_eq!(echo(&mut a, &mut ra, "hi").as_deref(), Some("hi"));
        let addr = proxy.addr();
        drop(proxy);
        assert_eq!(echo(&mut a, &mut ra, "bye"), None);
        // The port is closed: connecting fails, or the connection ends at once.
        if let Ok(mut s) = TcpStream::connect(addr) {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 1];
            assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)));
        }
    }
}
