//! kill -9 of one of three nodes.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use herald_harness::Backoff;

use crate::api::assert_store_whole;
use crate::fleet::{device_specs, names, Fleet};
use crate::nodes::{start_nodes, start_redis};
use crate::traffic::Traffic;
use crate::waits::{ms, spread, wait_for};
use crate::{run, LONG, PACE};

/// Three nodes; users with one or two devices spread over them; steady
/// traffic through the API. Node A dies with SIGKILL: its devices see their
/// connections end, reconnect (jittered backoff) to B and C, and every
/// accepted message reaches every device exactly once.
#[test]
fn kill_9_of_one_of_three_nodes_moves_its_clients_and_loses_or_doubles_nothing() {
    run(async {
        let redis = start_redis(&[]).await;
        let ids = ["k9-a", "k9-b", "k9-c"];
        let mut nodes = start_nodes(&ids, &redis.url(), &[]).await;
        let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
        let users = names("k", 12);
        let fleet = Fleet::start(
            device_specs(&users, nodes.len()),
            &addrs,
            Backoff::new(100, 2_000),
        );
        fleet.wait_connected(LONG).await;
        let on_a = fleet.devices_on(ids[0]);
        assert!(!on_a.is_empty());

        let sender = Traffic::start(&addrs, &users, PACE, 20_000);
        sender.wait_accepted(300, LONG).await;
        let killed_at = Instant::now();
        nodes[0].kill9();
        // Every device of A is welcomed by another node.
        let moved_in = wait_for("A's devices on B or C", LONG, || {
            on_a.iter()
                .all(|d| fleet.node(d).is_some_and(|n| n != ids[0]))
        })
        .await;
        let moves: Vec<Duration> = on_a
            .iter()
            .map(|d| fleet.life(d).welcomes.last().unwrap().0 - killed_at)
            .collect();
        let landed: BTreeMap<String, usize> = on_a.iter().fold(BTreeMap::new(), |mut m, d| {
            *m.entry(fleet.node(d).unwrap()).or_default() += 1;
            m
        });
        let at_kill = sender.accepted();
        sender.wait_accepted(at_kill + 300, LONG).await;
        let sent = sender.finish().await;
        let converged = fleet.converge(&sent.accepted, LONG).await;
        let tally = fleet.tally(&sent.accepted);
        let refused_by_a = sent
            .requests
            .iter()
            .filter(|r| r.node == 0 && r.started >= killed_at)
            .count();
        eprintln!(
            "kill -9: {} of {} devices were on A; all on B/C {} ms after the kill \
             (each: {}), landed {landed:?}; {} messages accepted, {refused_by_a} sends to A \
             failed after the kill; every device caught up {:?} after the sends ended; {tally}",
            on_a.len(),
            fleet.devices.len(),
            ms(moved_in),
            spread(moves),
            sent.accepted_count(),
            converged,
        );
        assert!(tally.exactly_once(), "{tally}");
        assert_store_whole(addrs[1], &sent.accepted).await;
        fleet.stop().await;
    });
}
