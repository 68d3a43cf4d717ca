use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use herald_protocol::{Message, Stream};
use time::OffsetDateTime;

use super::broker::MemoryBus;
use crate::error::Result;
use crate::model::{Draft, Retention, StreamKey};
use crate::store::Store;

#[derive(Default)]
struct Log {
    last_seq: u64,
    entries: VecDeque<Message>,
}

impl Log {
    fn trim(&mut self, retention: &Retention, now: OffsetDateTime) {
        while self.entries.len() > retention.max_entries {
            self.entries.pop_front();
        }
        while self
            .entries
            .front()
            .is_some_and(|m| now - m.ts > retention.max_age)
        {
            self.entries.pop_front();
        }
    }
}

#[derive(Default)]
struct State {
    logs: HashMap<StreamKey, Log>,
    cursors: HashMap<(String, String, Stream), u64>,
}

/// Streams and cursors in a map behind one lock; appends publish on the bus.
pub struct MemoryStore {
    bus: Arc<MemoryBus>,
    retention: Retention,
    state: Mutex<State>,
}

impl MemoryStore {
    pub fn new(bus: Arc<MemoryBus>, retention: Retention) -> Self {
        MemoryStore {
            bus,
            retention,
            state: Mutex::default(),
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn append(&self, stream: &StreamKey, draft: Draft) -> Result<Message> {
        let mut state = self.state.lock().unwrap();
        let log = state.logs.entry(stream.clone()).or_default();
        log.last_seq += 1;
        let message = draft.into_message(stream.stream(), log.last_seq);
        log.entries.push_back(message.clone());
        log.trim(&self.retention, OffsetDateTime::now_utc());
        // Publishing under the lock keeps each stream's publishes in seq order.
        self.bus.publish(stream, message.clone());
        Ok(message)
    }

    async fn read_after(
        &self,
        stream: &StreamKey,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let mut state = self.state.lock().unwrap();
        let Some(log) = state.logs.get_mut(stream) else {
            return Ok(Vec::new());
        };
        log.trim(&self.retention, OffsetDateTime::now_utc());
        // Seqs in a log are consecutive, so the position is arithmetic.
        let first = log.entries.front().map_or(0, |m| m.seq);
        let skip = (after + 1).saturating_sub(first) as usize;
        Ok(log.entries.iter().skip(skip).take(limit).cloned().collect())
    }

    async fn last_seq(&self, stream: &StreamKey) -> Result<u64> {
        let state = self.state.lock().unwrap();
        Ok(state.logs.get(stream).map_or(0, |l| l.last_seq))
    }

    async fn ack(&self, user: &str, device: &str, stream: Stream, seq: u64) -> Result<u64> {
        let mut state = self.state.lock().unwrap();
        let last = state
            .logs
            .get(&StreamKey::for_user(user, stream))
            .map_or(0, |l| l.last_seq);
        let cursor = state
            .cursors
            .entry((user.to_owned(), device.to_owned(), stream))
            .or_default();
        *cursor = (*cursor).max(seq.min(last));
        Ok(*cursor)
    }

    async fn acked(&self, user: &str, device: &str, stream: Stream) -> Result<u64> {
        let state = self.state.lock().unwrap();
        Ok(state
            .cursors
            .get(&(user.to_owned(), device.to_owned(), stream))
            .copied()
            .unwrap_or(0))
    }
}
