//! Scheduled sends on Redis, shared by every node on the same Redis and
//! key prefix.
//!
//! - `{sched}:due`: a sorted set of the pending sends, member = id, score
//!   = when a claim may take it: its due time, and once claimed the end of
//!   the claimer's lease. A claim (one script) takes the lowest scores up
//!   to now and moves each to the end of its lease, so a node that dies
//!   holding sends leaves them to the next claim after the lease.
//! - `{sched}:s:<id>`: the send's hash: `at` (due, unix ms), `state`
//!   (`pending`, `delivered`, `cancelled`), `claimed` (1 once a claim took
//!   it: a cancel is refused from then on), `send` (the send as JSON, gone
//!   once it ended). Kept for a day after it ended.
//!
//! - `{snooze}:due`, `{snooze}:held`, `{snooze}:asked`: the index of snooze
//!   wake-ups (which user is due when), its claims and the wake-ups asked
//!   for during a claim (`docs/redis.md`, *Snooze wake-ups*). The snoozes
//!   themselves are the users' read state.
//!
//! One tag for everything, so every script touches one slot: a claim of a
//! thousand sends is one call. The price on a Cluster is one hot slot for
//! scheduling; a send is appended through the store like any other, on its
//! receivers' slots.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::Value;
use herald_core::backend::{
    Cancelled, ScheduleState, ScheduledSend, ScheduledStatus, Timers, SCHEDULE_KEPT,
};
use herald_core::{validate_user_id, CoreError, Result};
use uuid::Uuid;

use crate::leased::{self, millis};
use crate::script::Script;
use crate::{unavailable, Shared};

/// [`Timers`] on Redis.
pub struct RedisTimers {
    shared: Arc<Shared>,
    schedule: Script,
    claim: Script,
    delivered: Script,
    cancel: Script,
    wake_at: Script,
    claim_wakes: Script,
    woken: Script,
    of_user: Script,
    drop_receiver: Script,
}

impl RedisTimers {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        RedisTimers {
            shared,
            schedule: Script::new("schedule_add"),
            claim: Script::new("schedule_claim"),
            delivered: Script::new("schedule_delivered"),
            cancel: Script::new("schedule_cancel"),
            wake_at: Script::new("snooze_wake_at"),
            claim_wakes: Script::new("snooze_claim"),
            woken: Script::new("snooze_woken"),
            of_user: Script::new("schedule_of_user"),
            drop_receiver: Script::new("schedule_drop_receiver"),
        }
    }

    fn wake_keys(&self) -> Vec<String> {
        let keys = &self.shared.keys;
        vec![keys.wakes(), keys.wakes_held(), keys.wakes_asked()]
    }
}

impl RedisTimers {
    /// The pending sends addressed to `user`: whether a node claimed each,
    /// its JSON as stored, and the send.
    async fn of_user(&self, user: &str) -> Result<Vec<(bool, String, ScheduledSend)>> {
        validate_user_id(user)?;
        let keys = &self.shared.keys;
        let flat: Vec<String> = self
            .of_user
            .run(
                self.shared.pool.next(),
                keys.scheduled_of_user(user),
                vec![keys.scheduled_prefix().into()],
            )
            .await?;
        let mut sends = Vec::with_capacity(flat.len() / 2);
        for pair in flat.chunks(2) {
            let [claimed, json] = pair else {
                return Err(corrupt("index reply"));
            };
            let send: ScheduledSend = serde_json::from_str(json).map_err(corrupt)?;
            sends.push((!claimed.is_empty(), json.clone(), send));
        }
        sends.sort_by_key(|(_, _, s)| (s.deliver_at, s.id));
        Ok(sends)
    }
}

fn corrupt(what: impl std::fmt::Display) -> CoreError {
    CoreError::Unavailable(format!("redis: scheduled send unreadable: {what}"))
}

#[async_trait]
impl Timers for RedisTimers {
    async fn schedule(&self, send: &ScheduledSend) -> Result<()> {
        let keys = &self.shared.keys;
        let json = serde_json::to_string(send).map_err(corrupt)?;
        let keep = send
            .deliver_at
            .saturating_sub(herald_core::unix_ms())
            .max(0)
            .saturating_add(millis(SCHEDULE_KEPT));
        let mut args: Vec<Value> = vec![
            send.id.to_string().into(),
            send.deliver_at.into(),
            json.into(),
            keys.scheduled_of_user_prefix().into(),
            keep.into(),
        ];
        args.extend(send.users.iter().flatten().map(|u| Value::from(u.as_str())));
        let _: i64 = self
            .schedule
            .run(
                self.shared.pool.next(),
                vec![keys.schedule(), keys.scheduled(send.id)],
                args,
            )
            .await?;
        Ok(())
    }

    async fn claim_due(
        &self,
        now: i64,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<ScheduledSend>> {
        let keys = &self.shared.keys;
        let claimed = leased::claim(
            &self.claim,
            &self.shared,
            keys.schedule(),
            keys.scheduled_prefix(),
            (now, limit, lease),
        )
        .await?;
        claimed
            .iter()
            .map(|json| serde_json::from_str(json).map_err(corrupt))
            .collect()
    }

    async fn delivered(&self, ids: &[Uuid]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let keys = &self.shared.keys;
        let mut args: Vec<Value> = Vec::with_capacity(ids.len() + 2);
        args.push(millis(SCHEDULE_KEPT).into());
        args.push(keys.scheduled_prefix().into());
        args.extend(ids.iter().map(|id| Value::from(id.to_string())));
        let _: i64 = self
            .delivered
            .run(self.shared.pool.next(), keys.schedule(), args)
            .await?;
        Ok(())
    }

    async fn cancel(&self, id: Uuid) -> Result<Cancelled> {
        let keys = &self.shared.keys;
        let found: i64 = self
            .cancel
            .run(
                self.shared.pool.next(),
                vec![keys.schedule(), keys.scheduled(id)],
                vec![id.to_string().into(), millis(SCHEDULE_KEPT).into()],
            )
            .await?;
        Ok(match found {
            0 => Cancelled::Unknown,
            1 => Cancelled::Cancelled,
            _ => Cancelled::Delivered,
        })
    }

    async fn status(&self, id: Uuid) -> Result<Option<ScheduledStatus>> {
        let fields: Vec<Option<String>> = fred::interfaces::HashesInterface::hmget(
            &self.shared.pool,
            self.shared.keys.scheduled(id),
            vec!["state", "at"],
        )
        .await
        .map_err(unavailable)?;
        let [Some(state), Some(at)] =
            <[Option<String>; 2]>::try_from(fields).map_err(|_| corrupt("status"))?
        else {
            return Ok(None);
        };
        Ok(Some(ScheduledStatus {
            id,
            state: ScheduleState::parse(&state).ok_or_else(|| corrupt("state"))?,
            deliver_at: at.parse().map_err(corrupt)?,
        }))
    }

    async fn pending(&self) -> Result<u64> {
        fred::interfaces::SortedSetsInterface::zcard(&self.shared.pool, self.shared.keys.schedule())
            .await
            .map_err(unavailable)
    }

    async fn wake_at(&self, user: &str, at: i64) -> Result<()> {
        let _: i64 = self
            .wake_at
            .run(
                self.shared.pool.next(),
                self.wake_keys(),
                vec![user.into(), at.into()],
            )
            .await?;
        Ok(())
    }

    async fn claim_wakes(&self, now: i64, limit: usize, lease: Duration) -> Result<Vec<String>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let keys = &self.shared.keys;
        self.claim_wakes
            .run(
                self.shared.pool.next(),
                vec![keys.wakes(), keys.wakes_held()],
                vec![
                    now.into(),
                    Value::from(limit.min(i64::MAX as usize) as i64),
                    now.saturating_add(millis(lease)).into(),
                ],
            )
            .await
    }

    async fn woken(&self, user: &str, next: Option<i64>) -> Result<()> {
        let next = next.map_or_else(String::new, |n| n.to_string());
        let _: i64 = self
            .woken
            .run(
                self.shared.pool.next(),
                self.wake_keys(),
                vec![user.into(), next.into()],
            )
            .await?;
        Ok(())
    }

    async fn snoozing(&self) -> Result<u64> {
        fred::interfaces::SortedSetsInterface::zcard(&self.shared.pool, self.shared.keys.wakes())
            .await
            .map_err(unavailable)
    }

    async fn scheduled_for(&self, user: &str) -> Result<Vec<ScheduledSend>> {
        Ok(self
            .of_user(user)
            .await?
            .into_iter()
            .map(|(_, _, send)| send)
            .collect())
    }

    async fn forget_receiver(&self, user: &str) -> Result<u64> {
        let keys = &self.shared.keys;
        let mut changed = 0;
        for (claimed, json, mut send) in self.of_user(user).await? {
            if claimed {
                continue;
            }
            let Some(users) = send.users.as_mut() else {
                continue;
            };
            users.retain(|u| u != user);
            let without = if users.is_empty() {
                String::new()
            } else {
                serde_json::to_string(&send).map_err(corrupt)?
            };
            let done: i64 = self
                .drop_receiver
                .run(
                    self.shared.pool.next(),
                    vec![
                        keys.schedule(),
                        keys.scheduled(send.id),
                        keys.scheduled_of_user(user),
                    ],
                    vec![
                        send.id.to_string().into(),
                        json.into(),
                        without.into(),
                        millis(SCHEDULE_KEPT).into(),
                    ],
                )
                .await?;
            changed += done.max(0) as u64;
        }
        Ok(changed)
    }
}
