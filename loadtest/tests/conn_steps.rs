//! The stepwise walk against a real gateway (in this process, memory
//! backend): a worker opening more connections on `add` while holding the
//! earlier ones, a `halt` cutting a batch short, and `conn --steps` end to
//! end with its JSON report.

mod common;

use std::time::Duration;

use common::{post_message, Worker};
use tokio::process::Command;

const SECRET: &str = "steps-test-secret";
const API_KEY: &str = "steps-test-key";
/// Every wait in this test gives up after this long.
const WAIT: Duration = Duration::from_secs(30);

async fn gateway() -> common::Gateway {
    common::gateway(SECRET, API_KEY, |_| {}).await
}

/// Runs `herald-loadtest conn ARGS --out <file>` (ARGS split at spaces) to its end (at most 90 s)
/// with the gateway's secrets; returns its stdout, having checked it
/// succeeded, and the JSON report it wrote.
async fn run_conn(name: &str, args: &str) -> (String, serde_json::Value) {
    let dir = std::env::temp_dir().join(format!("herald-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("walk.json");
    let child = Command::new(env!("CARGO_BIN_EXE_herald-loadtest"))
        .arg("conn")
        .args(args.split_whitespace())
        .arg("--out")
        .arg(&out)
        .env("HERALD__AUTH__JWT_SECRET", SECRET)
        .env("HERALD__API__KEY", API_KEY)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn conn");
    let output = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("the walk ends")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}");
    let report = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    (stdout, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_adds_connections_and_holds_the_earlier_ones() {
    let gw = gateway().await;
    let mut worker = Worker::spawn(
        &format!(
            "--worker-id 0 --first 0 --count 0 --source-ip 127.0.0.1 --gateway {} \
             --run 77 --timeout 60 --concurrency 1 --connect-timeout 1 --retries 0",
            gw.base
        ),
        SECRET,
        WAIT,
    );
    assert_eq!(worker.next().await["event"], "hello");

    let add = |n: usize| {
        format!(
            "{{\"cmd\":\"add\",\"targets\":[{{\"gateway\":\"{}\",\"count\":{n}}}]}}",
            gw.base
        )
    };
    for (n, held) in [(10, 10), (15, 25)] {
        worker.send(&add(n)).await;
        let c = worker.next().await;
        assert_eq!(c["event"], "connected", "{c}");
        assert_eq!(
            (c["ok"].as_u64(), c["held"].as_u64()),
            (Some(n as u64), Some(held)),
            "{c}"
        );
        assert_eq!(c["skipped"], 0, "{c}");
    }

    // A halt right behind an add into a listener that never answers: the
    // attempt in flight waits out its --connect-timeout, and no other starts.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let line = format!(
        "{{\"cmd\":\"add\",\"targets\":[{{\"gateway\":\"http://{}\",\"count\":1000}}]}}",
        hole.local_addr().unwrap()
    );
    worker.send(&line).await;
    worker.send("{\"cmd\":\"halt\"}").await;
    let c = worker.next().await;
    assert_eq!(c["event"], "connected", "{c}");
    // (The halt may even come before the first attempt starts.)
    let [ok, failed, skipped, held] =
        ["ok", "failed", "skipped", "held"].map(|k| c[k].as_u64().unwrap());
    assert!(ok == 0 && failed <= 1 && failed + skipped == 1000, "{c}");
    assert_eq!(held, 25, "{c}");
    drop(hole);

    // Every held connection, of every batch, gets a broadcast.
    let body = serde_json::json!({
        "to": {"all": true}, "category": "announcement", "body": "step",
        "data": {"lt_run": 77, "lt_round": 0, "lt_sent_us": common::now_us()},
    });
    post_message(&gw.base, API_KEY, &body).await;
    let r = worker.next().await;
    assert_eq!(r["event"], "round", "{r}");
    assert_eq!(r["received"], 25, "{r}");
    assert_eq!(r["expected"], r["received"], "{r}");

    worker.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conn_steps_walks_up_holding_connections_and_reports_each_step() {
    let gw = gateway().await;
    // Workers of 25 connections: the steps need 1, then 2, then 4 of them.
    let (stdout, report) = run_conn(
        "steps",
        &format!(
            "--gateway {} --steps 20,50,90 --per-worker 25 --source-ip-base 127.0.0.1 \
             --settle 0 --mem-floor-mib 1 --timeout 60",
            gw.base
        ),
    )
    .await;
    assert_eq!(report["completed"], true, "{report:#}");
    let steps = report["steps"].as_array().unwrap();
    let got: Vec<_> = steps
        .iter()
        .map(|s| {
            (
                s["held"].as_u64().unwrap(),
                s["opened"].as_u64().unwrap(),
                s["workers"].as_u64().unwrap(),
                s["broadcast"]["received"].as_u64().unwrap(),
            )
        })
        .collect();
    // Each step opens only the difference, and every held connection
    // (earlier steps' included) gets that step's broadcast.
    assert_eq!(got, vec![(20, 20, 1, 20), (50, 30, 2, 50), (90, 40, 4, 90)]);
    for s in steps {
        assert_eq!(s["broadcast"]["complete"], true, "{s:#}");
        assert!(s["mem_available_idle_kib"].as_u64().unwrap() > 0);
        assert!(s["elapsed_secs"].as_f64().unwrap() > 0.0);
    }
    assert!(stdout.contains("stopped: done"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conn_steps_halts_the_workers_at_the_time_bound() {
    let gw = gateway().await;
    // A listener that never accepts: the TCP connect succeeds (backlog),
    // the upgrade is never answered, so an attempt lasts --connect-timeout.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hole_base = format!("http://{}", hole.local_addr().unwrap());
    // Two fixed gateways share the largest step: 20 connections each, the
    // real one's first. One attempt at a time: the first into the hole is
    // still waiting at the 1 s bound, when the workers are halted.
    let (_, report) = run_conn(
        "steps-halt",
        &format!(
            "--gateway {} --gateway {hole_base} --steps 40 --per-worker 100 \
             --source-ip-base 127.0.0.1 --concurrency 1 --connect-timeout 3 --retries 0 \
             --settle 0 --mem-floor-mib 1 --timeout 1",
            gw.base
        ),
    )
    .await;
    drop(hole);
    assert_eq!(report["completed"], false, "{report:#}");
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1, "{report:#}");
    let s = &steps[0];
    assert_eq!(s["halted"], "time bound", "{s:#}");
    let counts = ["held", "opened", "failed", "skipped"].map(|k| s[k].as_u64().unwrap());
    assert_eq!(counts, [20, 20, 1, 19], "{s:#}");
    // What was held still got the step's broadcast.
    assert_eq!(s["broadcast"]["received"], 20, "{s:#}");
    assert_eq!(s["broadcast"]["complete"], true, "{s:#}");
    assert!(
        report["stop_reason"]
            .as_str()
            .unwrap()
            .contains("step 1 cut short: time bound"),
        "{report:#}"
    );
}
