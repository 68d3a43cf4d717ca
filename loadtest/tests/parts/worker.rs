//! Worker processes as the coordinator starts them: their command line,
//! their source addresses and their slices.

use std::net::Ipv4Addr;

use clap::Parser;
use herald_loadtest::cli::{ClientMode, ClientOpts, CodecArg};
use herald_loadtest::harness::worker::{plan, source_ip, WorkerArgs};

#[test]
fn worker_args_round_trip_through_the_cli() {
    let args = WorkerArgs {
        gateways: vec!["http://127.0.0.1:1".into(), "http://127.0.0.1:2".into()],
        worker_id: 3,
        first: 40,
        count: 20,
        run: 9,
        source_ip: "127.0.0.5".parse().unwrap(),
        timeout: 77,
        client: ClientOpts {
            secret: "s".into(),
            codec: CodecArg::Msgpack,
            read_buffer: 1024,
            connect_timeout: 7,
            retries: 2,
            concurrency: 99,
            client_mode: ClientMode::Tungstenite,
        },
    };
    let argv = args.to_argv();
    assert!(
        !argv.iter().any(|a| a == "s"),
        "no secret on the command line"
    );
    #[derive(Parser)]
    struct P {
        #[command(flatten)]
        w: WorkerArgs,
    }
    let back = P::try_parse_from(
        ["x", "--secret", "s"]
            .into_iter()
            .map(String::from)
            .chain(argv),
    )
    .unwrap()
    .w;
    assert_eq!(back.gateways, args.gateways);
    assert_eq!(
        (
            back.worker_id,
            back.first,
            back.count,
            back.run,
            back.source_ip,
            back.timeout
        ),
        (3, 40, 20, 9, args.source_ip, 77)
    );
    let c = back.client;
    assert_eq!(
        (c.read_buffer, c.connect_timeout, c.retries, c.concurrency),
        (1024, 7, 2, 99)
    );
    assert_eq!(
        (c.client_mode, c.codec),
        (ClientMode::Tungstenite, CodecArg::Msgpack)
    );
}

#[test]
fn workers_get_their_own_source_address_unless_unspecified() {
    let base = "127.0.0.2".parse().unwrap();
    assert_eq!(source_ip(base, 0), base);
    assert_eq!(source_ip(base, 52).to_string(), "127.0.0.54");
    let any = Ipv4Addr::UNSPECIFIED;
    assert_eq!(source_ip(any, 7), any);
}

#[test]
fn plan_spreads_evenly_within_the_per_worker_bound() {
    assert_eq!(plan(2000, 15_000), vec![(0, 2000)]);
    assert_eq!(plan(30_000, 15_000), vec![(0, 15_000), (15_000, 15_000)]);
    assert_eq!(
        plan(30_001, 15_000),
        vec![(0, 10_001), (10_001, 10_000), (20_001, 10_000)]
    );
    assert_eq!(plan(0, 10), vec![(0, 0)]);
    for (n, per) in [(1, 1), (99, 7), (100_000, 15_000)] {
        let p = plan(n, per);
        assert_eq!(p.iter().map(|s| s.1).sum::<usize>(), n);
        assert!(p.iter().all(|s| s.1 <= per));
    }
}
