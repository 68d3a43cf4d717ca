//! One standalone (or cluster-enabled) redis-server process.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{free_port, redis_binary, TempDir, START_TIMEOUT};
use crate::resp;
use crate::tls::Secure;
use crate::watchdog::{kill_watched, watchdog};

/// One redis-server process, without persistence, on a free port.
pub struct RedisServer {
    child: Option<Child>,
    /// `sh` that SIGKILLs the server when our end of its stdin closes, which
    /// happens when this process exits in any way: servers kept in a
    /// `static` are never dropped, and must not outlive the test binary.
    watchdog: Option<Child>,
    port: u16,
    extra: Vec<String>,
    dir: TempDir,
    /// TLS port, certificates and ACL user of [`RedisServer::start_secure`].
    secure: Option<(Secure, u16)>,
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

    /// Like [`RedisServer::start`], secured like a managed Redis
    /// ([`Secure`]): TLS on [`RedisServer::tls_port`] with client
    /// certificates required, and only the ACL user can log in (on either
    /// port). The plain port stays open for the harness's own commands,
    /// which log in as that user.
    pub fn start_secure(secure: &Secure) -> RedisServer {
        Self::start_secure_with(secure, &[])
    }

    /// [`RedisServer::start_secure`] with extra `redis-server` arguments.
    pub fn start_secure_with(secure: &Secure, extra: &[&str]) -> RedisServer {
        Self::launch_with(extra, false, Some(secure))
    }

    /// Starts a server with `extra` arguments; `cluster` picks a port whose
    /// cluster bus port (port + 10000) is free too.
    pub(crate) fn launch(extra: &[&str], cluster: bool) -> RedisServer {
        Self::launch_with(extra, cluster, None)
    }

    fn launch_with(extra: &[&str], cluster: bool, secure: Option<&Secure>) -> RedisServer {
        let mut attempts = 0;
        loop {
            let mut server = RedisServer {
                child: None,
                watchdog: None,
                port: free_port(cluster),
                extra: extra.iter().map(|s| s.to_string()).collect(),
                dir: TempDir::new("redis"),
                secure: secure.map(|s| (s.clone(), free_port(false))),
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
            .args(["--dir", &self.dir.path().to_string_lossy()])
            .args(&self.extra)
            .args(
                self.secure
                    .iter()
                    .flat_map(|(secure, tls_port)| [secure.tls_args(*tls_port), secure.acl_args()])
                    .flatten(),
            )
            .stdout(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.watchdog = watchdog(&child);
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        let mut delay = Duration::from_millis(5);
        loop {
            if self.command("PING").as_deref() == Some("+PONG") {
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

    /// The TLS port of a [`RedisServer::start_secure`] server.
    pub fn tls_port(&self) -> Option<u16> {
        self.secure.as_ref().map(|(_, port)| *port)
    }

    /// `rediss://127.0.0.1:<tls port>` of a [`RedisServer::start_secure`]
    /// server, without credentials.
    pub fn tls_url(&self) -> Option<String> {
        self.tls_port()
            .map(|port| format!("rediss://127.0.0.1:{port}"))
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
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
    /// A secured server's: after `AUTH` as its ACL user.
    pub fn command(&self, cmd: &str) -> Option<String> {
        let auth = self
            .secure
            .as_ref()
            .map(|(s, _)| ["AUTH", s.user.as_str(), s.password.as_str()]);
        resp::command_as(self.port, auth.as_ref().map(|a| &a[..]), cmd)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
