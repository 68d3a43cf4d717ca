//! Which node a device tries after one closed or refused it, as the SDK
//! picks from its list of URLs. Its own file because both the dial's
//! default choice (`device.rs`) and a device's life (`session.rs`) name
//! it, and the session runs devices.

use rand::{Rng, RngExt};

/// The node to try after `current` closed or refused: at random among the
/// others that have not refused since the last connection (`refused`, a
/// bit per node); when all have, the slate is wiped.
pub fn next_node<R: Rng + ?Sized>(
    current: usize,
    nodes: usize,
    refused: &mut u64,
    rng: &mut R,
) -> usize {
    if nodes <= 1 {
        return 0;
    }
    let others = |refused: u64| -> Vec<usize> {
        (0..nodes)
            .filter(|&n| n != current && refused & (1 << n) == 0)
            .collect()
    };
    let mut candidates = others(*refused);
    if candidates.is_empty() {
        *refused = 0;
        candidates = others(0);
    }
    candidates[rng.random_range(0..candidates.len())]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn next_node_is_another_one_that_did_not_refuse() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut refused = 0u64;
        for _ in 0..100 {
            let n = next_node(1, 4, &mut refused, &mut rng);
            assert_ne!(n, 1);
        }
        refused = 0b0101; // 0 and 2 refused
        for _ in 0..100 {
            assert_eq!(next_node(1, 4, &mut refused, &mut rng), 3);
        }
        refused = 0b1101; // every other node refused: start over
        let n = next_node(1, 4, &mut refused, &mut rng);
        assert!(n != 1 && refused == 0, "{n} {refused:b}");
        assert_eq!(next_node(0, 1, &mut refused, &mut rng), 0);
    }

    #[test]
    fn next_node_spreads_over_the_others() {
        let mut rng = StdRng::seed_from_u64(11);
        let mut seen = [0u32; 4];
        for _ in 0..3_000 {
            let mut refused = 0;
            seen[next_node(0, 4, &mut refused, &mut rng)] += 1;
        }
        assert_eq!(seen[0], 0);
        assert!(
            seen[1..].iter().all(|&c| (850..1150).contains(&c)),
            "{seen:?}"
        );
    }
}
