//! Real redis-server processes for tests: a standalone server, a primary
//! behind one Sentinel, and a small Redis Cluster, each on free ports in a
//! temporary directory, killed on drop. Never touches a Redis it did not
//! start (the shared one on 6379 is left alone).
//!
//! Blocking (std) on purpose: a harness is usually kept in a `OnceLock`
//! shared by the tests of a binary, each of which runs its own runtime.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const START_TIMEOUT: Duration = Duration::from_secs(20);

fn redis_binary(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    match found {
        Some(path) => path,
        None => panic!(
            "{name} not found in PATH: the Redis tests start real Redis servers; \
             install the Debian package redis-server (apt-get install redis-server)"
        ),
    }
}

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "herald-{what}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port nobody listens on right now (the OS picks it). For a cluster node
/// the bus port (port + 10000) must be free too.
fn free_port(with_bus: bool) -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let port = listener.local_addr().unwrap().port();
        if !with_bus {
            return port;
        }
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// Sends one inline command and reads until `parse` recognises a complete
/// reply: `parse` gets the text so far and answers None for "need more",
/// Some(answer) when done. None if the server does not answer.
fn exchange<T>(
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
fn command(port: u16, cmd: &str) -> Option<String> {
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

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + START_TIMEOUT;
    let mut delay = Duration::from_millis(5);
    while !ok() {
        if Instant::now() > deadline {
            panic!("{what}: not ready within {START_TIMEOUT:?}");
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(100));
    }
}

/// An `sh` that SIGKILLs `child` when our end of its stdin closes, which
/// happens when this process exits in any way: harnesses kept in a `static`
/// are never dropped, and must not outlive the test binary.
fn watchdog(child: &Child) -> Option<Child> {
    Command::new("sh")
        .args(["-c", "read _line; kill -9 \"$1\" 2>/dev/null", "sh"])
        .arg(child.id().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

/// Kills a watched process with SIGKILL and waits for it; the watchdog
/// first, so it cannot signal a recycled pid later.
fn kill_watched(watchdog: &mut Option<Child>, child: &mut Option<Child>) {
    if let Some(mut watchdog) = watchdog.take() {
        let _ = watchdog.kill();
        let _ = watchdog.wait();
    }
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// One redis-server process.
pub struct RedisServer {
    child: Option<Child>,
    /// `sh` that SIGKILLs the server when our end of its stdin closes, which
    /// happens when this process exits in any way: harnesses kept in a
    /// `static` are never dropped, and must not outlive the test binary.
    watchdog: Option<Child>,
    port: u16,
    extra: Vec<String>,
    dir: TempDir,
}

impl RedisServer {
    /// Starts a standalone server without persistence on a free port and
    /// waits until it answers PING.
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// Like [`RedisServer::start`] with extra `redis-server` arguments.
    pub fn start_with(extra: &[&str]) -> RedisServer {
        Self::launch(extra, false)
    }

    fn launch(extra: &[&str], cluster: bool) -> RedisServer {
        let mut attempts = 0;
        loop {
            let mut server = RedisServer {
                child: None,
                watchdog: None,
                port: free_port(cluster),
                extra: extra.iter().map(|s| s.to_string()).collect(),
                dir: TempDir::new("redis"),
            };
            // The port may be taken between picking and binding it.
            if server.spawn() {
                return server;
            }
            attempts += 1;
            assert!(attempts < 5, "redis-server did not start (see stderr)");
        }
    }

    /// Spawns on `self.port`; false if the process exited before answering.
    fn spawn(&mut self) -> bool {
        let child = Command::new(redis_binary("redis-server"))
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--dir", &self.dir.0.to_string_lossy()])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.watchdog = watchdog(&child);
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        let mut delay = Duration::from_millis(5);
        loop {
            if command(self.port, "PING").as_deref() == Some("+PONG") {
                return true;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    self.kill();
                    return false;
                }
            }
            if Instant::now() > deadline {
                panic!("redis-server on port {} did not answer PING", self.port);
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(100));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        &self.dir.0
    }

    /// Kills the server with SIGKILL (no shutdown, no save) and waits for it.
    pub fn kill(&mut self) {
        kill_watched(&mut self.watchdog, &mut self.child);
    }

    /// Starts the server again on the same port (killing it first if it
    /// runs) and waits until it answers. Data is gone: nothing is saved.
    pub fn restart(&mut self) {
        self.kill();
        assert!(
            self.spawn(),
            "redis-server could not restart on port {}",
            self.port
        );
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Runs one inline command on the server (e.g. `DBSIZE`) and returns
    /// the first line of the reply, or a bulk string's contents.
    pub fn command(&self, cmd: &str) -> Option<String> {
        command(self.port, cmd)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Redis Cluster of masters only, on free ports.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `masters` (>= 3) cluster-enabled servers, joins them with
    /// `redis-cli --cluster create`, and waits until every node reports
    /// `cluster_state:ok`.
    pub fn start(masters: usize) -> RedisCluster {
        assert!(masters >= 3, "a Redis Cluster needs at least 3 masters");
        let nodes: Vec<RedisServer> = (0..masters)
            .map(|_| {
                RedisServer::launch(
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "5000",
                    ],
                    true,
                )
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new(redis_binary("redis-cli"))
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for node in &nodes {
            wait_until(&format!("cluster node {}", node.port), || {
                node.command("CLUSTER INFO")
                    .is_some_and(|info| info.contains("cluster_state:ok"))
            });
        }
        RedisCluster { nodes }
    }

    /// `redis-cluster://first?node=second&node=...` (fred's syntax).
    pub fn url(&self) -> String {
        let mut url = format!("redis-cluster://127.0.0.1:{}", self.nodes[0].port);
        for (i, node) in self.nodes.iter().enumerate().skip(1) {
            url.push(if i == 1 { '?' } else { '&' });
            url.push_str(&format!("node=127.0.0.1:{}", node.port));
        }
        url
    }

    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    pub fn nodes_mut(&mut self) -> &mut [RedisServer] {
        &mut self.nodes
    }
}

/// The service name the harness's Sentinel monitors.
pub const SENTINEL_SERVICE: &str = "herald";

/// `SENTINEL get-master-addr-by-name <service>` on a sentinel: the
/// primary's `(host, port)`, or None if the sentinel does not answer or
/// does not know the service.
fn sentinel_master_addr(port: u16, service: &str) -> Option<(String, u16)> {
    let cmd = format!("SENTINEL get-master-addr-by-name {service}");
    exchange(port, &cmd, |text| {
        // `*2\r\n$<n>\r\n<host>\r\n$<n>\r\n<port>\r\n`; anything else
        // (`*-1` for an unknown service, an error) is None.
        if !text.starts_with("*2\r\n") {
            return text.contains("\r\n").then_some(None);
        }
        let lines: Vec<&str> = text.split("\r\n").collect();
        if lines.len() < 6 {
            return None;
        }
        Some(
            lines[4]
                .parse()
                .ok()
                .map(|port| (lines[2].to_owned(), port)),
        )
    })
}

/// A primary redis-server watched by one Sentinel (`redis-server <conf>
/// --sentinel`), monitoring it as [`SENTINEL_SERVICE`] with quorum 1.
/// Without a replica ([`RedisSentinel::start`]) the Sentinel can never fail
/// over: a killed primary stays the primary and is found again once
/// restarted on its port. With one ([`RedisSentinel::start_with_replica`])
/// a killed primary is replaced by the replica.
pub struct RedisSentinel {
    primary: RedisServer,
    /// A replica of the primary, for failover tests.
    replica: Option<RedisServer>,
    sentinel: Option<Child>,
    watchdog: Option<Child>,
    sentinel_port: u16,
    dir: TempDir,
}

impl RedisSentinel {
    /// Starts the primary and the Sentinel on free ports and waits until the
    /// Sentinel answers `SENTINEL get-master-addr-by-name` with the
    /// primary's address.
    pub fn start() -> RedisSentinel {
        Self::launch(RedisServer::start(), None)
    }

    /// Like [`RedisSentinel::start`], plus a replica of the primary that the
    /// Sentinel knows from the start, so that killing the primary makes the
    /// Sentinel promote the replica (about 1 s to notice, then the failover).
    pub fn start_with_replica() -> RedisSentinel {
        let primary = RedisServer::start();
        let port = primary.port.to_string();
        let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]);
        wait_until("replica in sync with the primary", || {
            replica
                .command("INFO replication")
                .is_some_and(|info| info.contains("master_link_status:up"))
        });
        Self::launch(primary, Some(replica))
    }

    fn launch(primary: RedisServer, replica: Option<RedisServer>) -> RedisSentinel {
        let mut sentinel = RedisSentinel {
            primary,
            replica,
            sentinel: None,
            watchdog: None,
            sentinel_port: free_port(false),
            dir: TempDir::new("sentinel"),
        };
        let mut attempts = 0;
        // The port may be taken between picking and binding it.
        while !sentinel.spawn_sentinel() {
            attempts += 1;
            assert!(attempts < 5, "redis sentinel did not start (see stderr)");
            sentinel.sentinel_port = free_port(false);
        }
        sentinel
    }

    /// Writes the config and spawns the Sentinel; false if the process
    /// exited before answering (e.g. its port was taken).
    fn spawn_sentinel(&mut self) -> bool {
        // Sentinel rewrites its config file, so it lives in our temp dir.
        let conf = self.dir.0.join("sentinel.conf");
        let port = self.primary.port;
        // Known from the start: otherwise the Sentinel learns of a replica
        // from the primary's INFO, which it polls every 10 s.
        let known_replica = self
            .replica
            .as_ref()
            .map(|r| {
                format!(
                    "sentinel known-replica {SENTINEL_SERVICE} 127.0.0.1 {}\n",
                    r.port
                )
            })
            .unwrap_or_default();
        std::fs::write(
            &conf,
            format!(
                "port {sp}\n\
                 bind 127.0.0.1\n\
                 dir {dir}\n\
                 sentinel monitor {SENTINEL_SERVICE} 127.0.0.1 {port} 1\n\
                 sentinel down-after-milliseconds {SENTINEL_SERVICE} 1000\n\
                 sentinel failover-timeout {SENTINEL_SERVICE} 5000\n\
                 {known_replica}",
                sp = self.sentinel_port,
                dir = self.dir.0.to_string_lossy(),
            ),
        )
        .expect("write sentinel.conf");
        let child = Command::new(redis_binary("redis-server"))
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn redis-server --sentinel");
        self.watchdog = watchdog(&child);
        self.sentinel = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        let mut delay = Duration::from_millis(5);
        let expected = ("127.0.0.1".to_owned(), port);
        loop {
            if sentinel_master_addr(self.sentinel_port, SENTINEL_SERVICE).as_ref()
                == Some(&expected)
            {
                return true;
            }
            if let Some(child) = self.sentinel.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    self.kill_sentinel();
                    return false;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "sentinel on port {} did not report the primary 127.0.0.1:{port}",
                    self.sentinel_port
                );
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(100));
        }
    }

    fn kill_sentinel(&mut self) {
        kill_watched(&mut self.watchdog, &mut self.sentinel);
    }

    /// `redis-sentinel://127.0.0.1:<sentinel port>?sentinelServiceName=herald`
    /// (fred's syntax: the host is a Sentinel, not the primary).
    pub fn url(&self) -> String {
        format!(
            "redis-sentinel://127.0.0.1:{}?sentinelServiceName={SENTINEL_SERVICE}",
            self.sentinel_port
        )
    }

    pub fn sentinel_port(&self) -> u16 {
        self.sentinel_port
    }

    /// The primary's address as the Sentinel reports it now.
    pub fn master_addr(&self) -> Option<(String, u16)> {
        sentinel_master_addr(self.sentinel_port, SENTINEL_SERVICE)
    }

    pub fn primary(&self) -> &RedisServer {
        &self.primary
    }

    /// The primary, e.g. to `kill()` and `restart()` it (same port).
    pub fn primary_mut(&mut self) -> &mut RedisServer {
        &mut self.primary
    }

    /// The replica of [`RedisSentinel::start_with_replica`].
    pub fn replica(&self) -> Option<&RedisServer> {
        self.replica.as_ref()
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        self.kill_sentinel();
        // The primary kills itself when dropped.
    }
}
