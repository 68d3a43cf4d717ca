//! The storm's resume figures from every client's episodes.

use herald_loadtest::scenario::storm::outcome::{quantile, summarize};
use herald_loadtest::scenario::storm::pipe::{ClientOutcome, Episode};

#[test]
fn quantiles_count_the_missing_as_infinitely_late() {
    let v: Vec<u64> = (1..=100).collect();
    assert_eq!(quantile(&v, 100, 0.5), Some(50));
    assert_eq!(quantile(&v, 100, 0.99), Some(99));
    assert_eq!(quantile(&v, 100, 1.0), Some(100));
    // 100 of 200 never got there: the median is the last one known.
    assert_eq!(quantile(&v, 200, 0.5), Some(100));
    assert_eq!(quantile(&v, 200, 0.99), None);
    assert_eq!(quantile(&[], 0, 0.5), None);
}

fn client(user: usize, episodes: Vec<Episode>) -> ClientOutcome {
    ClientOutcome {
        user,
        node: Some(format!("n{}", user % 2)),
        episodes,
        ..ClientOutcome::default()
    }
}

fn ep(lost_ms: u64, resumed_ms: Option<u64>, refused: u32) -> Episode {
    Episode {
        lost_us: lost_ms * 1000,
        welcomed_us: resumed_ms.map(|r| r * 1000 - 500),
        resumed_us: resumed_ms.map(|r| r * 1000),
        refused,
    }
}

#[test]
fn summary_measures_from_the_kill() {
    let kill = 10_000_000; // 10 s in µs
    let clients = vec![
        client(0, vec![ep(10_001, Some(10_500), 0)]),
        client(1, vec![ep(10_002, Some(12_500), 2)]),
        client(2, vec![ep(10_002, None, 5)]),
        client(
            3,
            vec![ep(5_000, Some(5_100), 0), ep(10_001, Some(11_000), 0)],
        ),
    ];
    let r = summarize(&clients, kill);
    assert_eq!(
        (r.clients, r.lost, r.resumed, r.never_resumed),
        (4, 4, 3, 1)
    );
    assert_eq!(r.dropped_before_kill, 1);
    assert_eq!(r.resumed_after.p50_ms, Some(1_000.0));
    assert_eq!(r.noticed.p100_ms, Some(2.0));
    assert_eq!(r.resumed_after.p100_ms, None, "one never resumed");
    assert_eq!(r.resumed_by_second, vec![1, 2, 3]);
    assert_eq!(r.landed.get("n0"), Some(&2));
    assert_eq!(r.refused_attempts, 7);
    assert_eq!(r.attempts, [1, 3, 3]);
}
