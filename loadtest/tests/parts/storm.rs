//! The storm's parts: which processes may be killed, how the clients
//! start over the victims, and the resume counts by second.

use herald_loadtest::scenario::storm::clients_per_victim;
use herald_loadtest::scenario::storm::outcome::by_second;
use herald_loadtest::scenario::storm::span::{check_victims, gone};
use herald_loadtest::scenario::storm::traffic::{message, nth_bit, UNTIMED};

#[test]
fn only_herald_processes_qualify() {
    assert!(
        check_victims(&[std::process::id()]).is_err(),
        "the test binary is not herald"
    );
    assert!(check_victims(&[u32::MAX - 7]).is_err());
    assert!(!gone(std::process::id()));
    assert!(gone(u32::MAX - 7));
}

#[test]
fn clients_per_victim_add_up() {
    let n = 20_001;
    let per = clients_per_victim(n, 2);
    assert_eq!(per, [10_001, 10_000]);
    assert_eq!(per.iter().sum::<usize>(), n);
}

#[test]
fn by_second_is_cumulative() {
    assert_eq!(
        by_second(&[100, 1_200_000, 1_300_000, 3_000_000]),
        vec![1, 3, 3, 4]
    );
    assert!(by_second(&[]).is_empty());
}

#[test]
fn messages_go_to_one_storm_user_stamped() {
    let m = message(7, 0, 3, 11);
    assert_eq!(m["to"]["users"][0], "lt-st-7-3");
    assert_eq!(m["category"], "system");
    let body = m["body"].as_str().unwrap();
    assert!(body.starts_with("lt:7:0:11:"), "{body}");
    assert_eq!(m["data"]["lt_k"], 11);
    // Sent while the delivery latency is not timed: another trial.
    let body = message(7, UNTIMED, 3, 11)["body"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(body.starts_with("lt:7:1:11:"), "{body}");
}

#[test]
fn the_traffic_goes_to_the_nodes_up_in_turn() {
    assert_eq!(nth_bit(0, 5), None);
    let picks: Vec<_> = (0..6).map(|t| nth_bit(0b1_0110, t).unwrap()).collect();
    assert_eq!(picks, [1, 2, 4, 1, 2, 4]);
    assert_eq!(nth_bit(1 << 63, 7), Some(63));
}
