//! Unread fallback webhooks, the node side: when an armed event (see
//! [`WebhookQueue`]) comes due, whether its message is still unread and
//! wanted as a fallback; the event's body; its tries, signed
//! ([`Signer`]), with retries on the schedule of [`retry_delay`], until
//! delivered or dead; the dead-letter list. Events are armed by the
//! [`Sender`](crate::Sender) as it stores a message with a fallback.
//!
//! The HTTP request itself is the transport's ([`WebhookPoster`]): core
//! knows no HTTP client. A node works at most
//! [`WebhookSettings::max_in_flight`] events at once, on tasks of their
//! own: a slow receiver holds those, never a send.
//!
//! A dead receiver costs bounded resources: an event that would be created
//! while [`WebhookSettings::max_pending`] events are pending is created
//! dead at once (listed, retryable); the dead are trimmed to
//! [`WebhookSettings::max_dead`] and [`DEAD_KEPT`] ([`Webhooks::sweep`]);
//! and after [`WebhookSettings::breaker_failures`] failed tries in a row
//! the node's circuit breaker ([`breaker`]) opens: due events are then
//! postponed on their schedule without a request, but for one probe per
//! [`WebhookSettings::breaker_probe`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_protocol::{Message, Stream};
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::backend::{
    Created, Store, WebhookBacklog, WebhookEvent, WebhookQueue, WebhookState, DEAD_KEPT, EVERYONE,
};
use crate::error::{CoreError, Result};
use crate::model::StreamKey;
use crate::preferences::UserPreferences;

mod action;
mod backoff;
mod breaker;
mod poster;
mod settings;
mod signing;

use breaker::{Breaker, Gate};

pub(crate) use action::arm as arm_action;
pub use action::{ACT_WAIT, MESSAGE_ACTION};
pub use backoff::retry_delay;
use poster::Unobserved;
pub use poster::{PostOutcome, WebhookObserver, WebhookPoster, WebhookRequest};
pub use settings::WebhookSettings;
pub use signing::Signer;

/// The event type of an unread message.
pub const MESSAGE_UNREAD: &str = "message.unread";

/// Why an event was created dead when the backlog was full.
pub const BACKLOG_FULL: &str = "backlog full: webhooks.max_pending";

/// How often at most a node logs the events it created dead because the
/// backlog was full (with how many since the last line).
const BACKLOG_FULL_LOG_EVERY: Duration = Duration::from_secs(10);

/// What an armed event's check decided.
enum Decision {
    /// Read, gone, or not wanted: no webhook.
    Drop,
    /// In the receiver's quiet hours, or an action event whose act has
    /// not committed yet: checked again then (unix ms).
    Defer(i64),
    /// Still unread: create the event with this message.
    Create(Box<Message>),
}

/// What [`Webhooks::retry_dead`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryDead {
    /// Sent again now, with a fresh retry schedule.
    Retrying(Box<WebhookEvent>),
    /// Not dead (this state).
    NotDead(WebhookState),
    Unknown,
}

/// The webhook events of a node: checked, sent, retried.
pub struct Webhooks {
    queue: Arc<dyn WebhookQueue>,
    store: Arc<dyn Store>,
    preferences: UserPreferences,
    poster: Arc<dyn WebhookPoster>,
    settings: WebhookSettings,
    in_flight: Arc<Semaphore>,
    observer: Arc<dyn WebhookObserver>,
    breaker: Breaker,
    /// Events created dead since the last log line, and when that was.
    backlog_full: std::sync::Mutex<(u64, Option<Instant>)>,
}

impl Webhooks {
    pub fn new(
        queue: Arc<dyn WebhookQueue>,
        store: Arc<dyn Store>,
        preferences: UserPreferences,
        poster: Arc<dyn WebhookPoster>,
        settings: WebhookSettings,
    ) -> Self {
        Webhooks {
            queue,
            store,
            preferences,
            poster,
            in_flight: Arc::new(Semaphore::new(settings.max_in_flight.max(1))),
            breaker: Breaker::new(settings.breaker_failures, settings.breaker_probe),
            settings,
            observer: Arc::new(Unobserved),
            backlog_full: std::sync::Mutex::new((0, None)),
        }
    }

    pub fn with_observer(mut self, observer: Arc<dyn WebhookObserver>) -> Self {
        self.observer = observer;
        self
    }

    pub fn settings(&self) -> &WebhookSettings {
        &self.settings
    }

    /// Events this node works on now.
    pub fn in_flight(&self) -> usize {
        self.settings.max_in_flight.max(1) - self.in_flight.available_permits()
    }

    /// Open and dead events, on every node.
    pub async fn backlog(&self) -> Result<WebhookBacklog> {
        self.queue.backlog().await
    }

    /// Whether this node's circuit breaker is open.
    pub fn breaker_open(&self) -> bool {
        self.breaker.is_open()
    }

    /// Forgets dead events past [`DEAD_KEPT`] and the oldest beyond
    /// `max_dead` (at most 10,000 a call); returns how many. The node's
    /// housekeeping calls it with the time now.
    pub async fn sweep(&self, now: i64) -> Result<u64> {
        self.queue
            .trim_dead(
                now.saturating_sub(millis(DEAD_KEPT)),
                self.settings.max_dead,
                10_000,
            )
            .await
    }

    /// Up to `limit` dead events after `after`, in id order.
    pub async fn dead(&self, after: Option<Uuid>, limit: usize) -> Result<Vec<WebhookEvent>> {
        self.queue.dead(after, limit).await
    }

    /// Sends a dead event again, at once, with a fresh retry schedule (its
    /// `webhook-id` and body unchanged).
    pub async fn retry_dead(&self, id: Uuid) -> Result<RetryDead> {
        let Some(mut event) = self.queue.get(id).await? else {
            return Ok(RetryDead::Unknown);
        };
        if event.state != WebhookState::Dead {
            return Ok(RetryDead::NotDead(event.state));
        }
        let now = crate::unix_ms();
        event.state = WebhookState::Pending;
        event.next_at = Some(now);
        event.created_at = Some(now);
        event.attempts = 0;
        event.postponed = 0;
        event.dead_at = None;
        if !self.queue.settle(WebhookState::Dead, &event).await? {
            // Another retry took it first: it is on its way as asked.
            return Ok(RetryDead::NotDead(WebhookState::Pending));
        }
        self.observer.event("revived");
        Ok(RetryDead::Retrying(Box::new(event)))
    }

    /// The worker: claims what came due, up to the room left of
    /// `max_in_flight`, and works each event on a task of its own. While
    /// claims come back full (a backlog), it claims again as soon as a slot
    /// frees, not at the next poll; otherwise it waits for the next poll.
    /// Runs until aborted.
    pub async fn run_worker(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.settings.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // A free slot first (the wait while every slot is busy).
            let Ok(first) = self.in_flight.clone().acquire_owned().await else {
                return;
            };
            let room = 1 + self.in_flight.available_permits();
            let events = match self
                .queue
                .claim(crate::unix_ms(), room, self.settings.lease)
                .await
            {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(%e, "webhook events not claimed");
                    Vec::new()
                }
            };
            let full = events.len() == room;
            let mut first = Some(first);
            for event in events {
                let permit = match first.take() {
                    Some(permit) => permit,
                    None => self
                        .in_flight
                        .clone()
                        .try_acquire_owned()
                        .expect("room was counted"),
                };
                let me = self.clone();
                tokio::spawn(async move {
                    let id = event.id;
                    if let Err(e) = me.handle(event, crate::unix_ms()).await {
                        tracing::warn!(%id, %e, "webhook event not settled; claimed again after its lease");
                    }
                    drop(permit);
                });
            }
            drop(first);
            if !full {
                tick.tick().await;
            }
        }
    }

    /// One round in the caller's task (the suite's clock): claims up to
    /// `limit` events due by `now` and works each to its next state.
    /// Returns how many it claimed.
    pub async fn run_round(&self, now: i64, limit: usize) -> Result<usize> {
        let events = self.queue.claim(now, limit, self.settings.lease).await?;
        let claimed = events.len();
        let results =
            futures_util::future::join_all(events.into_iter().map(|e| self.handle(e, now))).await;
        results.into_iter().collect::<Result<Vec<()>>>()?;
        Ok(claimed)
    }

    /// Works one claimed event at `now` (unix ms).
    async fn handle(&self, event: WebhookEvent, now: i64) -> Result<()> {
        match event.state {
            WebhookState::Armed => self.decide(event, now).await,
            WebhookState::Pending => self.attempt(event, now).await,
            _ => Ok(()),
        }
    }

    /// Adds `user` (who connected) to the audience that announcements'
    /// events are armed for.
    pub async fn remember(&self, user: &str) -> Result<()> {
        self.queue.remember(user).await
    }

    /// An announcement's event came due: arms the event of one page of the
    /// audience (each due now, checked as any other on its own claim),
    /// then keeps its place for the next claim, or ends when that was the
    /// last page. Armed again after a node died mid-page, a user's event
    /// is armed once.
    async fn arm_everyone(&self, mut event: WebhookEvent, now: i64) -> Result<()> {
        let page = self
            .queue
            .audience(event.cursor.as_deref(), self.settings.audience_page)
            .await?;
        let events: Vec<WebhookEvent> = page
            .users
            .iter()
            .map(|user| event.for_one_of_everyone(user, now))
            .collect();
        if !events.is_empty() {
            self.queue.arm(&events).await?;
        }
        match page.next {
            Some(next) => {
                event.cursor = Some(next);
                event.next_at = Some(now);
            }
            None => {
                event.cursor = None;
                event.state = WebhookState::Dropped;
                event.next_at = None;
            }
        }
        self.queue.settle(WebhookState::Armed, &event).await?;
        Ok(())
    }

    /// An armed event came due: dropped, deferred, or created and tried.
    async fn decide(&self, mut event: WebhookEvent, now: i64) -> Result<()> {
        if event.user == EVERYONE {
            return self.arm_everyone(event, now).await;
        }
        let decision = match event.action.clone() {
            Some(taken) => match action::check(&*self.store, &event, &taken, now).await? {
                action::ActionCheck::Drop => Decision::Drop,
                action::ActionCheck::Recheck(at) => Decision::Defer(at),
                action::ActionCheck::Create(message) => Decision::Create(message),
            },
            None => self.check(&event, now).await?,
        };
        match decision {
            Decision::Drop => {
                event.state = WebhookState::Dropped;
                event.next_at = None;
                if self.queue.settle(WebhookState::Armed, &event).await? {
                    self.observer.event("dropped");
                }
                Ok(())
            }
            Decision::Defer(at) => {
                event.next_at = Some(at);
                if self.queue.settle(WebhookState::Armed, &event).await? {
                    self.observer.event("deferred");
                }
                Ok(())
            }
            Decision::Create(message) => {
                event.body = Some(match &event.action {
                    Some(taken) => action::body(&event, &message, taken, now)?,
                    None => unread_body(&event, &message, now)?,
                });
                event.state = WebhookState::Pending;
                event.created_at = Some(now);
                // Held by this claim while the first try runs.
                event.next_at = Some(now.saturating_add(millis(self.settings.lease)));
                let full = WebhookEvent {
                    state: WebhookState::Dead,
                    next_at: None,
                    dead_at: Some(now),
                    last_error: Some(format!("{BACKLOG_FULL} ({})", self.settings.max_pending)),
                    ..event.clone()
                };
                match self
                    .queue
                    .create(&event, &full, self.settings.max_pending)
                    .await?
                {
                    Created::Lost => Ok(()), // another node's claim created it
                    Created::Full => {
                        self.observer.event("created");
                        self.observer.event("dead");
                        self.observer.dead("backlog_full");
                        self.log_backlog_full();
                        Ok(())
                    }
                    Created::Pending => {
                        self.observer.event("created");
                        self.attempt(event, now).await
                    }
                }
            }
        }
    }

    /// Whether `event`'s message still calls for a webhook at `now`: in
    /// the receiver's inbox, not expired, not read, deleted, archived or
    /// snoozed; their `fallback` on for its category (and topic); outside
    /// their quiet hours unless critical.
    async fn check(&self, event: &WebhookEvent, now: i64) -> Result<Decision> {
        let stream = match event.stream {
            Stream::Inbox => StreamKey::inbox(&event.user),
            Stream::All => StreamKey::All,
        };
        let found = self.store.find(&stream, &[event.message]).await?;
        let Some(message) = found.into_iter().next() else {
            return Ok(Decision::Drop);
        };
        let at = OffsetDateTime::from_unix_timestamp_nanos(now as i128 * 1_000_000)
            .map_err(|e| CoreError::Invalid(format!("now: {e}")))?;
        if message.expired(at) {
            return Ok(Decision::Drop);
        }
        let state = self.store.read_state(&event.user).await?;
        if !state.marks(event.stream).flags(message.seq).counts_unread() {
            return Ok(Decision::Drop);
        }
        let stored = self.preferences.stored(&event.user).await?;
        if !self
            .preferences
            .wants_fallback(&stored, &message.category, event.topic.as_deref())
        {
            return Ok(Decision::Drop);
        }
        if !message.critical {
            if let Some(quiet) = UserPreferences::quiet_window(&stored) {
                let at = jiff::Timestamp::from_millisecond(now)
                    .map_err(|e| CoreError::Invalid(format!("now: {e}")))?;
                if quiet.contains(at) {
                    return Ok(Decision::Defer(quiet.end_after(at).as_millisecond()));
                }
            }
        }
        Ok(Decision::Create(Box::new(message)))
    }

    /// Logs, at most once per [`BACKLOG_FULL_LOG_EVERY`], how many events
    /// were created dead because the backlog was full.
    fn log_backlog_full(&self) {
        let mut state = self.backlog_full.lock().unwrap();
        state.0 += 1;
        if state
            .1
            .is_some_and(|at| at.elapsed() < BACKLOG_FULL_LOG_EVERY)
        {
            return;
        }
        tracing::warn!(
            events = state.0,
            max_pending = self.settings.max_pending,
            "webhook backlog full: events created dead (listed by GET /v1/webhooks/dead)"
        );
        *state = (0, Some(Instant::now()));
    }

    /// One try of a created event, then its next state; no try while the
    /// breaker is open (but for its probe): postponed instead.
    async fn attempt(&self, mut event: WebhookEvent, now: i64) -> Result<()> {
        let probe = match self.breaker.gate(now) {
            Gate::Try => false,
            Gate::Probe => true,
            Gate::Postpone(probe_at) => return self.postpone(event, now, probe_at).await,
        };
        let request = self.request(&event, now);
        let started = Instant::now();
        let outcome = self.poster.post(&request).await;
        self.observer.attempt(&outcome, started.elapsed());
        event.attempts = event.attempts.saturating_add(1);
        let now = now.saturating_add(millis(started.elapsed()));
        if let Some(open) = self.breaker.record(probe, outcome.delivered(), now) {
            self.breaker_changed(open, &outcome);
        }
        if outcome.delivered() {
            event.state = WebhookState::Delivered;
            event.next_at = None;
            event.last_error = None;
            if self.queue.settle(WebhookState::Pending, &event).await? {
                self.observer.event("delivered");
            }
            return Ok(());
        }
        event.last_error = Some(outcome.reason());
        self.reschedule(event, now, 0, "retried").await
    }

    /// A try not made, the breaker open: the event moves on its schedule
    /// as if it had failed (so a long outage costs each event about as
    /// many claims as tries it would have had), but no sooner than the
    /// breaker's next probe; no attempt is counted.
    async fn postpone(&self, mut event: WebhookEvent, now: i64, probe_at: i64) -> Result<()> {
        event.postponed = event.postponed.saturating_add(1);
        if event.last_error.is_none() {
            event.last_error = Some("not tried: circuit breaker open".into());
        }
        let until_probe = probe_at.saturating_sub(now).max(0);
        self.reschedule(event, now, until_probe, "postponed").await
    }

    /// The next state of a pending event whose try failed (or was
    /// postponed) at `now`: retried after its schedule's next delay (at
    /// least `at_least` ms), or dead when that would be past
    /// `give_up_after` from its creation.
    async fn reschedule(
        &self,
        mut event: WebhookEvent,
        now: i64,
        at_least: i64,
        outcome: &'static str,
    ) -> Result<()> {
        let delay = retry_delay(
            event.attempts.saturating_add(event.postponed),
            self.settings.retry_base,
            self.settings.retry_cap,
            rand::random_range(0.0..1.0),
        );
        let next = now.saturating_add(millis(delay).max(at_least));
        let created = event.created_at.unwrap_or(now);
        let outcome = if next > created.saturating_add(millis(self.settings.give_up_after)) {
            event.state = WebhookState::Dead;
            event.next_at = None;
            event.dead_at = Some(now);
            "dead"
        } else {
            event.next_at = Some(next);
            outcome
        };
        if self.queue.settle(WebhookState::Pending, &event).await? {
            self.observer.event(outcome);
            if outcome == "dead" {
                self.observer.dead("gave_up");
            }
        }
        Ok(())
    }

    /// The breaker opened or closed: a log line and the metrics.
    fn breaker_changed(&self, open: bool, outcome: &PostOutcome) {
        if open {
            tracing::warn!(
                url = %self.settings.url,
                failures = self.settings.breaker_failures,
                last = %outcome.reason(),
                probe_secs = self.settings.breaker_probe.as_secs_f64(),
                "webhook circuit breaker open: due events postponed, one probe per interval"
            );
        } else {
            tracing::info!(url = %self.settings.url, "webhook circuit breaker closed: the receiver answered 2xx");
        }
        self.observer.breaker(open);
    }

    /// The signed request of a try of `event` at `now`.
    fn request(&self, event: &WebhookEvent, now: i64) -> WebhookRequest {
        let id = event.id.to_string();
        let timestamp = now.div_euclid(1000);
        let body = event.body.clone().unwrap_or_default();
        WebhookRequest {
            url: self.settings.url.clone(),
            signature: self.settings.signer.sign(&id, timestamp, &body),
            id,
            timestamp,
            body,
        }
    }
}

/// The body of a `message.unread` event created at `now`.
fn unread_body(event: &WebhookEvent, message: &Message, now: i64) -> Result<String> {
    let at = OffsetDateTime::from_unix_timestamp_nanos(now as i128 * 1_000_000)
        .map_err(|e| CoreError::Invalid(format!("now: {e}")))?;
    let timestamp = at
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| CoreError::Invalid(format!("timestamp: {e}")))?;
    let body = serde_json::json!({
        "type": MESSAGE_UNREAD,
        "timestamp": timestamp,
        "data": {
            "user": event.user,
            "message": message,
            "unread_for_secs": now.saturating_sub(event.stored_at).max(0) / 1000,
        },
    });
    Ok(body.to_string())
}

fn millis(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}
