//! The command line: well formed, each scenario's flags and defaults,
//! and the targets it takes.

use clap::{CommandFactory, Parser};
use herald_loadtest::cli::{base_url, ws_url, Cli, ClientMode, CodecArg, Command};

/// `herald-loadtest <args> --api-key k --secret s`, parsed.
fn parse_for_test(args: &[&str]) -> Result<Command, clap::Error> {
    let secrets = ["--api-key", "k", "--secret", "s"];
    let argv = ["herald-loadtest"].iter().chain(args).chain(&secrets);
    Cli::try_parse_from(argv).map(|cli| cli.command)
}

#[test]
fn cli_is_well_formed() {
    Cli::command().debug_assert();
}

#[test]
fn client_mode_auto_is_lean_with_json_only() {
    use ClientMode::*;
    assert_eq!(Auto.resolve(CodecArg::Json).unwrap(), Lean);
    assert_eq!(Auto.resolve(CodecArg::Msgpack).unwrap(), Tungstenite);
    assert_eq!(Tungstenite.resolve(CodecArg::Json).unwrap(), Tungstenite);
    assert!(Lean.resolve(CodecArg::Msgpack).is_err());
}

#[test]
fn ws_url_from_base() {
    assert_eq!(ws_url("http://127.0.0.1:8080"), "ws://127.0.0.1:8080/ws");
    assert_eq!(ws_url("http://127.0.0.1:8080/"), "ws://127.0.0.1:8080/ws");
    assert_eq!(ws_url("https://h"), "wss://h/ws");
}

#[test]
fn targets_as_base_urls() {
    for t in [
        "http://127.0.0.1:8080",
        "http://127.0.0.1:8080/",
        "ws://127.0.0.1:8080",
        "ws://127.0.0.1:8080/ws",
        "ws://127.0.0.1:8080/ws/",
    ] {
        assert_eq!(base_url(t), "http://127.0.0.1:8080", "{t}");
        assert_eq!(ws_url(&base_url(t)), "ws://127.0.0.1:8080/ws", "{t}");
    }
}

#[test]
fn mark_takes_comma_separated_targets() {
    let targets = "ws://127.0.0.1:1,ws://127.0.0.1:2";
    let parsed = parse_for_test(&["mark", "--targets", targets, "--users", "20"]);
    let Ok(Command::Mark(a)) = parsed else {
        panic!("not mark")
    };
    assert_eq!(a.targets, ["ws://127.0.0.1:1", "ws://127.0.0.1:2"]);
    assert_eq!((a.users, a.rate, a.duration), (20, 1000.0, 10));
}

#[test]
fn fanout_defaults() {
    let (a, b) = ("http://127.0.0.1:1", "http://127.0.0.1:2");
    let Ok(Command::Fanout(a)) = parse_for_test(&["fanout", "--gateway", a, "--gateway", b]) else {
        panic!("not fanout")
    };
    assert_eq!(
        (a.subscribers, a.receivers, a.rounds, a.poll_ms),
        (100_000, 10_000, 1, 20)
    );
    assert_eq!(a.gateways.len(), 2);
}

#[test]
fn schedule_defaults() {
    let Ok(Command::Schedule(a)) = parse_for_test(&["schedule", "--gateway", "http://a:1"]) else {
        panic!("not schedule")
    };
    assert_eq!(
        (a.messages, a.receivers, a.snoozes, a.lead_secs),
        (100_000, 10_000, 10_000, 30)
    );
    assert_eq!(a.key_prefix, "herald");
}

#[test]
fn storm_parses_with_its_defaults() {
    let parsed = parse_for_test(&[
        "storm",
        "--victim",
        "http://127.0.0.1:1",
        "--victim-pid",
        "5",
        "--survivor",
        "http://127.0.0.1:2",
    ]);
    let Ok(Command::Storm(a)) = parsed else {
        panic!("not storm")
    };
    assert_eq!(
        (
            a.fleet.clients,
            a.fleet.pool.per_worker,
            a.fleet.backoff_base_ms
        ),
        (20_000, 10_000, 1000)
    );
    assert_eq!(a.victim_pids, [5]);
}

#[test]
fn soak_parses_with_its_defaults() {
    let Ok(Command::Soak(a)) = parse_for_test(&["soak", "--gateway", "http://127.0.0.1:1"]) else {
        panic!("not soak")
    };
    assert_eq!((a.clients, a.duration, a.window), (2_000, 600, 60));
    assert!(parse_for_test(&["soak", "--gateway", "x", "--clients", "20000"]).is_err());
}

/// Every flag of `scenario` as `--long=default` (`--long` where there is
/// none), in the order declared.
fn flags_and_defaults(scenario: &str) -> Vec<String> {
    let cli = Cli::command();
    let sub = cli.find_subcommand(scenario).expect("a scenario");
    sub.get_arguments()
        .filter_map(|a| {
            let long = a.get_long()?;
            let defaults: Vec<_> = a
                .get_default_values()
                .iter()
                .map(|d| d.to_string_lossy())
                .collect();
            Some(match defaults.is_empty() {
                true => format!("--{long}"),
                false => format!("--{long}={}", defaults.join(",")),
            })
        })
        .collect()
}

/// The flags `storm`, `scaleout` and `rolling` share, with the defaults
/// each one gives them (the scripts and the docs rely on both).
#[test]
fn fleet_scenarios_keep_their_flags_and_defaults() {
    let shared = |clients: &str, per_worker: &str, rate: &str, baseline: &str, target: &str| {
        [
            format!("--clients={clients}"),
            format!("--per-worker={per_worker}"),
            "--source-ip-base=127.0.0.2".to_owned(),
            format!("--rate={rate}"),
            "--http-concurrency=64".to_owned(),
            format!("--baseline={baseline}"),
            format!("--target-secs={target}"),
            "--tail=5".to_owned(),
            "--grace=20".to_owned(),
            "--backoff-base-ms=1000".to_owned(),
            "--backoff-cap-ms=16000".to_owned(),
            "--note".to_owned(),
            "--api-key".to_owned(),
            "--out".to_owned(),
        ]
    };
    let cases = [
        (
            "storm",
            shared("20000", "10000", "200", "5", "30"),
            vec![
                "--victim",
                "--victim-pid",
                "--survivor",
                "--storm-timeout=90",
                "--redis",
                "--redis-sample-ms=50",
                "--cpu-pid",
                "--timeout=600",
            ],
        ),
        (
            "scaleout",
            shared("34000", "12000", "200", "10", "120"),
            vec![
                "--first",
                "--new",
                "--start-file",
                "--tolerance=0.15",
                "--max-move-ratio=1.2",
                "--quiet=20",
                "--watch-timeout=300",
                "--timeout=900",
            ],
        ),
        (
            "rolling",
            shared("36000", "12000", "1000", "5", "30"),
            vec![
                "--old",
                "--old-pid",
                "--new",
                "--start-dir",
                "--step-timeout=180",
                "--sdk-list",
                "--redis",
                "--redis-sample-ms=50",
                "--timeout=1200",
            ],
        ),
    ];
    for (scenario, shared, own) in cases {
        let all = flags_and_defaults(scenario);
        let expected = shared.iter().map(String::as_str).chain(own);
        for flag in expected {
            assert!(
                all.iter().any(|f| f == flag),
                "{scenario}: {flag} in {all:?}"
            );
        }
    }
    for scenario in ["storm", "scaleout", "rolling"] {
        let sub = Cli::command();
        let sub = sub.find_subcommand(scenario).unwrap();
        let clients = sub.get_arguments().find(|a| a.get_id() == "clients");
        assert_eq!(clients.and_then(|a| a.get_short()), Some('n'), "{scenario}");
    }
    let scaleout = flags_and_defaults("scaleout");
    assert!(
        !scaleout.iter().any(|f| f.starts_with("--redis")),
        "{scaleout:?}"
    );
}
