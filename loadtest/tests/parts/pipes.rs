//! What the coordinators and their workers say: one JSON object a line,
//! read back as written (`conn`/`fanout` and `storm`).

use herald_harness::latency::LatencyHist;
use herald_loadtest::scenario::conn::pipe::{
    AddTarget, Connected, Round, WorkerCommand, WorkerEvent,
};
use herald_loadtest::scenario::storm::pipe::{ClientOutcome, Command, Episode, Event, Progress};
use serde::Serialize;

fn line<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap()
}

#[test]
fn commands_round_trip_as_json_lines() {
    for cmd in [
        WorkerCommand::Connect,
        WorkerCommand::Add {
            targets: vec![
                AddTarget {
                    gateway: "http://127.0.0.1:1".into(),
                    count: 19_000,
                },
                AddTarget {
                    gateway: "http://127.0.0.1:2".into(),
                    count: 1,
                },
            ],
        },
        WorkerCommand::Halt,
        WorkerCommand::Collect { round: 3 },
        WorkerCommand::Close,
    ] {
        let line = line(&cmd);
        assert!(!line.contains('\n'));
        assert_eq!(serde_json::from_str::<WorkerCommand>(&line).unwrap(), cmd);
    }
    assert_eq!(
        line(&WorkerCommand::Collect { round: 3 }),
        r#"{"cmd":"collect","round":3}"#
    );
    assert_eq!(line(&WorkerCommand::Halt), r#"{"cmd":"halt"}"#);
}

#[test]
fn a_connected_event_of_an_older_worker_still_parses() {
    let line = r#"{"event":"connected","ok":2,"failed":0,"retries":0,"last_connect_us":1,"rss_kib":5,"errors":[]}"#;
    match serde_json::from_str::<WorkerEvent>(line).unwrap() {
        WorkerEvent::Connected(c) => assert_eq!((c.ok, c.skipped, c.held), (2, 0, 0)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn events_round_trip_as_json_lines() {
    let mut h = LatencyHist::new();
    h.record(1500);
    for ev in [
        WorkerEvent::Hello { worker_id: 1 },
        WorkerEvent::Connected(Connected {
            ok: 10,
            failed: 1,
            skipped: 3,
            held: 9,
            retries: 2,
            last_connect_us: 42,
            rss_kib: 9000,
            errors: vec!["refused\nwith newline".into()],
            connect_latency: h.to_buckets(),
        }),
        WorkerEvent::Round(Round {
            round: 0,
            received: 10,
            expected: 10,
            last_recv_us: 99,
            latencies: h.to_buckets(),
            dropped: 0,
            duplicates: 2,
        }),
    ] {
        let line = line(&ev);
        assert!(!line.contains('\n'), "one event per line: {line}");
        assert_eq!(serde_json::from_str::<WorkerEvent>(&line).unwrap(), ev);
    }
}

#[test]
fn events_are_one_line_each() {
    let ev = Event::Report {
        clients: vec![ClientOutcome {
            user: 3,
            episodes: vec![Episode {
                lost_us: 1,
                welcomed_us: Some(2),
                resumed_us: None,
                refused: 1,
            }],
            ..ClientOutcome::default()
        }],
        errors: vec![("refused".into(), 3)],
        latency: vec![(1500, 2)],
    };
    let line = serde_json::to_string(&ev).unwrap();
    assert!(!line.contains('\n'));
    assert_eq!(serde_json::from_str::<Event>(&line).unwrap(), ev);
    let p = Event::Progress(Progress {
        online: 2,
        ..Progress::default()
    });
    let back: Event = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(back, p);
    assert_eq!(
        serde_json::to_string(&Command::Report).unwrap(),
        r#"{"cmd":"report"}"#
    );
}
