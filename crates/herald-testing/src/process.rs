//! What starting a redis-server needs: the binary, a free port, a temporary
//! directory, and waiting until it is ready.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a server, a cluster or a Sentinel may take to become ready.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(20);

/// `name` (`redis-server`, `redis-cli`) found in `PATH`; panics with an
/// install hint if it is not there.
pub(crate) fn redis_binary(name: &str) -> PathBuf {
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
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(what: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "herald-{what}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port nobody listens on right now (the OS picks it). For a cluster node
/// the bus port (port + 10000) must be free too.
pub(crate) fn free_port(with_bus: bool) -> u16 {
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

/// Polls `ok` with a growing delay (5 ms up to 100 ms) until it is true;
/// panics after [`START_TIMEOUT`].
pub(crate) fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
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
