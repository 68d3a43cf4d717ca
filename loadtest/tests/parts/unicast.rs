//! A unicast trial's books: which messages were accepted, received, lost.

use std::sync::atomic::Ordering;

use herald_loadtest::scenario::unicast::trial::Trial;
use rand::rngs::SmallRng;
use rand::RngExt;

#[test]
fn receivers_are_picked_evenly() {
    use rand::SeedableRng;
    let mut r = SmallRng::seed_from_u64(1);
    let mut seen = [0u32; 10];
    for _ in 0..10_000 {
        seen[r.random_range(0..10)] += 1;
    }
    assert!(seen.iter().all(|&c| (800..1200).contains(&c)), "{seen:?}");
}

#[test]
fn lost_counts_accepted_but_not_received() {
    let t = Trial::new(9, 1, 4);
    t.accept(0);
    t.accept(1);
    t.receive(1, 10);
    t.receive(1, 10); // duplicate
    t.receive(2, 10); // received before its reply arrived
    t.accept(2);
    assert_eq!(t.lost(), 1);
    assert_eq!(t.received.load(Ordering::Relaxed), 2);
    assert_eq!(t.duplicates.load(Ordering::Relaxed), 1);
    t.receive(99, 1); // out of range: ignored
}
