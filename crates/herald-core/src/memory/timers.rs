//! Scheduled sends and snooze wake-ups in process: maps and indexes by due
//! time behind one lock. Nothing outlives the process; a lease still holds
//! a claimed send (or user) back from other claims until it ends, as on a
//! shared backend.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;
use uuid::Uuid;

use crate::backend::{
    Cancelled, ScheduleState, ScheduledSend, ScheduledStatus, Timers, SCHEDULE_KEPT,
};
use crate::error::Result;

/// [`Timers`] for the in-memory backend.
#[derive(Default)]
pub struct MemoryTimers {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<Uuid, Entry>,
    /// (due or lease end in unix ms, id) of every pending send.
    due: BTreeSet<(i64, Uuid)>,
    /// Snooze wake-ups: each user's (wake-up or lease end), and the index.
    wakes: HashMap<String, i64>,
    wake_index: BTreeSet<(i64, String)>,
    /// Users a claim holds, with the soonest wake-up asked for since.
    held: HashMap<String, Option<i64>>,
}

impl State {
    fn set_wake(&mut self, user: &str, at: Option<i64>) {
        if let Some(old) = self.wakes.remove(user) {
            self.wake_index.remove(&(old, user.to_owned()));
        }
        if let Some(at) = at {
            self.wakes.insert(user.to_owned(), at);
            self.wake_index.insert((at, user.to_owned()));
        }
    }
}

fn sooner(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

struct Entry {
    deliver_at: i64,
    state: ScheduleState,
    /// The send, until delivered or cancelled.
    send: Option<ScheduledSend>,
    /// Where it sits in `due` while pending.
    slot: i64,
    claimed: bool,
    ended: Option<Instant>,
}

#[async_trait]
impl Timers for MemoryTimers {
    async fn schedule(&self, send: &ScheduledSend) -> Result<()> {
        let mut state = self.state.lock().unwrap();
        state
            .entries
            .retain(|_, e| e.ended.is_none_or(|t| t.elapsed() < SCHEDULE_KEPT));
        if state.entries.contains_key(&send.id) {
            return Ok(());
        }
        state.due.insert((send.deliver_at, send.id));
        state.entries.insert(
            send.id,
            Entry {
                deliver_at: send.deliver_at,
                state: ScheduleState::Pending,
                send: Some(send.clone()),
                slot: send.deliver_at,
                claimed: false,
                ended: None,
            },
        );
        Ok(())
    }

    async fn claim_due(
        &self,
        now: i64,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<ScheduledSend>> {
        let mut state = self.state.lock().unwrap();
        let until = now.saturating_add(lease.as_millis().min(i64::MAX as u128) as i64);
        let due: Vec<(i64, Uuid)> = state
            .due
            .range(..=(now, Uuid::max()))
            .take(limit)
            .copied()
            .collect();
        let mut claimed = Vec::with_capacity(due.len());
        for slot in due {
            state.due.remove(&slot);
            state.due.insert((until, slot.1));
            let entry = state
                .entries
                .get_mut(&slot.1)
                .expect("a due send has an entry");
            entry.slot = until;
            entry.claimed = true;
            claimed.extend(entry.send.clone());
        }
        Ok(claimed)
    }

    async fn delivered(&self, ids: &[Uuid]) -> Result<()> {
        let mut state = self.state.lock().unwrap();
        for id in ids {
            let Some(entry) = state.entries.get_mut(id) else {
                continue;
            };
            if entry.state != ScheduleState::Pending {
                continue;
            }
            entry.state = ScheduleState::Delivered;
            entry.send = None;
            entry.ended = Some(Instant::now());
            let slot = (entry.slot, *id);
            state.due.remove(&slot);
        }
        Ok(())
    }

    async fn cancel(&self, id: Uuid) -> Result<Cancelled> {
        let mut state = self.state.lock().unwrap();
        let Some(entry) = state.entries.get_mut(&id) else {
            return Ok(Cancelled::Unknown);
        };
        match entry.state {
            ScheduleState::Cancelled => return Ok(Cancelled::Cancelled),
            ScheduleState::Delivered => return Ok(Cancelled::Delivered),
            ScheduleState::Pending if entry.claimed => return Ok(Cancelled::Delivered),
            ScheduleState::Pending => {}
        }
        entry.state = ScheduleState::Cancelled;
        entry.send = None;
        entry.ended = Some(Instant::now());
        let slot = (entry.slot, id);
        state.due.remove(&slot);
        Ok(Cancelled::Cancelled)
    }

    async fn status(&self, id: Uuid) -> Result<Option<ScheduledStatus>> {
        let state = self.state.lock().unwrap();
        Ok(state.entries.get(&id).map(|e| ScheduledStatus {
            id,
            state: e.state,
            deliver_at: e.deliver_at,
        }))
    }

    async fn pending(&self) -> Result<u64> {
        Ok(self.state.lock().unwrap().due.len() as u64)
    }

    async fn wake_at(&self, user: &str, at: i64) -> Result<()> {
        let mut state = self.state.lock().unwrap();
        if let Some(asked) = state.held.get_mut(user) {
            *asked = sooner(*asked, Some(at));
            return Ok(());
        }
        let current = state.wakes.get(user).copied();
        state.set_wake(user, sooner(current, Some(at)));
        Ok(())
    }

    async fn claim_wakes(&self, now: i64, limit: usize, lease: Duration) -> Result<Vec<String>> {
        let mut state = self.state.lock().unwrap();
        let until = now.saturating_add(lease.as_millis().min(i64::MAX as u128) as i64);
        let due: Vec<String> = state
            .wake_index
            .iter()
            .take_while(|(at, _)| *at <= now)
            .take(limit)
            .map(|(_, user)| user.clone())
            .collect();
        for user in &due {
            state.set_wake(user, Some(until));
            state.held.entry(user.clone()).or_insert(None);
        }
        Ok(due)
    }

    async fn woken(&self, user: &str, next: Option<i64>) -> Result<()> {
        let mut state = self.state.lock().unwrap();
        let asked = state.held.remove(user).flatten();
        state.set_wake(user, sooner(next, asked));
        Ok(())
    }

    async fn snoozing(&self) -> Result<u64> {
        Ok(self.state.lock().unwrap().wakes.len() as u64)
    }

    async fn scheduled_for(&self, user: &str) -> Result<Vec<ScheduledSend>> {
        let state = self.state.lock().unwrap();
        let mut sends: Vec<ScheduledSend> = state
            .entries
            .values()
            .filter(|e| e.state == ScheduleState::Pending)
            .filter_map(|e| e.send.clone())
            .filter(|s| addressed_to(s, user))
            .collect();
        sends.sort_by_key(|s| (s.deliver_at, s.id));
        Ok(sends)
    }

    async fn forget_receiver(&self, user: &str) -> Result<u64> {
        let mut guard = self.state.lock().unwrap();
        let state = &mut *guard;
        let mut changed = 0;
        let mut ended = Vec::new();
        for (id, entry) in state.entries.iter_mut() {
            if entry.state != ScheduleState::Pending || entry.claimed {
                continue;
            }
            let Some(send) = entry.send.as_mut().filter(|s| addressed_to(s, user)) else {
                continue;
            };
            changed += 1;
            let users = send.users.as_mut().expect("addressed by name");
            users.retain(|u| u != user);
            if users.is_empty() {
                entry.state = ScheduleState::Cancelled;
                entry.send = None;
                entry.ended = Some(Instant::now());
                ended.push((entry.slot, *id));
            }
        }
        for slot in ended {
            state.due.remove(&slot);
        }
        Ok(changed)
    }
}

/// Whether `send` names `user` among its receivers.
fn addressed_to(send: &ScheduledSend, user: &str) -> bool {
    send.users
        .as_ref()
        .is_some_and(|users| users.iter().any(|u| u == user))
}
