//! Webhook events on Redis, shared by every node on the same Redis and key
//! prefix (`docs/redis.md`, *Webhook events*).
//!
//! - `{wh}:due`: a sorted set of the open events (armed or pending),
//!   member = id, score = when a claim may take it; a claim moves each
//!   event it takes to the end of its lease, so a node that dies holding
//!   events leaves them to the next claim after the lease.
//! - `{wh}:e:<id>`: the event's hash: `state` and `event` (the event as
//!   JSON). An ended one expires after [`WebhookState::kept`].
//! - `{wh}:dead`: the dead events, every score 0, so that a page by id is
//!   a `ZRANGEBYLEX`.
//! - `{wh}:dead_at`: the same ids scored by when each died, so that the
//!   oldest are trimmed first ([`WebhookQueue::trim_dead`]).
//! - `{wh}:counts`: open events by state (`armed`, `pending`), kept by the
//!   scripts that move them.
//! - `{wh}:audience`: who an announcement's event is armed for: users who
//!   connected while webhooks were on, every score 0, paged by name.
//!
//! One tag for everything: every script touches one slot, a claim of a
//! batch is one call (the price on a Cluster is one hot slot, as for the
//! schedule).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::Value;
use herald_core::backend::{
    AudiencePage, Created, WebhookBacklog, WebhookEvent, WebhookQueue, WebhookState, DEAD_KEPT,
};
use herald_core::{CoreError, Result};
use uuid::Uuid;

use crate::leased::{self, millis};
use crate::script::Script;
use crate::{unavailable, Shared};

/// [`WebhookQueue`] on Redis.
pub struct RedisWebhooks {
    shared: Arc<Shared>,
    arm: Script,
    claim: Script,
    settle: Script,
    create: Script,
    trim_dead: Script,
    dead_page: Script,
    backlog: Script,
    audience: Script,
    of_user: Script,
    forget_events: Script,
}

impl RedisWebhooks {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        RedisWebhooks {
            shared,
            arm: Script::new("webhook_arm"),
            claim: Script::new("webhook_claim"),
            settle: Script::new("webhook_settle"),
            create: Script::new("webhook_create"),
            trim_dead: Script::new("webhook_trim_dead"),
            dead_page: Script::new("webhook_dead"),
            backlog: Script::new("webhook_backlog"),
            audience: Script::new("webhook_audience"),
            of_user: Script::new("webhook_of_user"),
            forget_events: Script::new("webhook_forget_events"),
        }
    }
}

impl RedisWebhooks {
    /// The keys of a script that moves one event: due, dead, counts, its
    /// hash, dead_at.
    fn event_keys(&self, event: &WebhookEvent) -> Vec<String> {
        let keys = &self.shared.keys;
        vec![
            keys.webhooks_due(),
            keys.webhooks_dead(),
            keys.webhooks_counts(),
            keys.webhook(event.id),
            keys.webhooks_dead_at(),
        ]
    }
}

fn corrupt(what: impl std::fmt::Display) -> CoreError {
    CoreError::Unavailable(format!("redis: webhook event unreadable: {what}"))
}

fn json(event: &WebhookEvent) -> Result<String> {
    serde_json::to_string(event).map_err(corrupt)
}

/// How long an event in `event`'s state is kept, as a script reads it
/// ('' = for good).
fn keep(event: &WebhookEvent) -> String {
    event
        .state
        .kept()
        .map_or_else(String::new, |d| millis(d).to_string())
}

/// When a claim may take `event` next, as a script reads it ('' = out of
/// the index).
fn next(event: &WebhookEvent) -> String {
    match event.next_at {
        Some(at) if event.state.is_open() => at.to_string(),
        _ => String::new(),
    }
}

fn parse(json: &str) -> Result<WebhookEvent> {
    serde_json::from_str(json).map_err(corrupt)
}

/// How long a user's index of events must be kept from `now` for `event`:
/// past its due time, a day of retries (the default `give_up_after`) and
/// the dead-letter list's week, with a week of slack for a longer
/// `give_up_after`. An index outliving its events costs only its ids,
/// which the next read drops.
fn index_keep(event: &WebhookEvent, now: i64) -> i64 {
    let due = event.next_at.unwrap_or(now).saturating_sub(now).max(0);
    due.saturating_add(millis(DEAD_KEPT) * 2 + 24 * 3600 * 1000)
}

#[async_trait]
impl WebhookQueue for RedisWebhooks {
    async fn arm(&self, events: &[WebhookEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let keys = &self.shared.keys;
        let mut args: Vec<Value> = Vec::with_capacity(2 + 5 * events.len());
        args.push(keys.webhook_prefix().into());
        args.push(keys.webhooks_of_user_prefix().into());
        let now = herald_core::unix_ms();
        for event in events {
            args.push(event.id.to_string().into());
            args.push(event.next_at.unwrap_or(0).into());
            args.push(json(event)?.into());
            args.push(event.user.as_str().into());
            args.push(index_keep(event, now).into());
        }
        let _: i64 = self
            .arm
            .run(
                self.shared.pool.next(),
                vec![keys.webhooks_due(), keys.webhooks_counts()],
                args,
            )
            .await?;
        Ok(())
    }

    async fn claim(&self, now: i64, limit: usize, lease: Duration) -> Result<Vec<WebhookEvent>> {
        let keys = &self.shared.keys;
        let claimed = leased::claim(
            &self.claim,
            &self.shared,
            keys.webhooks_due(),
            keys.webhook_prefix(),
            (now, limit, lease),
        )
        .await?;
        claimed.iter().map(|j| parse(j)).collect()
    }

    async fn settle(&self, from: WebhookState, event: &WebhookEvent) -> Result<bool> {
        let done: i64 = self
            .settle
            .run(
                self.shared.pool.next(),
                self.event_keys(event),
                vec![
                    event.id.to_string().into(),
                    from.as_str().into(),
                    event.state.as_str().into(),
                    json(event)?.into(),
                    next(event).into(),
                    keep(event).into(),
                    event.dead_at.unwrap_or(0).into(),
                ],
            )
            .await?;
        Ok(done == 1)
    }

    async fn create(
        &self,
        event: &WebhookEvent,
        full: &WebhookEvent,
        max_pending: u64,
    ) -> Result<Created> {
        let done: i64 = self
            .create
            .run(
                self.shared.pool.next(),
                self.event_keys(event),
                vec![
                    event.id.to_string().into(),
                    json(event)?.into(),
                    next(event).into(),
                    json(full)?.into(),
                    max_pending.min(i64::MAX as u64).to_string().into(),
                    keep(full).into(),
                    full.dead_at.unwrap_or(0).into(),
                ],
            )
            .await?;
        Ok(match done {
            1 => Created::Pending,
            2 => Created::Full,
            _ => Created::Lost,
        })
    }

    async fn trim_dead(&self, expired_before: i64, keep: u64, batch: usize) -> Result<u64> {
        let keys = &self.shared.keys;
        let removed: i64 = self
            .trim_dead
            .run(
                self.shared.pool.next(),
                vec![keys.webhooks_dead(), keys.webhooks_dead_at()],
                vec![
                    keys.webhook_prefix().into(),
                    expired_before.into(),
                    keep.min(i64::MAX as u64).to_string().into(),
                    Value::from(batch.clamp(1, i64::MAX as usize) as i64),
                ],
            )
            .await?;
        Ok(removed.max(0) as u64)
    }

    async fn get(&self, id: Uuid) -> Result<Option<WebhookEvent>> {
        let json: Option<String> = fred::interfaces::HashesInterface::hget(
            &self.shared.pool,
            self.shared.keys.webhook(id),
            "event",
        )
        .await
        .map_err(unavailable)?;
        json.as_deref().map(parse).transpose()
    }

    async fn dead(&self, after: Option<Uuid>, limit: usize) -> Result<Vec<WebhookEvent>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let keys = &self.shared.keys;
        let start = after.map_or_else(|| "-".to_owned(), |id| format!("({id}"));
        let page: Vec<String> = self
            .dead_page
            .run(
                self.shared.pool.next(),
                vec![keys.webhooks_dead(), keys.webhooks_dead_at()],
                vec![
                    start.into(),
                    Value::from(limit.min(i64::MAX as usize) as i64),
                    keys.webhook_prefix().into(),
                ],
            )
            .await?;
        page.iter().map(|j| parse(j)).collect()
    }

    async fn backlog(&self) -> Result<WebhookBacklog> {
        let keys = &self.shared.keys;
        let counts: Vec<i64> = self
            .backlog
            .run(
                self.shared.pool.next(),
                vec![keys.webhooks_counts(), keys.webhooks_dead()],
                Vec::new(),
            )
            .await?;
        let [armed, pending, dead] = <[i64; 3]>::try_from(counts).map_err(|_| corrupt("counts"))?;
        Ok(WebhookBacklog {
            armed: armed.max(0) as u64,
            pending: pending.max(0) as u64,
            dead: dead.max(0) as u64,
        })
    }

    async fn remember(&self, user: &str) -> Result<()> {
        use fred::interfaces::SortedSetsInterface;
        use fred::types::SetOptions;
        let _: i64 = self
            .shared
            .pool
            .zadd(
                self.shared.keys.webhooks_audience(),
                Some(SetOptions::NX),
                None,
                false,
                false,
                (0.0, user),
            )
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn forget(&self, user: &str) -> Result<()> {
        use fred::interfaces::SortedSetsInterface;
        let _: i64 = self
            .shared
            .pool
            .zrem(self.shared.keys.webhooks_audience(), user)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn audience(&self, cursor: Option<&str>, limit: usize) -> Result<AudiencePage> {
        let limit = limit.max(1);
        // One more than asked: whether a page follows.
        let mut users: Vec<String> = self
            .audience
            .run(
                self.shared.pool.next(),
                vec![self.shared.keys.webhooks_audience()],
                vec![
                    cursor.unwrap_or("").into(),
                    Value::from((limit + 1).min(i64::MAX as usize) as i64),
                ],
            )
            .await?;
        let next = (users.len() > limit).then(|| {
            users.truncate(limit);
            users[limit - 1].clone()
        });
        Ok(AudiencePage { users, next })
    }

    async fn events_of(&self, user: &str) -> Result<Vec<WebhookEvent>> {
        herald_core::validate_user_id(user)?;
        let keys = &self.shared.keys;
        let found: Vec<String> = self
            .of_user
            .run(
                self.shared.pool.next(),
                keys.webhooks_of_user(user),
                vec![keys.webhook_prefix().into()],
            )
            .await?;
        let mut events = found.iter().map(|j| parse(j)).collect::<Result<Vec<_>>>()?;
        events.sort_by_key(|e| e.id);
        Ok(events)
    }

    async fn forget_events(&self, user: &str, ids: &[Uuid]) -> Result<u64> {
        herald_core::validate_user_id(user)?;
        if ids.is_empty() {
            return Ok(0);
        }
        let keys = &self.shared.keys;
        let mut args: Vec<Value> = Vec::with_capacity(ids.len() + 2);
        args.push(keys.webhook_prefix().into());
        args.push(user.into());
        args.extend(ids.iter().map(|id| Value::from(id.to_string())));
        let removed: i64 = self
            .forget_events
            .run(
                self.shared.pool.next(),
                vec![
                    keys.webhooks_due(),
                    keys.webhooks_dead(),
                    keys.webhooks_counts(),
                    keys.webhooks_of_user(user),
                    keys.webhooks_dead_at(),
                ],
                args,
            )
            .await?;
        Ok(removed.max(0) as u64)
    }
}
