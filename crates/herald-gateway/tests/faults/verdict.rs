//! The checker's verdict over a fleet, as a fault test prints it: the
//! exactly-once tally, and what the devices lived through on the way
//! (resets, connections, how they were closed, the first gaps).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, MutexGuard};

use herald_harness::{Device, Tally};

use crate::fleet::Life;

#[derive(Debug, Default)]
pub struct Verdict {
    pub tally: Tally<String>,
    /// `reset` frames: the store went back (a lossy failover).
    pub resets: u64,
    /// Messages a device had, written again after a reset.
    pub resent_after_reset: u64,
    pub connections: usize,
    /// Ended connections by close code (`none`: the connection just ended).
    pub closes: BTreeMap<String, usize>,
    pub gap_examples: Vec<String>,
}

impl Verdict {
    pub fn new<'a>(
        tally: Tally<String>,
        devices: &[Arc<Device>],
        lives: impl Iterator<Item = MutexGuard<'a, Life>>,
    ) -> Verdict {
        let mut v = Verdict {
            tally,
            resets: 0,
            resent_after_reset: 0,
            connections: 0,
            closes: BTreeMap::new(),
            gap_examples: Vec::new(),
        };
        for (d, life) in devices.iter().zip(lives) {
            let inbox = d.inbox.lock().unwrap();
            v.resets += inbox.resets;
            v.resent_after_reset += inbox.resent_after_reset;
            for (expected, got) in &inbox.first_gaps {
                let name = d.setup.name.as_deref().unwrap_or_default();
                let gap = format!("{}/{name} expected {expected} got {got}", d.user);
                v.gap_examples.push(gap);
            }
            v.connections += life.welcomes.len();
            for (_, code) in &life.closes {
                let code = code.map_or("none".into(), |c| c.to_string());
                *v.closes.entry(code).or_default() += 1;
            }
        }
        v
    }

    /// Nothing accepted lost, every id at its seq, no device fault.
    pub fn exactly_once(&self) -> bool {
        self.tally.exactly_once
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.tally;
        write!(
            f,
            "{} devices, {} deliveries expected: lost {} (by seq {}), doubled {}, gaps {}, \
             seq reused {}, id reused {}, wrong seq {} (redelivered after reconnect {}, resent \
             by sync {}, unexpected {}, resets {}, resent after a reset {}); {} connections, \
             closes {:?}",
            t.devices,
            t.accepted,
            t.lost,
            t.lost_by_seq,
            t.faults.doubled,
            t.faults.gaps,
            t.faults.seq_reused,
            t.faults.id_reused,
            t.wrong_seq,
            t.faults.redelivered,
            t.faults.resent_by_sync,
            t.unexpected,
            self.resets,
            self.resent_after_reset,
            self.connections,
            self.closes
        )?;
        if !t.lost_examples.is_empty() {
            let lost: Vec<String> = t
                .lost_examples
                .iter()
                .map(|a| format!("{} seq {}", a.user, a.seq))
                .collect();
            write!(f, "; lost e.g. {lost:?}")?;
        }
        if !self.gap_examples.is_empty() {
            write!(f, "; gaps e.g. {:?}", self.gap_examples)?;
        }
        Ok(())
    }
}
