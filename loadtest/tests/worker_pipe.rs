//! The worker pipe end to end with a real worker process (no gateway needed):
//! it says hello, reports zero connections, answers `collect`, and exits on
//! `close`.

mod common;

use std::time::Duration;

use common::Worker;

#[tokio::test]
async fn a_worker_with_no_connections_round_trips() {
    let args = "--worker-id 0 --first 0 --count 0 --source-ip 127.0.0.1 \
                --gateway http://127.0.0.1:1 --timeout 30";
    let mut worker = Worker::spawn(args, "x", Duration::from_secs(30));

    assert_eq!(worker.next().await["event"], "hello");
    worker.send(r#"{"cmd":"connect"}"#).await;
    let connected = worker.next().await;
    assert_eq!(connected["event"], "connected");
    assert_eq!(
        (connected["ok"].as_u64(), connected["failed"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(connected["rss_kib"].as_u64().unwrap() > 0);

    worker.send(r#"{"cmd":"collect","round":0}"#).await;
    let round = worker.next().await;
    assert_eq!(
        (round["event"].as_str(), round["round"].as_u64()),
        (Some("round"), Some(0))
    );
    assert_eq!(round["received"], 0);

    worker.close().await;
}
