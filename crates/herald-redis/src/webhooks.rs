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
//! - `{wh}:counts`: open events by state (`armed`, `pending`), kept by the
//!   scripts that move them.
//!
//! One tag for everything: every script touches one slot, a claim of a
//! batch is one call (the price on a Cluster is one hot slot, as for the
//! schedule).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::Value;
use herald_core::backend::{WebhookBacklog, WebhookEvent, WebhookQueue, WebhookState};
use herald_core::{CoreError, Result};
use uuid::Uuid;

use crate::leased::{self, millis};
use crate::script::Script;
use crate::{unavailable, Shared};

/// KEYS: due, counts. ARGV: hash key prefix, then (id, next_at, JSON) per
/// event. An id held already (in any state) is left alone. Returns how
/// many were armed.
const ARM: &str = r#"
local n = 0
for i = 2, #ARGV, 3 do
  local key = ARGV[1] .. ARGV[i]
  if redis.call('EXISTS', key) == 0 then
    redis.call('HSET', key, 'state', 'armed', 'event', ARGV[i + 2])
    redis.call('ZADD', KEYS[1], ARGV[i + 1], ARGV[i])
    n = n + 1
  end
end
if n > 0 then redis.call('HINCRBY', KEYS[2], 'armed', n) end
return n
"#;

/// KEYS: due. ARGV: now ms, limit, lease end ms, hash key prefix. Returns
/// the claimed events' JSON; a member whose hash is not open is dropped.
const CLAIM: &str = r#"
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  local f = redis.call('HMGET', ARGV[4] .. id, 'state', 'event')
  if (f[1] == 'armed' or f[1] == 'pending') and f[2] then
    redis.call('ZADD', KEYS[1], ARGV[3], id)
    out[#out + 1] = f[2]
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
"#;

/// KEYS: due, dead, counts, the event's hash. ARGV: id, from state, to
/// state, JSON, next_at ('' = out of the index), keep ms ('' = for good).
/// 0 (nothing changed) unless the event is in state `from`.
const SETTLE: &str = r#"
if redis.call('HGET', KEYS[4], 'state') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[4], 'state', ARGV[3], 'event', ARGV[4])
if ARGV[5] ~= '' then
  redis.call('ZADD', KEYS[1], ARGV[5], ARGV[1])
else
  redis.call('ZREM', KEYS[1], ARGV[1])
end
if ARGV[3] == 'dead' then
  redis.call('ZADD', KEYS[2], 0, ARGV[1])
else
  redis.call('ZREM', KEYS[2], ARGV[1])
end
if ARGV[2] ~= ARGV[3] then
  if ARGV[2] == 'armed' or ARGV[2] == 'pending' then
    redis.call('HINCRBY', KEYS[3], ARGV[2], -1)
  end
  if ARGV[3] == 'armed' or ARGV[3] == 'pending' then
    redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
  end
end
if ARGV[6] ~= '' then
  redis.call('PEXPIRE', KEYS[4], ARGV[6])
else
  redis.call('PERSIST', KEYS[4])
end
return 1
"#;

/// KEYS: dead. ARGV: lex start ('-' or '(<id>'), limit, hash key prefix.
/// The dead events' JSON in id order; an id whose hash expired leaves the
/// list.
const DEAD_PAGE: &str = r#"
local ids = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], '+', 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(ids) do
  local json = redis.call('HGET', ARGV[3] .. id, 'event')
  if json then
    out[#out + 1] = json
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
"#;

/// KEYS: counts, dead. Returns armed, pending, dead.
const BACKLOG: &str = r#"
local f = redis.call('HMGET', KEYS[1], 'armed', 'pending')
return {tonumber(f[1] or '0'), tonumber(f[2] or '0'), redis.call('ZCARD', KEYS[2])}
"#;

/// [`WebhookQueue`] on Redis.
pub struct RedisWebhooks {
    shared: Arc<Shared>,
    arm: Script,
    claim: Script,
    settle: Script,
    dead_page: Script,
    backlog: Script,
}

impl RedisWebhooks {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        RedisWebhooks {
            shared,
            arm: Script::new("webhook_arm", "", ARM),
            claim: Script::new("webhook_claim", "", CLAIM),
            settle: Script::new("webhook_settle", "", SETTLE),
            dead_page: Script::new("webhook_dead", "", DEAD_PAGE),
            backlog: Script::new("webhook_backlog", "", BACKLOG),
        }
    }
}

fn corrupt(what: impl std::fmt::Display) -> CoreError {
    CoreError::Unavailable(format!("redis: webhook event unreadable: {what}"))
}

fn json(event: &WebhookEvent) -> Result<String> {
    serde_json::to_string(event).map_err(corrupt)
}

fn parse(json: &str) -> Result<WebhookEvent> {
    serde_json::from_str(json).map_err(corrupt)
}

#[async_trait]
impl WebhookQueue for RedisWebhooks {
    async fn arm(&self, events: &[WebhookEvent]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let keys = &self.shared.keys;
        let mut args: Vec<Value> = Vec::with_capacity(1 + 3 * events.len());
        args.push(keys.webhook_prefix().into());
        for event in events {
            args.push(event.id.to_string().into());
            args.push(event.next_at.unwrap_or(0).into());
            args.push(json(event)?.into());
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
        let keys = &self.shared.keys;
        let next = match event.next_at {
            Some(at) if event.state.is_open() => at.to_string(),
            _ => String::new(),
        };
        let keep = event
            .state
            .kept()
            .map_or_else(String::new, |d| millis(d).to_string());
        let done: i64 = self
            .settle
            .run(
                self.shared.pool.next(),
                vec![
                    keys.webhooks_due(),
                    keys.webhooks_dead(),
                    keys.webhooks_counts(),
                    keys.webhook(event.id),
                ],
                vec![
                    event.id.to_string().into(),
                    from.as_str().into(),
                    event.state.as_str().into(),
                    json(event)?.into(),
                    next.into(),
                    keep.into(),
                ],
            )
            .await?;
        Ok(done == 1)
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
                keys.webhooks_dead(),
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
}
