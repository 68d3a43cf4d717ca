//! Webhook events in process: a map, the index by `next_at`, the count
//! of pending events and the dead-letter list (by id, and by when each
//! died) behind one lock. Nothing outlives the process;
//! a lease still holds a claimed event back from other claims until it
//! ends, as on a shared backend.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;
use uuid::Uuid;

use crate::backend::{
    AudiencePage, Created, WebhookBacklog, WebhookEvent, WebhookQueue, WebhookState,
};
use crate::error::Result;

/// [`WebhookQueue`] for the in-memory backend.
#[derive(Default)]
pub struct MemoryWebhooks {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Each event, with when it stops being kept (an ended one).
    events: HashMap<Uuid, (WebhookEvent, Option<Instant>)>,
    /// (next_at, id) of every open event.
    due: BTreeSet<(i64, Uuid)>,
    dead: BTreeSet<Uuid>,
    /// (dead_at, id) of every dead event: the oldest trimmed first.
    dead_at: BTreeSet<(i64, Uuid)>,
    /// Pending events: what `max_pending` is checked against.
    pending: u64,
    /// The audience of announcements' events, in order, paged by name.
    audience: BTreeSet<String>,
}

impl State {
    /// Forgets ended events past their keeping time.
    fn prune(&mut self) {
        let now = Instant::now();
        let gone: Vec<Uuid> = self
            .events
            .iter()
            .filter(|(_, (_, until))| until.is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.remove(id);
        }
    }

    /// Takes the event out of the map and of every index; it, if it was
    /// there.
    fn remove(&mut self, id: Uuid) -> Option<WebhookEvent> {
        let (old, _) = self.events.remove(&id)?;
        self.unindex(&old);
        Some(old)
    }

    /// Takes `old` out of the indexes of its state.
    fn unindex(&mut self, old: &WebhookEvent) {
        if let Some(at) = old.next_at.filter(|_| old.state.is_open()) {
            self.due.remove(&(at, old.id));
        }
        if old.state == WebhookState::Pending {
            self.pending -= 1;
        }
        if old.state == WebhookState::Dead {
            self.dead.remove(&old.id);
            self.dead_at.remove(&(old.dead_at.unwrap_or(0), old.id));
        }
    }

    /// Puts `event` in place of whatever was there, indexed by its state.
    fn put(&mut self, event: WebhookEvent) {
        if let Some((old, _)) = self.events.get(&event.id) {
            let old = old.clone();
            self.unindex(&old);
        }
        if event.state.is_open() {
            self.due.insert((event.next_at.unwrap_or(0), event.id));
        }
        if event.state == WebhookState::Pending {
            self.pending += 1;
        }
        if event.state == WebhookState::Dead {
            self.dead.insert(event.id);
            self.dead_at.insert((event.dead_at.unwrap_or(0), event.id));
        }
        let until = event.state.kept().map(|kept| Instant::now() + kept);
        self.events.insert(event.id, (event, until));
    }

    /// Whether the event is held in state `from`.
    fn is(&self, id: Uuid, from: WebhookState) -> bool {
        self.events.get(&id).is_some_and(|(e, _)| e.state == from)
    }
}

#[async_trait]
impl WebhookQueue for MemoryWebhooks {
    async fn arm(&self, events: &[WebhookEvent]) -> Result<()> {
        let mut state = self.state.lock().unwrap();
        state.prune();
        for event in events {
            if !state.events.contains_key(&event.id) {
                state.put(event.clone());
            }
        }
        Ok(())
    }

    async fn claim(&self, now: i64, limit: usize, lease: Duration) -> Result<Vec<WebhookEvent>> {
        let mut state = self.state.lock().unwrap();
        let until = now.saturating_add(lease.as_millis().min(i64::MAX as u128) as i64);
        let due: Vec<Uuid> = state
            .due
            .range(..=(now, Uuid::max()))
            .take(limit)
            .map(|(_, id)| *id)
            .collect();
        let mut claimed = Vec::with_capacity(due.len());
        for id in due {
            let (event, _) = state.events.get(&id).expect("a due event is kept");
            // Handed out as it stands; kept with the lease's end as its
            // next time, so that a claimer that dies leaves it due again.
            claimed.push(event.clone());
            let mut leased = event.clone();
            leased.next_at = Some(until);
            state.put(leased);
        }
        Ok(claimed)
    }

    async fn settle(&self, from: WebhookState, event: &WebhookEvent) -> Result<bool> {
        let mut state = self.state.lock().unwrap();
        if !state.is(event.id, from) {
            return Ok(false);
        }
        state.put(event.clone());
        Ok(true)
    }

    async fn create(
        &self,
        event: &WebhookEvent,
        full: &WebhookEvent,
        max_pending: u64,
    ) -> Result<Created> {
        let mut state = self.state.lock().unwrap();
        if !state.is(event.id, WebhookState::Armed) {
            return Ok(Created::Lost);
        }
        if state.pending >= max_pending {
            state.put(full.clone());
            return Ok(Created::Full);
        }
        state.put(event.clone());
        Ok(Created::Pending)
    }

    async fn trim_dead(&self, expired_before: i64, keep: u64, batch: usize) -> Result<u64> {
        let mut state = self.state.lock().unwrap();
        let expired: Vec<Uuid> = state
            .dead_at
            .range(..(expired_before, Uuid::nil()))
            .take(batch)
            .map(|(_, id)| *id)
            .collect();
        let excess = (state.dead_at.len() as u64)
            .saturating_sub(expired.len() as u64)
            .saturating_sub(keep);
        let oldest: Vec<Uuid> = state
            .dead_at
            .iter()
            .skip(expired.len())
            .take(batch.min(excess as usize))
            .map(|(_, id)| *id)
            .collect();
        let mut removed = 0;
        for id in expired.into_iter().chain(oldest) {
            removed += u64::from(state.remove(id).is_some());
        }
        Ok(removed)
    }

    async fn get(&self, id: Uuid) -> Result<Option<WebhookEvent>> {
        let mut state = self.state.lock().unwrap();
        state.prune();
        Ok(state.events.get(&id).map(|(e, _)| e.clone()))
    }

    async fn dead(&self, after: Option<Uuid>, limit: usize) -> Result<Vec<WebhookEvent>> {
        let mut state = self.state.lock().unwrap();
        state.prune();
        let from = match after {
            Some(after) => std::ops::Bound::Excluded(after),
            None => std::ops::Bound::Unbounded,
        };
        Ok(state
            .dead
            .range((from, std::ops::Bound::Unbounded))
            .take(limit)
            .map(|id| state.events[id].0.clone())
            .collect())
    }

    async fn backlog(&self) -> Result<WebhookBacklog> {
        let mut state = self.state.lock().unwrap();
        state.prune();
        Ok(WebhookBacklog {
            armed: (state.due.len() as u64).saturating_sub(state.pending),
            pending: state.pending,
            dead: state.dead.len() as u64,
        })
    }

    async fn remember(&self, user: &str) -> Result<()> {
        self.state.lock().unwrap().audience.insert(user.to_owned());
        Ok(())
    }

    async fn forget(&self, user: &str) -> Result<()> {
        self.state.lock().unwrap().audience.remove(user);
        Ok(())
    }

    /// The cursor is the last user of the page before.
    async fn audience(&self, cursor: Option<&str>, limit: usize) -> Result<AudiencePage> {
        use std::ops::Bound;
        let state = self.state.lock().unwrap();
        let from = match cursor {
            Some(c) => Bound::Excluded(c.to_owned()),
            None => Bound::Unbounded,
        };
        let limit = limit.max(1);
        // One more than asked: whether a page follows.
        let mut users: Vec<String> = state
            .audience
            .range((from, Bound::Unbounded))
            .take(limit + 1)
            .cloned()
            .collect();
        let next = (users.len() > limit).then(|| {
            users.truncate(limit);
            users[limit - 1].clone()
        });
        Ok(AudiencePage { users, next })
    }

    async fn events_of(&self, user: &str) -> Result<Vec<WebhookEvent>> {
        let mut state = self.state.lock().unwrap();
        state.prune();
        let mut events: Vec<WebhookEvent> = state
            .events
            .values()
            .filter(|(e, _)| e.user == user)
            .map(|(e, _)| e.clone())
            .collect();
        events.sort_by_key(|e| e.id);
        Ok(events)
    }

    async fn forget_events(&self, user: &str, ids: &[Uuid]) -> Result<u64> {
        let mut state = self.state.lock().unwrap();
        let mut removed = 0;
        for id in ids {
            if state.events.get(id).is_some_and(|(e, _)| e.user == user) {
                state.remove(*id);
                removed += 1;
            }
        }
        Ok(removed)
    }
}
