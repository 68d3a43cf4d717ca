//! What the loadtest tests share: a real gateway in this process (memory
//! backend) and a `herald-loadtest worker` child spoken to over its pipes.

#![allow(dead_code)] // not every test binary uses every helper

use std::time::Duration;

use herald_gateway::{app, Node, Settings};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// A gateway serving on a free loopback port until dropped.
pub struct Gateway {
    pub addr: std::net::SocketAddr,
    /// `http://<addr>`.
    pub base: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Starts a gateway with this token secret and API key; `settings` adjusts
/// anything else first.
pub async fn gateway(secret: &str, api_key: &str, settings: impl FnOnce(&mut Settings)) -> Gateway {
    let mut s = Settings::default();
    s.server.listen = "127.0.0.1:0".parse().unwrap();
    s.auth.jwt_secret = secret.into();
    s.api.key = api_key.into();
    // The node shares its runtime with the load: that is lag it would shed
    // for.
    s.admission.enabled = false;
    settings(&mut s);
    let listener = s.server.bind().unwrap();
    let addr = listener.local_addr().unwrap();
    let node = Node::start(s).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app::serve(node, listener, async {
        let _ = stopped.await;
    }));
    Gateway {
        addr,
        base: format!("http://{addr}"),
        _stop: stop,
    }
}

/// A `herald-loadtest worker` child: commands in on stdin, one JSON event
/// per line out on stdout. Killed when dropped.
pub struct Worker {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    wait: Duration,
}

impl Worker {
    /// Spawns `herald-loadtest worker ARGS` (split at spaces) with the
    /// gateway's token secret; each later event is awaited for at most
    /// `wait`.
    pub fn spawn(args: &str, secret: &str, wait: Duration) -> Worker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_herald-loadtest"))
            .arg("worker")
            .args(args.split_whitespace())
            .env("HERALD__AUTH__JWT_SECRET", secret)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn worker");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Worker {
            child,
            stdin,
            lines,
            wait,
        }
    }

    /// The next event.
    pub async fn next(&mut self) -> serde_json::Value {
        let line = tokio::time::timeout(self.wait, self.lines.next_line())
            .await
            .expect("worker answers in time")
            .unwrap()
            .expect("a line");
        serde_json::from_str(&line).expect("JSON line")
    }

    /// Writes one command line (a newline is added).
    pub async fn send(&mut self, command: &str) {
        self.stdin.write_all(command.as_bytes()).await.unwrap();
        self.stdin.write_all(b"\n").await.unwrap();
    }

    /// Sends `close` and waits for the worker to exit successfully.
    pub async fn close(mut self) {
        self.send("{\"cmd\":\"close\"}").await;
        let status = tokio::time::timeout(self.wait, self.child.wait())
            .await
            .expect("worker exits")
            .unwrap();
        assert!(status.success());
    }
}

/// Microseconds since the epoch: a broadcast's `lt_sent_us`.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// POSTs `body` (a message to everyone) to the gateway's server API and
/// checks it was accepted.
pub async fn post_message(base: &str, api_key: &str, body: &serde_json::Value) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/messages"))
        .bearer_auth(api_key)
        .json(body)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "POST: {}", resp.status());
}
