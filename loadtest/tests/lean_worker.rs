//! A worker against a real gateway (in this process, memory backend) in
//! each client mode: every connection welcomed, pings answered (the gateway
//! pings every 300 ms and closes a connection silent for two intervals),
//! every broadcast of the run counted once per connection, repeats counted
//! as duplicates, other runs ignored — the same reports from both modes.

mod common;

use std::time::Duration;

use common::Worker;

const SECRET: &str = "lean-test-secret";
const API_KEY: &str = "lean-test-key";
const CONNECTIONS: usize = 40;
const RUN: u32 = 4242;
/// The gateway's ping interval; the idle below lasts three of them and more.
const HEARTBEAT_MS: u64 = 300;
/// Every wait in this test gives up after this long.
const WAIT: Duration = Duration::from_secs(20);

async fn broadcast(base: &str, run: u32, round: u32) {
    let body = serde_json::json!({
        "to": {"all": true},
        "category": "announcement",
        "body": format!("lean test {round} with \"lt_round\":999 in it"),
        "data": {"lt_run": run, "lt_round": round, "lt_sent_us": common::now_us(), "x": {"lt_round": 7}},
    });
    common::post_message(base, API_KEY, &body).await;
}

/// Runs one worker in `mode` through connect, idle, four broadcasts (one
/// repeated, one of another run) and close; returns its round reports.
async fn worker_rounds(mode: &str) -> Vec<serde_json::Value> {
    // 300 ms: a worker that does not answer is closed within the second
    // idle below, while one starved for a moment by a loaded machine (CI
    // runs every suite at once on two cores) is not. At 100 ms a 200 ms
    // stall closed a connection that did answer.
    let gw = common::gateway(SECRET, API_KEY, |s| s.ws.heartbeat_ms = HEARTBEAT_MS).await;
    let base = gw.base.clone();
    let mut worker = Worker::spawn(
        &format!(
            "--worker-id 0 --first 0 --count {CONNECTIONS} --source-ip 127.0.0.1 \
             --gateway {base} --run {RUN} --timeout 60 --client-mode {mode} --concurrency 16"
        ),
        SECRET,
        WAIT,
    );

    assert_eq!(worker.next().await["event"], "hello");
    worker.send("{\"cmd\":\"connect\"}").await;
    let connected = worker.next().await;
    assert_eq!(connected["event"], "connected", "{connected}");
    assert_eq!(connected["ok"], CONNECTIONS, "{connected}");
    assert_eq!(connected["failed"], 0, "{connected}");

    // Over three heartbeat intervals: a connection that did not answer the
    // pings would be closed after two.
    tokio::time::sleep(Duration::from_secs(1)).await;
    worker.send("{\"cmd\":\"collect\",\"round\":100}").await;
    let idle = worker.next().await;
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
            let ev = worker.next().await;
            if ev["event"] == "round" {
                break ev;
            }
        };
        rounds.push(r);
    }
    // Nothing beyond the rounds: collect an unsent round, then close.
    worker.send("{\"cmd\":\"collect\",\"round\":9}").await;
    let late = worker.next().await;
    assert_eq!(
        (late["round"].as_u64(), late["received"].as_u64()),
        (Some(9), Some(0))
    );
    assert_eq!(late["dropped"], 0, "no connection closed: {late}");
    worker.close().await;
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
