//! The fanout's subscribers, named so that the receivers spread evenly
//! over a topic's snapshot.

use herald_loadtest::harness::worker::plan;
use herald_loadtest::scenario::conn::pipe::worker_user;
use herald_loadtest::scenario::fanout::subscribe::subscriber_names;

#[test]
fn receivers_are_spread_over_the_snapshot_order() {
    let slices = plan(1_000, 300);
    let mut names = subscriber_names(&slices, 10_003);
    assert_eq!(names.len(), 10_003);
    let unique: std::collections::HashSet<_> = names.iter().collect();
    assert_eq!(unique.len(), 10_003);
    // The snapshot's order: bytes.
    names.sort();
    let receivers: std::collections::HashSet<String> = slices
        .iter()
        .enumerate()
        .flat_map(|(w, &(_, c))| (0..c).map(move |i| worker_user(w, i)))
        .collect();
    assert_eq!(receivers.len(), 1_000);
    let positions: Vec<usize> = names
        .iter()
        .enumerate()
        .filter(|(_, n)| receivers.contains(*n))
        .map(|(p, _)| p)
        .collect();
    assert_eq!(positions.len(), 1_000);
    // Each receiver is followed by its 9 or 10 offline users.
    assert!(positions[0] <= 10, "{}", positions[0]);
    assert!(positions.windows(2).all(|w| w[1] - w[0] <= 11));
    assert!(*positions.last().unwrap() >= 10_003 - 11);
    // Only receivers: no offline users.
    assert_eq!(subscriber_names(&plan(5, 15_000), 5).len(), 5);
}
