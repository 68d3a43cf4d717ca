//! The decision of one round: move how many, or why not. Pure, so the
//! rules are tested without a cluster.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::settings::Rebalancing;

/// What a round does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Ask this many connections (the excess over the mean) to move.
    Move(usize),
    /// At or below `mean × (1 + tolerance)`.
    Balanced,
    /// The first read, a node came or went, or a count moved by more than
    /// half the tolerance band since the last read: clients are still
    /// landing somewhere.
    Converging,
    /// This node moved less than `settle_ms` ago.
    Settling,
    /// Fewer than two nodes, or this one not among them.
    Alone,
}

/// One node's rounds: the last counts read and when its last move ended.
pub struct Planner {
    settings: Rebalancing,
    last: Option<BTreeMap<String, u64>>,
    quiet_until: Option<Instant>,
}

impl Planner {
    pub fn new(settings: Rebalancing) -> Planner {
        Planner {
            settings,
            last: None,
            quiet_until: None,
        }
    }

    /// The round's decision for node `me`, given every live node's count.
    pub fn decide(&mut self, me: &str, counts: &BTreeMap<String, u64>, now: Instant) -> Decision {
        let previous = self.last.replace(counts.clone());
        if self.quiet_until.is_some_and(|until| now < until) {
            return Decision::Settling;
        }
        let Some(&mine) = counts.get(me) else {
            return Decision::Alone;
        };
        if counts.len() < 2 {
            return Decision::Alone;
        }
        let mean = counts.values().sum::<u64>() as f64 / counts.len() as f64;
        let band = mean * self.settings.tolerance;
        if !steady(previous.as_ref(), counts, (band / 2.0).max(1.0)) {
            return Decision::Converging;
        }
        if mine as f64 <= mean + band {
            return Decision::Balanced;
        }
        match (mine as f64 - mean).floor() as usize {
            0 => Decision::Balanced,
            excess => Decision::Move(excess),
        }
    }

    /// This node's move ended now: no move before `settle_ms` from now.
    pub fn moved(&mut self, now: Instant) {
        self.quiet_until = Some(now + self.settings.settle);
    }
}

/// The same nodes as the last read, each within `slack` of its count then.
fn steady(
    previous: Option<&BTreeMap<String, u64>>,
    now: &BTreeMap<String, u64>,
    slack: f64,
) -> bool {
    let Some(previous) = previous else {
        return false;
    };
    previous.len() == now.len()
        && now.iter().all(|(node, &n)| {
            previous
                .get(node)
                .is_some_and(|&p| (n as f64 - p as f64).abs() <= slack)
        })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn planner() -> Planner {
        Planner::new(Rebalancing {
            enabled: true,
            tolerance: 0.15,
            rate_per_sec: 100,
            interval: Duration::from_millis(100),
            settle: Duration::from_secs(2),
        })
    }

    fn counts(of: &[(&str, u64)]) -> BTreeMap<String, u64> {
        of.iter().map(|(n, c)| (n.to_string(), *c)).collect()
    }

    #[test]
    fn only_a_node_above_the_band_moves_and_only_its_excess() {
        let t0 = Instant::now();
        let mut a = planner();
        let scaled = counts(&[("a", 40), ("b", 0)]);
        assert_eq!(a.decide("a", &scaled, t0), Decision::Converging);
        assert_eq!(a.decide("a", &scaled, t0), Decision::Move(20));
        a.moved(t0);
        let landed = counts(&[("a", 20), ("b", 20)]);
        assert_eq!(a.decide("a", &landed, t0), Decision::Settling);
        let later = t0 + Duration::from_secs(2);
        assert_eq!(a.decide("a", &landed, later), Decision::Balanced);
        // The node below the mean never moves; within the band nobody does.
        let mut b = planner();
        b.decide("b", &scaled, t0);
        assert_eq!(b.decide("b", &scaled, t0), Decision::Balanced);
        let mut c = planner();
        let near = counts(&[("a", 23), ("b", 17)]);
        c.decide("a", &near, t0);
        assert_eq!(c.decide("a", &near, t0), Decision::Balanced);
    }

    #[test]
    fn it_waits_while_counts_move_or_nodes_change() {
        let t0 = Instant::now();
        let mut a = planner();
        a.decide("a", &counts(&[("a", 40), ("b", 0)]), t0);
        // Two clients landed on b since: more than half the band (1.5).
        assert_eq!(
            a.decide("a", &counts(&[("a", 40), ("b", 2)]), t0),
            Decision::Converging
        );
        assert_eq!(
            a.decide("a", &counts(&[("a", 40), ("b", 2), ("c", 0)]), t0),
            Decision::Converging
        );
        assert_eq!(
            a.decide("a", &counts(&[("a", 40), ("b", 2), ("c", 0)]), t0),
            Decision::Move(26)
        );
        assert_eq!(a.decide("a", &counts(&[("a", 40)]), t0), Decision::Alone);
        assert_eq!(
            a.decide("z", &counts(&[("a", 1), ("b", 1)]), t0),
            Decision::Alone
        );
    }
}
