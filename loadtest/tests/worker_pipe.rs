//! The worker pipe end to end with a real worker process (no gateway needed):
//! it says hello, reports zero connections, answers `collect`, and exits on
//! `close`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

#[test]
fn a_worker_with_no_connections_round_trips() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald-loadtest"))
        .args(["worker", "--worker-id", "0", "--first", "0", "--count", "0"])
        .args([
            "--source-ip",
            "127.0.0.1",
            "--gateway",
            "http://127.0.0.1:1",
        ])
        .args(["--timeout", "30"])
        .env("HERALD__AUTH__JWT_SECRET", "x")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn worker");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || -> serde_json::Value {
        serde_json::from_str(&lines.next().expect("a line").expect("readable")).expect("JSON line")
    };

    assert_eq!(next()["event"], "hello");
    writeln!(stdin, r#"{{"cmd":"connect"}}"#).unwrap();
    let connected = next();
    assert_eq!(connected["event"], "connected");
    assert_eq!(
        (connected["ok"].as_u64(), connected["failed"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(connected["rss_kib"].as_u64().unwrap() > 0);

    writeln!(stdin, r#"{{"cmd":"collect","round":0}}"#).unwrap();
    let round = next();
    assert_eq!(
        (round["event"].as_str(), round["round"].as_u64()),
        (Some("round"), Some(0))
    );
    assert_eq!(round["received"], 0);

    writeln!(stdin, r#"{{"cmd":"close"}}"#).unwrap();
    assert!(child.wait().unwrap().success());
}
