//! The server half of the exactly-once check: every message the API
//! accepted (a 202 with its id and seq) against what each device received.
//!
//! "Exactly once" holds when nothing accepted is lost (by id, and by seq),
//! every accepted id arrived at the seq its 202 named, and no device saw a
//! fault ([`Faults::clean`]). Messages that arrived without a 202 on record
//! (a request whose answer was lost: it may have been stored) are counted
//! as `unexpected`, information only.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ledger::Faults;

/// One message the API accepted for one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// The user's index in the run.
    pub user: usize,
    pub seq: u64,
    pub id: Uuid,
}

/// What one device received of its inbox, as it crosses the worker pipe.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Received {
    pub user: usize,
    pub messages: Vec<(u64, Uuid)>,
    pub faults: Faults,
}

/// The verdict over every device.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    pub devices: u64,
    /// Accepted messages (one device per user: deliveries expected).
    pub accepted: u64,
    /// Accepted messages whose id arrived.
    pub delivered: u64,
    /// Accepted messages whose id never arrived.
    pub lost: u64,
    /// Accepted seqs at which nothing arrived.
    pub lost_by_seq: u64,
    /// Accepted ids that arrived at another seq than their 202 named.
    pub wrong_seq: u64,
    /// Arrivals with no 202 on record (information).
    pub unexpected: u64,
    pub faults: Faults,
    pub exactly_once: bool,
    /// A few of the lost messages, for a first look.
    pub lost_examples: Vec<Accepted>,
}

/// Checks `devices` against `accepted`. A user with no device reporting
/// counts every accepted message of theirs as lost.
pub fn check(accepted: &[Accepted], devices: &[Received]) -> Tally {
    let mut by_user: HashMap<usize, HashMap<Uuid, u64>> = HashMap::new();
    let mut t = Tally::default();
    for d in devices {
        t.devices += 1;
        t.faults.add(&d.faults);
        let got = by_user.entry(d.user).or_default();
        got.extend(d.messages.iter().map(|&(seq, id)| (id, seq)));
    }
    let mut known: HashMap<usize, usize> = HashMap::new();
    for a in accepted {
        t.accepted += 1;
        *known.entry(a.user).or_default() += 1;
        let got = by_user.get(&a.user);
        match got.and_then(|g| g.get(&a.id)) {
            Some(&seq) => {
                t.delivered += 1;
                if seq != a.seq {
                    t.wrong_seq += 1;
                }
            }
            None => {
                t.lost += 1;
                if t.lost_examples.len() < 5 {
                    t.lost_examples.push(*a);
                }
            }
        }
        let seq_arrived = got.is_some_and(|g| g.values().any(|&s| s == a.seq));
        if !seq_arrived {
            t.lost_by_seq += 1;
        }
    }
    for d in devices {
        let expected = known.get(&d.user).copied().unwrap_or(0);
        t.unexpected += (d.messages.len()).saturating_sub(expected) as u64;
    }
    t.exactly_once = t.lost == 0 && t.lost_by_seq == 0 && t.wrong_seq == 0 && t.faults.clean();
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(user: usize, seq: u64, id: u128) -> Accepted {
        Accepted {
            user,
            seq,
            id: Uuid::from_u128(id),
        }
    }

    fn dev(user: usize, got: &[(u64, u128)]) -> Received {
        Received {
            user,
            messages: got.iter().map(|&(s, i)| (s, Uuid::from_u128(i))).collect(),
            faults: Faults::default(),
        }
    }

    #[test]
    fn everything_once_is_exactly_once() {
        let accepted = [acc(0, 1, 10), acc(0, 2, 11), acc(1, 1, 12)];
        let t = check(
            &accepted,
            &[dev(0, &[(1, 10), (2, 11)]), dev(1, &[(1, 12)])],
        );
        assert!(t.exactly_once, "{t:?}");
        assert_eq!(
            (t.accepted, t.delivered, t.lost, t.unexpected),
            (3, 3, 0, 0)
        );
    }

    #[test]
    fn a_missing_id_is_lost_by_id_and_by_seq() {
        let accepted = [acc(0, 1, 10), acc(0, 2, 11), acc(2, 1, 13)];
        let t = check(&accepted, &[dev(0, &[(1, 10)])]);
        assert_eq!((t.lost, t.lost_by_seq), (2, 2), "user 2 reported nothing");
        assert_eq!(t.lost_examples.len(), 2);
        assert!(!t.exactly_once);
    }

    #[test]
    fn an_id_at_another_seq_is_wrong_and_leaves_its_seq_lost() {
        let t = check(&[acc(0, 1, 10)], &[dev(0, &[(2, 10)])]);
        assert_eq!((t.delivered, t.wrong_seq, t.lost_by_seq), (1, 1, 1));
        assert!(!t.exactly_once);
    }

    #[test]
    fn device_faults_break_it_and_unknown_arrivals_do_not() {
        let mut d = dev(0, &[(1, 10), (2, 99)]);
        let t = check(&[acc(0, 1, 10)], std::slice::from_ref(&d));
        assert!(t.exactly_once);
        assert_eq!(t.unexpected, 1);
        d.faults.doubled = 1;
        d.faults.redelivered = 4;
        let t = check(&[acc(0, 1, 10)], &[d]);
        assert!(!t.exactly_once);
        assert_eq!((t.faults.doubled, t.faults.redelivered), (1, 4));
    }
}
