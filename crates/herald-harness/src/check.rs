//! The server half of the exactly-once check: every message the API
//! accepted (a 202 with its id and seq) against what each device of its
//! user received ([`crate::ledger`]).
//!
//! "Exactly once" holds when nothing accepted is lost (by id, and by seq),
//! every accepted id arrived at the seq its 202 named, and no device saw a
//! fault ([`Faults::clean`]). Messages that arrived without a 202 on record
//! (a request whose answer was lost, or a 503 whose append ran anyway: it
//! may have been stored) are counted as `unexpected`, information only.
//!
//! Users are whatever the caller keys them by (`U`): the load generator's
//! user numbers, the fault tests' names. A user may have several devices;
//! each must get every message.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::ledger::Faults;

/// One message the API accepted for one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Accepted<U> {
    pub user: U,
    pub seq: u64,
    pub id: Uuid,
    /// When the 202 came.
    #[serde(skip)]
    pub at: Instant,
}

impl<U> Accepted<U> {
    /// Accepted now.
    pub fn new(user: U, seq: u64, id: Uuid) -> Self {
        Accepted {
            user,
            seq,
            id,
            at: Instant::now(),
        }
    }
}

/// What one device received of its inbox, as it crosses a worker pipe.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Received<U> {
    pub user: U,
    pub messages: Vec<(u64, Uuid)>,
    pub faults: Faults,
}

/// The verdict over every device.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tally<U> {
    pub devices: u64,
    /// Deliveries expected: each accepted message once per device of its
    /// user (once for a user with no device reporting).
    pub accepted: u64,
    /// Deliveries whose id arrived.
    pub delivered: u64,
    /// Deliveries whose id never arrived.
    pub lost: u64,
    /// Deliveries at whose accepted seq nothing arrived.
    pub lost_by_seq: u64,
    /// Accepted ids that arrived at another seq than their 202 named.
    pub wrong_seq: u64,
    /// Arrivals with no 202 on record (information).
    pub unexpected: u64,
    pub faults: Faults,
    pub exactly_once: bool,
    /// A few of the lost messages, for a first look.
    pub lost_examples: Vec<Accepted<U>>,
}

/// Lost messages a tally keeps as examples.
const LOST_EXAMPLES: usize = 5;

/// One device's arrivals, looked up by id and by seq.
struct Arrivals {
    seq_of: HashMap<Uuid, u64>,
    seqs: HashSet<u64>,
}

impl Arrivals {
    fn of<U>(d: &Received<U>) -> Self {
        Arrivals {
            seq_of: d.messages.iter().map(|&(seq, id)| (id, seq)).collect(),
            seqs: d.messages.iter().map(|m| m.0).collect(),
        }
    }
}

impl<U: Clone> Tally<U> {
    /// One delivery of `a` due at a device that received `got` (None: a
    /// user with no device reporting).
    fn count(&mut self, a: &Accepted<U>, got: Option<&Arrivals>) {
        self.accepted += 1;
        match got.and_then(|g| g.seq_of.get(&a.id)) {
            Some(&seq) => {
                self.delivered += 1;
                if seq != a.seq {
                    self.wrong_seq += 1;
                }
            }
            None => {
                self.lost += 1;
                if self.lost_examples.len() < LOST_EXAMPLES {
                    self.lost_examples.push(a.clone());
                }
            }
        }
        if !got.is_some_and(|g| g.seqs.contains(&a.seq)) {
            self.lost_by_seq += 1;
        }
    }
}

/// Checks `devices` against `accepted`.
pub fn check<U: Eq + Hash + Clone + Default>(
    accepted: &[Accepted<U>],
    devices: &[Received<U>],
) -> Tally<U> {
    let mut t = Tally::default();
    let mut by_user: HashMap<&U, Vec<Arrivals>> = HashMap::new();
    for d in devices {
        t.devices += 1;
        t.faults.add(&d.faults);
        by_user.entry(&d.user).or_default().push(Arrivals::of(d));
    }
    let mut accepted_ids: HashMap<&U, HashSet<Uuid>> = HashMap::new();
    for a in accepted {
        accepted_ids.entry(&a.user).or_default().insert(a.id);
        match by_user.get(&a.user) {
            Some(got) => got.iter().for_each(|g| t.count(a, Some(g))),
            None => t.count(a, None),
        }
    }
    for d in devices {
        let known = accepted_ids.get(&d.user);
        let unknown = d
            .messages
            .iter()
            .filter(|(_, id)| !known.is_some_and(|k| k.contains(id)));
        t.unexpected += unknown.count() as u64;
    }
    t.exactly_once = t.lost == 0 && t.lost_by_seq == 0 && t.wrong_seq == 0 && t.faults.clean();
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(user: usize, seq: u64, id: u128) -> Accepted<usize> {
        Accepted::new(user, seq, Uuid::from_u128(id))
    }

    fn dev(user: usize, got: &[(u64, u128)]) -> Received<usize> {
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

    #[test]
    fn every_device_of_a_user_must_get_everything() {
        let accepted = [acc(0, 1, 10), acc(0, 2, 11)];
        let t = check(
            &accepted,
            &[dev(0, &[(1, 10), (2, 11)]), dev(0, &[(1, 10)])],
        );
        assert_eq!((t.devices, t.accepted, t.delivered, t.lost), (2, 4, 3, 1));
        assert!(!t.exactly_once);
    }

    #[test]
    fn the_report_shape_leaves_the_acceptance_time_out() {
        let json = serde_json::to_value(acc(3, 9, 77)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"user": 3, "seq": 9, "id": Uuid::from_u128(77)})
        );
    }
}
