//! A worker against a real gateway (in this process, memory backend) in
//! each client mode: every connection welcomed, pings answered (the gateway
//! pings every 100 ms and closes a connection silent for two intervals),
//! every broadcast of the run counted once per connection, repeats counted
//! as duplicates, other runs ignored — the same reports from both modes.

use std::time::Duration;

use herald_gateway::{app, Node, Settings};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

const SECRET: &str = "lean-test-secret";
const API_KEY: &str = "lean-test-key";
const CONNECTIONS: usize = 40;
const RUN: u32 = 4242;
/// Every wait in this test gives up after this long.
const WAIT: Duration = Duration::from_secs(20);

struct Gateway {
    addr: std::net::SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn gateway() -> Gateway {
    let mut s = Settings::default();
    s.server.listen = "127.0.0.1:0".parse().unwrap();
    s.auth.jwt_secret = SECRET.into();
    s.api.key = API_KEY.into();
    s.ws.heartbeat_ms = 100;
    let listener = s.server.bind().unwrap();
    let addr = listener.local_addr().unwrap();
    let node = Node::start(s).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app::serve(node, listener, async {
        let _ = stopped.await;
    }));
    Gateway { addr, _stop: stop }
}

async fn broadcast(base: &str, run: u32, round: u32) {
    let sent_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let body = serde_json::json!({
        "to": {"all": true},
        "category": "announcement",
        "body": format!("lean test {round} with \"lt_round\":999 in it"),
        "data": {"lt_run": run, "lt_round": round, "lt_sent_us": sent_us, "x": {"lt_round": 7}},
    });
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1/messages"))
        .bearer_auth(API_KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "POST: {}", resp.status());
}

/// Runs one worker in `mode` through connect, idle, four broadcasts (one
/// repeated, one of another run) and close; returns its round reports.
async fn worker_rounds(mode: &str) -> Vec<serde_json::Value> {
    let gw = gateway().await;
    let base = format!("http://{}", gw.addr);
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald-loadtest"))
        .args(["worker", "--worker-id", "0", "--first", "0"])
        .args(["--count", &CONNECTIONS.to_string()])
        .args(["--source-ip", "127.0.0.1", "--gateway", &base])
        .args(["--run", &RUN.to_string(), "--timeout", "60"])
        .args(["--client-mode", mode, "--concurrency", "16"])
        .env("HERALD__AUTH__JWT_SECRET", SECRET)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn worker");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = async || -> serde_json::Value {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("worker answers in time")
            .unwrap()
            .expect("a line");
        serde_json::from_str(&line).expect("JSON line")
    };

    assert_eq!(next().await["event"], "hello");
    stdin.write_all(b"{\"cmd\":\"connect\"}\n").await.unwrap();
    let connected = next().await;
    assert_eq!(connected["event"], "connected", "{connected}");
    assert_eq!(connected["ok"], CONNECTIONS, "{connected}");
    assert_eq!(connected["failed"], 0, "{connected}");

    // Ten heartbeat intervals: a connection that did not answer the pings
    // would be closed after two.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stdin
        .write_all(b"{\"cmd\":\"collect\",\"round\":100}\n")
        .await
        .unwrap();
    let idle = next().await;
    assert_eq!(idle["round"], 100, "{idle}");
    assert_eq!(
        idle["dropped"], 0,
        "{mode}: pings answered, nothing closed: {idle}"
    );

    let mut rounds = Vec::new();
    broadcast(&base, RUN + 1, 0).await; // another run: ignored
                                        // Round 1 twice: the repeat has no report of its own, and reaches
                                        // every connection before round 2 does.
    for (round, reported) in [(0, true), (1, true), (1, false), (2, true)] {
        broadcast(&base, RUN, round).await;
        if !reported {
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        }
        let r = loop {
            let ev = next().await;
            if ev["event"] == "round" {
                break ev;
            }
        };
        rounds.push(r);
    }
    // Nothing beyond the rounds: collect an unsent round, then close.
    stdin
        .write_all(b"{\"cmd\":\"collect\",\"round\":9}\n")
        .await
        .unwrap();
    let late = next().await;
    assert_eq!(
        (late["round"].as_u64(), late["received"].as_u64()),
        (Some(9), Some(0))
    );
    assert_eq!(late["dropped"], 0, "no connection closed: {late}");
    stdin.write_all(b"{\"cmd\":\"close\"}\n").await.unwrap();
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("worker exits")
        .unwrap();
    assert!(status.success());
    rounds
}

fn check(mode: &str, rounds: &[serde_json::Value]) {
    let got: Vec<_> = rounds
        .iter()
        .map(|r| {
            (
                r["round"].as_u64().unwrap(),
                r["received"].as_u64().unwrap(),
                r["expected"].as_u64().unwrap(),
                r["dropped"].as_u64().unwrap(),
            )
        })
        .collect();
    let n = CONNECTIONS as u64;
    assert_eq!(
        got,
        vec![(0, n, n, 0), (1, n, n, 0), (2, n, n, 0)],
        "{mode}"
    );
    assert_eq!(rounds[2]["duplicates"], n, "{mode}: the repeated round");
    assert_eq!(rounds[0]["duplicates"], 0, "{mode}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lean_worker_counts_broadcasts_from_a_real_gateway() {
    let rounds = worker_rounds("lean").await;
    check("lean", &rounds);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tungstenite_worker_reports_the_same() {
    let rounds = worker_rounds("tungstenite").await;
    check("tungstenite", &rounds);
}
