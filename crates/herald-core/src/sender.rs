//! Sending: the operation behind `POST /v1/messages`, its batch form and the
//! WebSocket `send`. The transports parse their input into [`NewMessage`]s
//! and map errors; everything else happens here, once.

use std::sync::Arc;
use std::time::Duration;

use herald_protocol::{Category, Severity, Stream};
use serde::Serialize;
use uuid::Uuid;

use crate::backend::Blocklist;
use crate::backend::Idempotency;
use crate::backend::JobMessage;
use crate::backend::Store;
use crate::backend::{ScheduledSend, Timers, MAX_SCHEDULE_AHEAD};
use crate::backend::{WebhookEvent, WebhookQueue};
use crate::categories::Categories;
use crate::error::{CoreError, Result};
use crate::idempotency::{claim_or_wait, decode_outcome, fingerprint, validate_key};
use crate::model::{validate_user_id, Draft, StreamKey};
use crate::send_order::Turn;
use crate::validate::{MessageLimits, NewMessage};

mod outgoing;
mod touches;

pub use outgoing::{Outgoing, Sent, StoredAt, Target};
use touches::{conversation_touches, Touch};

/// What an idempotency key's fingerprint covers: everything the sender
/// chose, not the id and time the server gave the message.
#[derive(Serialize)]
struct Fingerprinted<'a> {
    to: Option<&'a [String]>,
    category: &'a str,
    from: &'a Option<String>,
    title: &'a Option<String>,
    body: &'a str,
    data: &'a serde_json::Value,
    expires_at: Option<i128>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deliver_at: Option<i64>,
    group_key: &'a Option<String>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    actions: &'a [herald_protocol::Action],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    tags: &'a [String],
    #[serde(skip_serializing_if = "Severity::is_normal")]
    severity: Severity,
}

/// Validates and stores messages, once per idempotency key.
pub struct Sender {
    store: Arc<dyn Store>,
    idempotency: Arc<dyn Idempotency>,
    blocklist: Arc<dyn Blocklist>,
    /// Where messages with a `deliver_at` wait.
    timers: Arc<dyn Timers>,
    limits: MessageLimits,
    categories: Categories,
    /// How long an idempotency key holds its first outcome.
    window: Duration,
    /// Where a message with a fallback arms its webhook events (see
    /// [`Sender::with_fallback`]).
    fallback: Option<Arc<dyn WebhookQueue>>,
}

impl Sender {
    pub fn new(
        store: Arc<dyn Store>,
        idempotency: Arc<dyn Idempotency>,
        blocklist: Arc<dyn Blocklist>,
        timers: Arc<dyn Timers>,
        limits: MessageLimits,
        categories: Categories,
        window: Duration,
    ) -> Self {
        Sender {
            store,
            idempotency,
            blocklist,
            timers,
            limits,
            categories,
            window,
            fallback: None,
        }
    }

    /// Arms an unread fallback webhook event in `queue` for each receiver
    /// of a stored message with a fallback (`fallback_after_secs`, its own
    /// or its category's). Without, the fallback is ignored (no webhook
    /// URL is set).
    pub fn with_fallback(mut self, queue: Arc<dyn WebhookQueue>) -> Self {
        self.fallback = Some(queue);
        self
    }

    pub fn limits(&self) -> &MessageLimits {
        &self.limits
    }

    /// Checks a message addressed to `users` (or to everyone when `None`),
    /// with its optional idempotency key.
    pub fn prepare(
        &self,
        users: Option<Vec<String>>,
        message: NewMessage,
        key: Option<String>,
    ) -> Result<Outgoing> {
        self.prepare_at(users, message, key, None)
    }

    /// [`Sender::prepare`] for a message to append at `deliver_at` (unix
    /// ms; `None`: now), which must lie ahead, by at most
    /// [`MAX_SCHEDULE_AHEAD`]. The message is stamped with that time, and
    /// its category's max age counts from it.
    pub fn prepare_at(
        &self,
        users: Option<Vec<String>>,
        message: NewMessage,
        key: Option<String>,
        deliver_at: Option<i64>,
    ) -> Result<Outgoing> {
        let target = match users {
            Some(users) => Target::Users(self.limits.recipients(users)?),
            None => Target::All,
        };
        // The fingerprint covers the expiry the sender asked for, not the
        // one a category's max age derives from the (fresh) send time.
        let asked_expiry = message.expires_at.map(|t| t.unix_timestamp_nanos());
        let (category, asked) = (message.category.clone(), message.expires_at);
        let mut draft = self.limits.draft(message, &self.categories)?;
        if let Some(at) = deliver_at {
            self.stamp_for(&mut draft, &category, asked, at)?;
        }
        if target == Target::All && draft.category != Category::ANNOUNCEMENT {
            return Err(CoreError::Invalid(format!(
                "to.all: only the announcement category goes to everyone (stored once); send {} to users",
                draft.category
            )));
        }
        let idempotency = match key {
            Some(key) => {
                validate_key(&key)?;
                let print = fingerprint(&Fingerprinted {
                    to: match &target {
                        Target::Users(users) => Some(users),
                        Target::All => None,
                    },
                    category: draft.category.as_str(),
                    from: &draft.from,
                    title: &draft.title,
                    body: &draft.body,
                    data: &draft.data,
                    expires_at: asked_expiry,
                    deliver_at,
                    group_key: &draft.group_key,
                    actions: &draft.actions,
                    tags: &draft.tags,
                    severity: draft.severity,
                });
                Some((key, print))
            }
            None => None,
        };
        Ok(Outgoing {
            target,
            draft,
            idempotency,
            deliver_at,
        })
    }

    /// Checks `deliver_at` (unix ms) and stamps `draft` with it: its `ts`,
    /// and the expiry of its category's max age counted from then. An
    /// `expires_at` the sender asked for must come after it.
    fn stamp_for(
        &self,
        draft: &mut Draft,
        category: &str,
        asked: Option<time::OffsetDateTime>,
        deliver_at: i64,
    ) -> Result<()> {
        let now_ms = (draft.ts.unix_timestamp_nanos() / 1_000_000) as i64;
        if deliver_at <= now_ms {
            return Err(CoreError::Invalid(
                "deliver_at: is not in the future".into(),
            ));
        }
        if deliver_at - now_ms > MAX_SCHEDULE_AHEAD.as_millis() as i64 {
            return Err(CoreError::Invalid(format!(
                "deliver_at: more than {} days ahead",
                MAX_SCHEDULE_AHEAD.as_secs() / 86_400
            )));
        }
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(deliver_at as i128 * 1_000_000)
            .map_err(|e| CoreError::Invalid(format!("deliver_at: {e}")))?;
        let spec = self.categories.get(category)?;
        if asked.is_some_and(|e| e <= at) {
            return Err(CoreError::Invalid(
                "expires_at: is not after deliver_at".into(),
            ));
        }
        let by_category = spec.max_age.map(|age| at + age);
        draft.expires_at = match (asked, by_category) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        draft.ts = at;
        Ok(())
    }

    /// Stores the messages (see [`Sender::store_all`]), except those whose
    /// idempotency key was used before: they get the first outcome. `scope`
    /// separates the keys of different senders (an API client, a user).
    pub async fn send(&self, scope: &str, messages: Vec<Outgoing>) -> Result<Vec<Sent>> {
        self.send_in_turn(scope, messages, None).await
    }

    /// [`Sender::send`], storing only when `turn` comes (a pipelined
    /// connection's request order, see [`crate::SendOrder`]).
    async fn send_in_turn(
        &self,
        scope: &str,
        messages: Vec<Outgoing>,
        turn: Option<Turn>,
    ) -> Result<Vec<Sent>> {
        refuse_repeated_keys(&messages)?;
        for message in &messages {
            self.refuse_blocked(message).await?;
        }
        let mut outcomes: Vec<Option<Sent>> = vec![None; messages.len()];
        let mut claimed: Vec<String> = Vec::new();
        for (i, message) in messages.iter().enumerate() {
            let Some((key, print)) = &message.idempotency else {
                continue;
            };
            match self.claim(scope, key, print).await {
                Ok(Some(done)) => outcomes[i] = Some(done),
                Ok(None) => claimed.push(key.clone()),
                Err(e) => {
                    self.release_all(scope, &claimed).await;
                    let prefix = if messages.len() > 1 {
                        format!("messages[{i}]: ")
                    } else {
                        String::new()
                    };
                    return Err(match e {
                        CoreError::Conflict(m) => CoreError::Conflict(format!("{prefix}{m}")),
                        other => other,
                    });
                }
            }
        }
        // The messages to store are moved on, not copied: a message's
        // draft is its largest part.
        let mut fresh: Vec<Outgoing> = Vec::with_capacity(messages.len());
        for (message, done) in messages.into_iter().zip(&outcomes) {
            if done.is_none() {
                fresh.push(message);
            }
        }
        let fresh_keys: Vec<Option<String>> = fresh
            .iter()
            .map(|m| m.idempotency.as_ref().map(|(key, _)| key.clone()))
            .collect();
        let touches = conversation_touches(&fresh);
        // The appends are polled first (they take their places in the
        // stream then, see `Store::append`); the sender's conversation list
        // moves alongside.
        let (stored, opened) = futures_util::future::join(
            self.store_all(fresh, turn),
            self.open_conversations(touches),
        )
        .await;
        if let Err(e) = opened {
            tracing::warn!(%e, "the sender's conversation list was not moved");
        }
        let stored = match stored {
            Ok(stored) => stored,
            Err(e) => {
                // Nothing or part was stored (503 to the caller): let a
                // retry run, as it would without a key.
                self.release_all(scope, &claimed).await;
                return Err(e);
            }
        };
        for (key, sent) in fresh_keys.iter().zip(stored) {
            if let Some(key) = key {
                let outcome = serde_json::to_vec(&sent).unwrap_or_default();
                if let Err(e) = self
                    .idempotency
                    .complete(scope, key, &outcome, self.window)
                    .await
                {
                    tracing::warn!(%e, "idempotency outcome not recorded");
                }
            }
            let slot = outcomes
                .iter_mut()
                .find(|o| o.is_none())
                .expect("one open slot per fresh message");
            *slot = Some(sent);
        }
        Ok(outcomes.into_iter().flatten().collect())
    }

    /// Moves each private message's conversation to the top of its
    /// sender's list (its append moves the receiver's), as
    /// [`conversation_touches`] lists them. Best effort: if this fails
    /// while the append succeeds, the conversation shows in the sender's
    /// list with the next message either of them sends.
    async fn open_conversations(&self, touches: Vec<Touch>) -> Result<()> {
        // Together: a store that batches its writes sends them as one.
        futures_util::future::try_join_all(
            touches
                .iter()
                .map(|t| self.store.touch_peer(&t.from, &t.to, t.at_us)),
        )
        .await?;
        Ok(())
    }

    /// A private message (`mailbox` with a `from`) to several users, one of
    /// whom blocked its sender, is refused before anything is stored; the
    /// error says no more than that. (To one user the store's append
    /// refuses it itself, without a round trip of its own.)
    async fn refuse_blocked(&self, message: &Outgoing) -> Result<()> {
        let (Some(from), Target::Users(users)) = (&message.draft.from, &message.target) else {
            return Ok(());
        };
        if message.draft.category != Category::MAILBOX || users.len() < 2 {
            return Ok(());
        }
        for user in users {
            if self.blocklist.is_blocked(user, from).await? {
                return Err(CoreError::Blocked(
                    "the receiver does not accept your messages".into(),
                ));
            }
        }
        Ok(())
    }

    /// `None`: claimed, go ahead; `Some`: the first outcome.
    async fn claim(&self, scope: &str, key: &str, print: &str) -> Result<Option<Sent>> {
        claim_or_wait(&*self.idempotency, scope, key, print, self.window)
            .await?
            .map(|bytes| decode_outcome(&bytes))
            .transpose()
    }

    async fn release_all(&self, scope: &str, keys: &[String]) {
        for key in keys {
            if let Err(e) = self.idempotency.release(scope, key).await {
                tracing::warn!(%e, "idempotency claim not released");
            }
        }
    }

    /// Stores every message in each of its streams, all at once (the store
    /// groups concurrent appends; appends to one stream keep this order).
    /// Any failure fails the whole call; what was stored stays stored.
    async fn store_all(&self, messages: Vec<Outgoing>, turn: Option<Turn>) -> Result<Vec<Sent>> {
        let mut appends = Vec::new();
        let mut shape = Vec::with_capacity(messages.len());
        let mut scheduled = Vec::new();
        for Outgoing {
            target,
            draft,
            deliver_at,
            ..
        } in messages
        {
            if let Some(at) = deliver_at {
                shape.push((draft.id, 0, None));
                scheduled.push((shape.len() - 1, schedule_of(target, draft, at)));
                continue;
            }
            let keys: Vec<StreamKey> = match target {
                Target::Users(users) => users.into_iter().map(StreamKey::Inbox).collect(),
                Target::All => vec![StreamKey::All],
            };
            shape.push((draft.id, keys.len(), draft.fallback_after));
            let mut drafts = std::iter::repeat_n(draft, keys.len());
            for key in keys {
                // The last key takes the draft itself (repeat_n's last).
                let draft = drafts.next().expect("one draft per key");
                appends.push(async move {
                    match self.store.append(&key, draft).await {
                        Ok(message) => Ok(Ok(StoredAt {
                            stream: message.stream,
                            user: key.user().map(str::to_owned),
                            seq: message.seq,
                        })),
                        // Muted: the receiver, for the `skipped` list.
                        Err(CoreError::Skipped(_)) => Ok(Err(key.user().unwrap_or("").to_owned())),
                        Err(e) => Err(e),
                    }
                });
            }
        }
        // join_all polls in order first, so appends take their places in order.
        let all = futures_util::future::join_all(appends);
        let schedules = futures_util::future::try_join_all(
            scheduled.iter().map(|(_, send)| self.timers.schedule(send)),
        );
        let (stored, schedules) = futures_util::future::join(
            async {
                match turn {
                    Some(turn) => turn.take(all).await,
                    None => all.await,
                }
            },
            schedules,
        )
        .await;
        schedules?;
        let mut stored = stored.into_iter();
        let mut sent = Vec::with_capacity(shape.len());
        let mut fallbacks = Vec::new();
        for (id, n, fallback) in shape {
            let outcomes = stored.by_ref().take(n).collect::<Result<Vec<_>>>()?;
            let (stored, skipped): (Vec<_>, Vec<_>) = outcomes.into_iter().partition(|o| o.is_ok());
            fallbacks.push((id, fallback));
            sent.push(Sent {
                id,
                stored: stored.into_iter().filter_map(|o| o.ok()).collect(),
                deliver_at: None,
                skipped: skipped.into_iter().filter_map(|o| o.err()).collect(),
            });
        }
        for (i, send) in scheduled {
            sent[i].deliver_at = Some(send.deliver_at);
        }
        self.arm_fallbacks(&sent, &fallbacks).await;
        Ok(sent)
    }

    /// Arms the webhook event of each inbox copy of the messages stored
    /// with a fallback (`fallbacks`: each message's id and delay, in the
    /// order of `sent`). Best effort: the messages are stored, and a
    /// failure here costs their fallback, not a duplicate on the caller's
    /// retry.
    async fn arm_fallbacks(&self, sent: &[Sent], fallbacks: &[(Uuid, Option<Duration>)]) {
        let Some(queue) = &self.fallback else {
            return;
        };
        let now = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        let events: Vec<WebhookEvent> = sent
            .iter()
            .zip(fallbacks)
            .filter_map(|(sent, (id, after))| Some((sent, *id, (*after)?)))
            .flat_map(|(sent, id, after)| {
                sent.stored.iter().filter_map(move |at| match at.stream {
                    Stream::Inbox => at
                        .user
                        .as_deref()
                        .map(|user| WebhookEvent::armed(user, id, now, after)),
                    // Stored once for everyone: one event that arms the
                    // audience's when due (`backend/webhooks.rs`).
                    Stream::All => Some(WebhookEvent::for_everyone(id, now, after)),
                })
            })
            .collect();
        if events.is_empty() {
            return;
        }
        if let Err(e) = queue.arm(&events).await {
            tracing::warn!(%e, events = events.len(), "fallback webhooks not armed");
        }
    }

    /// Appends scheduled sends that came due (each as a send without a
    /// key would be: to each receiver, the conversation lists moved), each
    /// on its own: one's failure leaves the others alone. The outcomes are
    /// in the order of `due`.
    pub async fn deliver_due(&self, due: &[ScheduledSend]) -> Vec<Result<Sent>> {
        futures_util::future::join_all(due.iter().map(|send| async move {
            let outgoing = Outgoing {
                target: match &send.users {
                    Some(users) => Target::Users(users.clone()),
                    None => Target::All,
                },
                draft: send.draft(),
                idempotency: None,
                deliver_at: None,
            };
            let mut sent = self.send("", vec![outgoing]).await?;
            Ok(sent.remove(0))
        }))
        .await
    }

    /// A private message (category `mailbox`) from `from` to `to`, once
    /// per `key` (scoped to the sender), stored in `turn` (the sender's
    /// pipelined order).
    pub async fn send_private(
        &self,
        from: &str,
        to: &str,
        message: NewMessage,
        key: Option<String>,
        turn: Option<Turn>,
    ) -> Result<Sent> {
        validate_user_id(to).map_err(|e| CoreError::Invalid(format!("to: {e}")))?;
        let message = NewMessage {
            category: Category::MAILBOX.to_string(),
            from: Some(from.to_owned()),
            ..message
        };
        let outgoing = self.prepare(Some(vec![to.to_owned()]), message, key)?;
        let scope = format!("user:{from}");
        let mut sent = self.send_in_turn(&scope, vec![outgoing], turn).await?;
        Ok(sent.remove(0))
    }
}

/// The scheduled send of a message to `target` due at `deliver_at`.
fn schedule_of(target: Target, draft: Draft, deliver_at: i64) -> ScheduledSend {
    ScheduledSend {
        id: draft.id,
        deliver_at,
        users: match target {
            Target::Users(users) => Some(users),
            Target::All => None,
        },
        message: JobMessage::from_draft(draft),
    }
}

/// One request may not use a key twice: its second use would wait on the
/// first's claim, which only this request could complete.
fn refuse_repeated_keys(messages: &[Outgoing]) -> Result<()> {
    let mut seen = std::collections::HashMap::new();
    for (i, message) in messages.iter().enumerate() {
        if let Some((key, _)) = &message.idempotency {
            if let Some(first) = seen.insert(key.as_str(), i) {
                return Err(CoreError::Invalid(format!(
                    "messages[{i}]: idempotency_key {key:?} is used by messages[{first}] already"
                )));
            }
        }
    }
    Ok(())
}
