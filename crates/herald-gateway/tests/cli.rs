//! The `herald` binary: settings from the environment and a TOML file, and
//! the `token` subcommand.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_herald");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_healthy(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = reqwest::get(format!("{base}/healthz")).await {
            if r.status() == 200 {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "node at {base} never became healthy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn token(secret: &str, user: &str) -> String {
    let out = Command::new(BIN)
        .args(["token", "--user", user])
        .env("HERALD__AUTH__JWT_SECRET", secret)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn environment_and_file_settings_drive_the_node() {
    let port = free_port();
    let mut file = tempfile();
    writeln!(
        file.1,
        "[api]\nkey = \"from-file\"\n[ws]\nheartbeat_ms = 1234\n[server]\nworker_threads = 1"
    )
    .unwrap();
    let log = tempfile();
    let child = Command::new(BIN)
        .args(["serve", "--config", file.0.to_str().unwrap()])
        .env("HERALD__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("HERALD__AUTH__JWT_SECRET", "env-secret")
        .env("HERALD__API__KEY", "12345")
        .env("NO_COLOR", "1")
        .stderr(Stdio::from(log.1))
        .spawn()
        .unwrap();
    let _node = Running(child);
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&base).await;
    // The file's runtime size is the node's.
    let logged = std::fs::read_to_string(&log.0).unwrap();
    let listening = logged
        .lines()
        .find(|l| l.contains("herald listening"))
        .unwrap_or_else(|| panic!("no start line in:\n{logged}"));
    assert!(listening.contains("workers=1"), "{listening}");
    // The environment overrides the file's API key.
    let post = |key: &'static str| {
        reqwest::Client::new()
            .post(format!("{base}/v1/messages"))
            .bearer_auth(key)
            .json(&serde_json::json!({"to": {"users": ["zed"]}, "category": "system", "body": "x"}))
            .send()
    };
    assert_eq!(post("from-file").await.unwrap().status(), 401);
    assert_eq!(post("12345").await.unwrap().status(), 202);
    // A token minted with the same secret opens a socket; the file's
    // heartbeat reaches the welcome.
    let url = format!(
        "ws://127.0.0.1:{port}/ws?token={}",
        token("env-secret", "zed")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    use futures_util::StreamExt;
    let first = ws.next().await.unwrap().unwrap().into_text().unwrap();
    let welcome: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(welcome["heartbeat_ms"], 1234);
    assert_eq!(welcome["last_seq"], 1);
    // A token signed with another secret is refused.
    let url = format!("ws://127.0.0.1:{port}/ws?token={}", token("other", "zed"));
    assert!(tokio_tungstenite::connect_async(url).await.is_err());
}

#[test]
fn bad_settings_fail_with_a_message() {
    let out = Command::new(BIN)
        .arg("serve")
        .env("HERALD__WS__HEARTBEAT_MS", "soon")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("heartbeat_ms"), "{err}");
    let out = Command::new(BIN)
        .arg("serve")
        .env(
            "HERALD__SERVER__LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .output()
        .unwrap();
    assert!(!out.status.success(), "no auth configured must not start");
    assert!(String::from_utf8_lossy(&out.stderr).contains("jwt_secret"));
}

fn tempfile() -> (std::path::PathBuf, std::fs::File) {
    let path = std::env::temp_dir().join(format!("herald-test-{}.toml", uuid::Uuid::new_v4()));
    let file = std::fs::File::create(&path).unwrap();
    (path, file)
}

/// `herald config` prints the effective settings with secrets masked; a bad
/// value or an unknown key stops the binary with an error naming it.
#[test]
fn config_is_printed_masked_and_bad_settings_are_named() {
    let out = Command::new(BIN)
        .arg("config")
        .env("HERALD__AUTH__JWT_SECRET", "top-secret")
        .env("HERALD__API__KEY", "api-secret")
        .env("HERALD__REDIS__URL", "redis://app:pw@redis:6379")
        .env("HERALD__WS__HEARTBEAT_MS", "1234")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(printed.contains("heartbeat_ms = 1234"), "{printed}");
    assert!(printed.contains("redis://app:***@redis:6379"), "{printed}");
    for secret in ["top-secret", "api-secret", ":pw@"] {
        assert!(!printed.contains(secret), "{secret} leaked:\n{printed}");
    }
    let run = |key: &str, value: &str| {
        let out = Command::new(BIN)
            .arg("config")
            .env(key, value)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{key}={value} was accepted");
        String::from_utf8(out.stderr).unwrap()
    };
    let err = run("HERALD__WS__HEARTBEAT_MS", "0");
    assert!(err.contains("ws.heartbeat_ms = 0"), "{err}");
    let err = run("HERALD__WS__HEARTBEAT_MS", "soon");
    assert!(
        err.contains("heartbeat_ms") && err.contains("soon"),
        "{err}"
    );
    let err = run("HERALD__SERVER__WORKER_THREADS", "5000");
    assert!(err.contains("server.worker_threads = 5000"), "{err}");
    let err = run("HERALD__WS__HEARTBEET_MS", "10");
    assert!(err.contains("heartbeet_ms"), "{err}");
}

/// Runs `herald serve` on the Redis at `url` with its log in a file until
/// it answers `/healthz` (`Ok`, the node still running) or exits (`Err`,
/// its status and log).
async fn serve_on_redis(
    url: &str,
) -> Result<(Running, String), (std::process::ExitStatus, String)> {
    let port = free_port();
    let log = tempfile();
    let mut child = Command::new(BIN)
        .arg("serve")
        .env("HERALD__BACKEND", "redis")
        .env("HERALD__REDIS__URL", url)
        .env("HERALD__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("HERALD__AUTH__JWT_SECRET", "s")
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "warn")
        .stderr(Stdio::from(log.1))
        .spawn()
        .unwrap();
    let read_log = || std::fs::read_to_string(&log.0).unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Err((status, read_log()));
        }
        if reqwest::get(format!("{base}/healthz"))
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            return Ok((Running(child), read_log()));
        }
        assert!(
            Instant::now() < deadline,
            "neither up nor exited:\n{}",
            read_log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A Redis that may evict keys would delete inboxes: the node refuses it
/// and names the setting. One that persists nothing, or hides CONFIG, is
/// taken with a warning.
#[tokio::test]
async fn a_redis_that_evicts_keys_is_refused() {
    let evicting = herald_testing::RedisServer::start_with(&["--maxmemory-policy", "allkeys-lru"]);
    let Err((status, log)) = serve_on_redis(&evicting.url()).await else {
        panic!("a node started on a Redis with maxmemory-policy allkeys-lru");
    };
    assert!(!status.success());
    assert!(
        log.contains("maxmemory-policy is allkeys-lru") && log.contains("noeviction"),
        "{log}"
    );
    // herald-testing's servers persist nothing.
    let volatile = herald_testing::RedisServer::start();
    let (_node, log) = serve_on_redis(&volatile.url()).await.expect("node up");
    assert!(log.contains("redis persists nothing"), "{log}");
    let hidden = herald_testing::RedisServer::start_with(&["--rename-command", "CONFIG", "\"\""]);
    let (_node, log) = serve_on_redis(&hidden.url()).await.expect("node up");
    assert!(log.contains("CONFIG GET is not allowed"), "{log}");
}
