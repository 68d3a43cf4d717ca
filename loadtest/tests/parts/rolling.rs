//! The roll's figures: which clients each step moved and how long after
//! its SIGTERM they were back, and the fullest node a roll makes.

use herald_loadtest::scenario::rolling::report::{back_per_step, fullest};
use herald_loadtest::scenario::storm::pipe::{ClientOutcome, Episode};

const S: u64 = 1_000_000;

fn client(episodes: &[(u64, Option<u64>, u32)]) -> ClientOutcome {
    let episodes = episodes
        .iter()
        .map(|&(lost, resumed, refused)| Episode {
            lost_us: lost,
            welcomed_us: resumed,
            resumed_us: resumed,
            refused,
        })
        .collect();
    ClientOutcome {
        episodes,
        ..ClientOutcome::default()
    }
}

#[test]
fn each_step_counts_its_clients_from_its_own_sigterm() {
    // SIGTERMs at 100 s and 200 s.
    let sigterms = [100 * S, 200 * S];
    let clients = [
        client(&[(101 * S, Some(110 * S), 0)]),   // step 0: 10 s
        client(&[(120 * S, Some(125 * S), 2)]),   // step 0: 25 s
        client(&[(99 * S, Some(99 * S + 1), 0)]), // before: none
        client(&[(105 * S, Some(106 * S), 0), (201 * S, Some(231 * S), 1)]), // both
        client(&[(210 * S, None, 4)]),            // step 1: never
        client(&[]),                              // never moved
    ];
    let back = back_per_step(&clients, &sigterms);
    assert_eq!(back.len(), 2);
    let (a, b) = (&back[0], &back[1]);
    assert_eq!((a.moved, a.resumed, a.unresumed), (3, 3, 0));
    assert_eq!(a.refused_attempts, 2);
    assert_eq!(a.after.p100_ms, Some(25_000.0));
    assert_eq!(a.after.p50_ms, Some(10_000.0));
    assert_eq!((b.moved, b.resumed, b.unresumed), (2, 1, 1));
    // One never came back: the last share never got there.
    assert_eq!(b.after.p100_ms, None);
    assert_eq!(b.after.p50_ms, Some(31_000.0));
    assert_eq!(b.refused_attempts, 5);
}

#[test]
fn a_client_moved_twice_in_one_step_counts_once_from_its_first_loss() {
    let clients = [client(&[
        (101 * S, Some(102 * S), 0),
        (103 * S, Some(140 * S), 0),
    ])];
    let back = back_per_step(&clients, &[100 * S]);
    assert_eq!((back[0].moved, back[0].lost_again), (1, 1));
    assert_eq!(back[0].after.p100_ms, Some(2_000.0));
}

#[test]
fn the_last_old_node_holds_the_most_before_its_turn() {
    // 4 nodes: (N/4)·1.25³ = 0.48828 N.
    assert!((fullest(100_000, 4) - 48_828.125).abs() < 1e-6);
    assert!((fullest(36_000, 4) - 17_578.125).abs() < 1e-6);
    // 2 nodes: the second takes half the first's: 3/4 of all.
    assert!((fullest(1_000, 2) - 750.0).abs() < 1e-9);
    assert_eq!(fullest(10, 1), 10.0);
    assert_eq!(fullest(10, 0), 0.0);
}
