//! A primary redis-server watched by one Sentinel, optionally with a
//! replica for failover tests.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{free_port, redis_binary, wait_until, TempDir, START_TIMEOUT};
use crate::redis_server::RedisServer;
use crate::resp::{Resp, RespConn};
use crate::watchdog::{kill_watched, watchdog};

/// The service name the [`RedisSentinel`] monitors.
pub const SENTINEL_SERVICE: &str = "herald";

/// `SENTINEL get-master-addr-by-name <service>` on a sentinel: the
/// primary's `(host, port)`, or None if the sentinel does not answer or
/// does not know the service (`*-1`, an error).
fn sentinel_master_addr(port: u16, service: &str) -> Option<(String, u16)> {
    let reply = RespConn::connect(("127.0.0.1", port))
        .ok()?
        .call(&["SENTINEL", "get-master-addr-by-name", service])
        .ok()?;
    match reply {
        Resp::Array(items) => match items.as_slice() {
            [Resp::Bulk(Some(host)), Resp::Bulk(Some(port))] => {
                Some((host.clone(), port.parse().ok()?))
            }
            _ => None,
        },
        _ => None,
    }
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
        let port = primary.port().to_string();
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
        let conf = self.dir.path().join("sentinel.conf");
        let port = self.primary.port();
        // Known from the start: otherwise the Sentinel learns of a replica
        // from the primary's INFO, which it polls every 10 s.
        let known_replica = self
            .replica
            .as_ref()
            .map(|r| {
                format!(
                    "sentinel known-replica {SENTINEL_SERVICE} 127.0.0.1 {}\n",
                    r.port()
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
                dir = self.dir.path().to_string_lossy(),
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
        // The primary (and replica) kill themselves when dropped.
    }
}
