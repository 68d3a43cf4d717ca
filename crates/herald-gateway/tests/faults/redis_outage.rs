//! Redis restarted (AOF) and Redis cut off (a TCP proxy) under traffic.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use herald_harness::Backoff;
use herald_testing::{RedisServer, TcpProxy};

use crate::api::{assert_store_whole, healed};
use crate::fleet::{device_specs, names, Fleet};
use crate::nodes::{start_nodes, start_redis};
use crate::traffic::Traffic;
use crate::waits::{ms, wait_for};
use crate::{run, LONG, PACE};

/// How Redis goes away and comes back.
enum Outage {
    /// redis-server killed with SIGKILL, restarted on its port and dir
    /// (AOF replayed).
    Restart(Option<RedisServer>),
    /// The link from the nodes to Redis cut at a [`TcpProxy`], then
    /// restored; Redis itself runs throughout.
    Cut {
        proxy: TcpProxy,
        _redis: RedisServer,
    },
}

impl Outage {
    async fn begin(&mut self) {
        match self {
            Outage::Restart(redis) => {
                let mut server = redis.take().unwrap();
                *redis = Some(
                    tokio::task::spawn_blocking(move || {
                        server.kill();
                        server
                    })
                    .await
                    .unwrap(),
                );
            }
            Outage::Cut { proxy, .. } => {
                proxy.cut();
            }
        }
    }

    async fn end(&mut self) {
        match self {
            Outage::Restart(redis) => {
                let mut server = redis.take().unwrap();
                *redis = Some(
                    tokio::task::spawn_blocking(move || {
                        server.restart();
                        server
                    })
                    .await
                    .unwrap(),
                );
            }
            Outage::Cut { proxy, .. } => proxy.restore(),
        }
    }
}

/// Two nodes, devices on both, steady traffic; Redis goes away for at
/// least `down_for` (and until the API refused a few sends), then comes
/// back. Checks the promises: while down the API answers 503 (never 202,
/// nothing else) and every device stays connected; afterwards every node
/// accepts again without a restart, every accepted message reaches every
/// device exactly once, and the store holds every inbox without a seq gap.
async fn outage_under_traffic(
    prefix: &str,
    redis_url: &str,
    mut outage: Outage,
    down_for: Duration,
) {
    // Commands give up after 500 ms (default 2 s) while Redis is away.
    let env = [("HERALD__REDIS__COMMAND_TIMEOUT_MS", "500")];
    let ids = [format!("{prefix}-a"), format!("{prefix}-b")];
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let nodes = start_nodes(&ids, redis_url, &env).await;
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    let users = names(prefix, 8);
    let fleet = Fleet::start(
        device_specs(&users, nodes.len()),
        &addrs,
        Backoff::new(100, 2_000),
    );
    fleet.wait_connected(LONG).await;
    let sender = Traffic::start(&addrs, &users, PACE, 50_000);
    sender.wait_accepted(200, LONG).await;

    outage.begin().await;
    let down_at = Instant::now();
    let refused = sender.refused();
    wait_for("sends refused while Redis is away", LONG, || {
        sender.refused() >= refused + 6
    })
    .await;
    let left = down_for.saturating_sub(down_at.elapsed());
    tokio::time::sleep(left).await;
    let connected = fleet
        .devices
        .iter()
        .filter(|d| fleet.node(d).is_some())
        .count();
    outage.end().await;
    let up_at = Instant::now();
    let heal = healed(&addrs, up_at, LONG).await;
    let at_up = sender.accepted();
    sender.wait_accepted(at_up + 200, LONG).await;
    let sent = sender.finish().await;
    let converged = fleet.converge(&sent.accepted, LONG).await;
    let tally = fleet.tally(&sent.accepted);

    // Sends answered while Redis was away.
    let mut during: BTreeMap<u16, usize> = BTreeMap::new();
    let mut slowest = Duration::ZERO;
    for r in &sent.requests {
        if r.started >= down_at && r.started + r.took <= up_at {
            *during.entry(r.status).or_default() += 1;
            slowest = slowest.max(r.took);
        }
    }
    let closed_while_down = fleet.closes_between(down_at, up_at);
    let closed_after = fleet.closes_between(up_at, Instant::now());
    eprintln!(
        "{prefix}: Redis away {} ms; answers meanwhile {during:?} (slowest {} ms); \
         {connected}/{} devices connected at the end of the outage, closes while away \
         {closed_while_down:?}, after {closed_after:?}; every node accepts again {} ms after \
         Redis is back; {} accepted, caught up {converged:?} after the sends ended; {tally}",
        ms(up_at - down_at),
        ms(slowest),
        fleet.devices.len(),
        ms(heal),
        sent.accepted_count(),
    );
    assert!(
        during.keys().all(|s| *s == 503),
        "while Redis was away the API answered {during:?}"
    );
    assert!(
        closed_while_down.is_empty() && connected == fleet.devices.len(),
        "devices were disconnected while Redis was away: {closed_while_down:?}"
    );
    assert!(tally.exactly_once(), "{tally}");
    assert_store_whole(addrs[0], &sent.accepted).await;
    fleet.stop().await;
}

/// Redis (AOF, `appendfsync always`) killed with SIGKILL under traffic and
/// restarted: no accepted message is lost, the API answers 503 meanwhile,
/// devices stay connected, the nodes heal by themselves.
#[test]
fn redis_restart_with_aof_loses_nothing_answers_503_while_down_and_heals() {
    run(async {
        let redis = start_redis(&["--appendonly", "yes", "--appendfsync", "always"]).await;
        let url = redis.url();
        outage_under_traffic("rr", &url, Outage::Restart(Some(redis)), Duration::ZERO).await;
    });
}

/// The link to Redis cut for 10 s (a TCP proxy drops every connection and
/// refuses new ones) under traffic: the same promises as a restart, and no
/// half-written message: every inbox in the store is 1..=last without a gap,
/// and no device saw a seq gap.
#[test]
fn redis_unreachable_for_10_s_answers_503_heals_and_leaves_no_seq_gap() {
    run(async {
        let redis = start_redis(&[]).await;
        let proxy = TcpProxy::to_port(redis.port());
        let url = proxy.redis_url();
        let outage = Outage::Cut {
            proxy,
            _redis: redis,
        };
        outage_under_traffic("cut", &url, outage, Duration::from_secs(10)).await;
    });
}
