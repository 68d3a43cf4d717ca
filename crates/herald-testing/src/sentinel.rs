//! A primary redis-server watched by one Sentinel, optionally with a
//! replica for failover tests.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{free_port, redis_binary, wait_until, TempDir, START_TIMEOUT};
use crate::redis_server::RedisServer;
use crate::resp::{Resp, RespConn};
use crate::tls::Secure;
use crate::watchdog::{kill_watched, watchdog};

/// The service name the [`RedisSentinel`] monitors.
pub const SENTINEL_SERVICE: &str = "herald";

/// `SENTINEL get-master-addr-by-name <service>` on a sentinel: the
/// primary's `(host, port)`, or None if the sentinel does not answer or
/// does not know the service (`*-1`, an error). `password`: the
/// Sentinel's own.
fn sentinel_master_addr(port: u16, service: &str, password: Option<&str>) -> Option<(String, u16)> {
    let mut conn = RespConn::connect(("127.0.0.1", port)).ok()?;
    if let Some(password) = password {
        if conn.call(&["AUTH", password]).ok()? != Resp::Simple("OK".into()) {
            return None;
        }
    }
    let reply = conn
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
    /// [`RedisSentinel::start_secure`]: the primary's security, the
    /// Sentinel's TLS port and its own password.
    secure: Option<(Secure, u16, String)>,
}

impl RedisSentinel {
    /// Starts the primary and the Sentinel on free ports and waits until the
    /// Sentinel answers `SENTINEL get-master-addr-by-name` with the
    /// primary's address.
    pub fn start() -> RedisSentinel {
        Self::launch(RedisServer::start(), None, None)
    }

    /// A secured primary ([`RedisServer::start_secure`]) watched by a
    /// Sentinel that is secured the same way and has a password of its own
    /// (`requirepass`, as managed Sentinels do): it listens with TLS on
    /// [`RedisSentinel::tls_port`] and reaches the primary's TLS port as
    /// the ACL user (`sentinel auth-user`/`auth-pass`), so it reports that
    /// port. Its plain port is for the harness, which logs in.
    pub fn start_secure(secure: &Secure, sentinel_password: &str) -> RedisSentinel {
        let primary = RedisServer::start_secure(secure);
        Self::launch(
            primary,
            None,
            Some((
                secure.clone(),
                free_port(false),
                sentinel_password.to_owned(),
            )),
        )
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
        Self::launch(primary, Some(replica), None)
    }

    fn launch(
        primary: RedisServer,
        replica: Option<RedisServer>,
        secure: Option<(Secure, u16, String)>,
    ) -> RedisSentinel {
        let mut sentinel = RedisSentinel {
            primary,
            replica,
            sentinel: None,
            watchdog: None,
            sentinel_port: free_port(false),
            dir: TempDir::new("sentinel"),
            secure,
        };
        let mut attempts = 0;
        // The port may be taken between picking and binding it.
        while !sentinel.spawn_sentinel() {
            attempts += 1;
            assert!(attempts < 5, "redis sentinel did not start (see stderr)");
            sentinel.sentinel_port = free_port(false);
            if let Some((_, tls_port, _)) = sentinel.secure.as_mut() {
                *tls_port = free_port(false);
            }
        }
        sentinel
    }

    /// Writes the config and spawns the Sentinel; false if the process
    /// exited before answering (e.g. its port was taken).
    fn spawn_sentinel(&mut self) -> bool {
        // Sentinel rewrites its config file, so it lives in our temp dir.
        let conf = self.dir.path().join("sentinel.conf");
        // A secured Sentinel watches the primary's TLS port, so that is
        // the address it hands to clients.
        let port = self.primary.tls_port().unwrap_or(self.primary.port());
        let secured = self
            .secure
            .as_ref()
            .map(|(secure, tls_port, password)| {
                let args = secure.tls_args(*tls_port);
                // `--tls-port 123` as the config line `tls-port 123`.
                let tls: String = args
                    .chunks(2)
                    .map(|kv| format!("{} {}\n", kv[0].trim_start_matches('-'), kv[1]))
                    .collect();
                format!(
                    "{tls}requirepass {password}\n\
                     sentinel auth-user {SENTINEL_SERVICE} {user}\n\
                     sentinel auth-pass {SENTINEL_SERVICE} {pass}\n",
                    user = secure.user,
                    pass = secure.password,
                )
            })
            .unwrap_or_default();
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
                 {known_replica}\
                 {secured}",
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
            if self.master_addr().as_ref() == Some(&expected) {
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

    /// `rediss-sentinel://127.0.0.1:<tls port>?sentinelServiceName=herald`
    /// of a [`RedisSentinel::start_secure`] Sentinel, without credentials.
    pub fn tls_url(&self) -> Option<String> {
        self.tls_port().map(|port| {
            format!("rediss-sentinel://127.0.0.1:{port}?sentinelServiceName={SENTINEL_SERVICE}")
        })
    }

    /// The Sentinel's TLS port ([`RedisSentinel::start_secure`]).
    pub fn tls_port(&self) -> Option<u16> {
        self.secure.as_ref().map(|(_, port, _)| *port)
    }

    pub fn sentinel_port(&self) -> u16 {
        self.sentinel_port
    }

    /// The primary's address as the Sentinel reports it now.
    pub fn master_addr(&self) -> Option<(String, u16)> {
        let password = self.secure.as_ref().map(|(_, _, p)| p.as_str());
        sentinel_master_addr(self.sentinel_port, SENTINEL_SERVICE, password)
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
