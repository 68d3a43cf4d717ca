//! The scale-out's figures: the ideal number of moves, when the nodes
//! were balanced for good, the nodes' counters from `/metrics`, and the
//! clients' moves from their episodes.

use herald_loadtest::scenario::scaleout::nodes::{
    counts, ideal_moves, in_band, settled_after, NodeCounts, Sample,
};
use herald_loadtest::scenario::scaleout::report::moves;
use herald_loadtest::scenario::storm::pipe::{ClientOutcome, Episode};

#[test]
fn the_ideal_is_the_excess_over_the_mean() {
    // 2 nodes of 17,000, then 2 more: half of everyone moves.
    assert_eq!(ideal_moves(&[17_000, 17_000, 0, 0]), 17_000);
    assert_eq!(ideal_moves(&[30_000, 30_000, 0, 0]), 30_000);
    // Uneven nodes: only what is above the mean (10) counts.
    assert_eq!(ideal_moves(&[20, 10, 0]), 10);
    assert_eq!(ideal_moves(&[5, 5]), 0);
    assert_eq!(ideal_moves(&[]), 0);
}

#[test]
fn the_band_is_the_mean_plus_or_minus_the_tolerance() {
    assert!(in_band(&[8_500, 9_775, 7_225], 8_500.0, 0.15));
    assert!(!in_band(&[8_500, 9_776], 8_500.0, 0.15));
    assert!(!in_band(&[8_500, 7_224], 8_500.0, 0.15));
}

fn sample(at_s: u64, nodes: &[Option<u64>]) -> Sample {
    let node = |c: u64| NodeCounts {
        connections: c,
        ..NodeCounts::default()
    };
    Sample {
        at_us: at_s * 1_000_000,
        nodes: nodes.iter().map(|n| n.map(node)).collect(),
    }
}

#[test]
fn balanced_counts_from_the_first_sample_that_stays_in_the_band() {
    let start = 10 * 1_000_000;
    let timeline = [
        sample(9, &[Some(100), Some(100), None, None]), // before: ignored
        sample(10, &[Some(100), Some(100), None, None]), // new nodes at 0
        sample(12, &[Some(60), Some(60), Some(40), Some(40)]),
        sample(13, &[Some(50), Some(50), Some(50), Some(50)]), // in band…
        sample(14, &[Some(50), Some(60), Some(45), Some(45)]), // …not again
        sample(15, &[Some(52), Some(48), Some(50), Some(50)]),
        sample(16, &[Some(50), None, Some(50), Some(50)]), // a node silent: skipped
        sample(17, &[Some(50), Some(50), Some(51), Some(49)]),
    ];
    assert_eq!(settled_after(&timeline, start, 50.0, 0.15), Some(5.0));
    // Out of the band at the end: never balanced for good.
    let mut worse = timeline.to_vec();
    worse.push(sample(18, &[Some(70), Some(30), Some(50), Some(50)]));
    assert_eq!(settled_after(&worse, start, 50.0, 0.15), None);
    // A node that never answered counts 0.
    let never = [sample(11, &[Some(100), Some(100), None, None])];
    assert_eq!(settled_after(&never, start, 50.0, 0.15), None);
}

#[test]
fn node_counters_come_from_prometheus_text() {
    let text = "\
# HELP herald_connections WebSocket connections open now, by codec
# TYPE herald_connections gauge
herald_connections{codec=\"json\"} 8400
herald_connections{codec=\"msgpack\"} 100
herald_connections_total 5
herald_rebalance_moved_total 8500
herald_rebalance_rounds_total 1
herald_handshake_refusals_total{cause=\"rebalancing\"} 37
herald_handshake_refusals_total{cause=\"draining\"} 2
";
    assert_eq!(
        counts(text),
        NodeCounts {
            connections: 8_500,
            moved: 8_500,
            rounds: 1,
            refused: 37
        }
    );
    assert_eq!(counts(""), NodeCounts::default());
}

#[test]
fn moves_count_from_the_start_on() {
    let ep = |lost_s: u64, resumed_s: Option<u64>, refused| Episode {
        lost_us: lost_s * 1_000_000,
        welcomed_us: None,
        resumed_us: resumed_s.map(|r| r * 1_000_000),
        refused,
    };
    let client = |moves, episodes| ClientOutcome {
        moves,
        episodes,
        ..ClientOutcome::default()
    };
    let clients = [
        client(0, vec![]),
        client(1, vec![ep(12, Some(13), 1)]),
        client(2, vec![ep(12, Some(14), 0), ep(20, Some(21), 2)]),
        client(0, vec![ep(5, Some(6), 0)]), // before the start
        client(1, vec![ep(30, None, 4)]),
    ];
    let m = moves(&clients, 10 * 1_000_000);
    assert_eq!(
        (
            m.frames,
            m.clients_moved,
            m.moved_again,
            m.ended,
            m.unresumed
        ),
        (4, 3, 1, 4, 1)
    );
    assert_eq!(m.refused_attempts, 7);
    assert_eq!(m.offline_ms, [Some(1_000.0), Some(2_000.0), Some(2_000.0)]);
}
