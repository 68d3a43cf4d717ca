//! A gateway node: what it holds (the backend's parts, the hub, auth,
//! metrics) and what it does while it runs (reload, drain, its periodic
//! work). Building one, the one place that knows which backend
//! implementation runs, is `node/start.rs`: it also spawns the tasks that
//! act on a node (admission's sampler, rebalancing), so this file does
//! not depend on them.

mod heartbeat;
mod start;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use herald_core::{
    Blocklist, Broker, Conversations, FanOut, Hub, Inbox, Presence, Scheduler, Sender, Store,
    Topics, UserChannels, UserData, UserPreferences, Webhooks,
};

use crate::admission::Gate;
use crate::api_keys::{ApiKeys, CurrentKeys};
use crate::auth::{Authenticator, SessionResolver};
use crate::limits::RequestLimiter;
use crate::metrics::Metrics;
use crate::settings::Settings;

/// How often a paced offer to connections (a drain, registering again)
/// hands out its next batch.
pub(crate) const PACING_STEP: Duration = Duration::from_millis(100);

pub struct Node {
    pub id: String,
    pub settings: Settings,
    pub hub: Arc<Hub>,
    pub store: Arc<dyn Store>,
    pub presence: Arc<dyn Presence>,
    /// Validates and stores messages, for the API and the WebSocket alike.
    pub sender: Sender,
    /// Marks, counts and history, for the API and the WebSocket alike.
    pub inbox: Inbox,
    /// Who subscribed to which topic.
    pub topics: Arc<dyn Topics>,
    /// Who blocked whom.
    pub blocklist: Arc<dyn Blocklist>,
    /// Private conversations and receipts.
    pub conversations: Conversations,
    /// Users' preferences, for the API and the connections alike.
    pub preferences: UserPreferences,
    /// A user's data as a whole: export and erasure (admin routes).
    pub user_data: UserData,
    /// Publishes to topics; its worker runs in `fanout_worker`.
    pub fanout: Arc<FanOut>,
    fanout_worker: Option<tokio::task::AbortHandle>,
    /// Scheduled sends; this node's rounds run in `scheduler_task`.
    pub scheduler: Scheduler,
    scheduler_task: std::sync::OnceLock<tokio::task::AbortHandle>,
    /// The unread fallback webhooks, when `webhooks.url` is set; this
    /// node's worker runs in `webhook_worker`.
    pub webhooks: Option<Arc<Webhooks>>,
    webhook_worker: Option<tokio::task::AbortHandle>,
    /// User credentials and API keys; swapped whole by a reload (SIGHUP).
    auth: ArcSwap<Authenticator>,
    api_keys: Arc<CurrentKeys>,
    sessions: Option<Arc<dyn SessionResolver>>,
    pub metrics: Metrics,
    /// Requests per second per user (`limits.requests_per_sec`).
    pub limiter: RequestLimiter,
    /// Whether the node takes new connections (`[admission]`); sampled in
    /// `admission::sample`.
    pub admission: Gate,
    /// Shut while this node moves connections to others (`rebalance`).
    pub rebalance_door: crate::rebalance::Door,
    /// Kept alive for as long as the node runs.
    _broker: Arc<dyn Broker>,
    _channels: Arc<UserChannels>,
    /// The Redis connections, when that backend runs.
    redis: Option<Arc<herald_redis::RedisBackend>>,
    shutting_down: AtomicBool,
}

impl Node {
    /// Who users are: tokens and session cookies.
    pub fn auth(&self) -> Arc<Authenticator> {
        self.auth.load_full()
    }

    /// The server API's keys and their scopes, as the last reload left
    /// them.
    pub fn api_keys(&self) -> Arc<CurrentKeys> {
        self.api_keys.clone()
    }

    /// Takes new token keys, audience, issuer and API keys from `settings`
    /// (SIGHUP), all or nothing: a bad setting keeps the old ones. Open
    /// connections are not affected.
    pub fn reload_credentials(&self, settings: &Settings) -> anyhow::Result<()> {
        let auth = Authenticator::new(&settings.auth, self.sessions.clone())?;
        let api_keys = ApiKeys::new(&settings.api)?;
        self.auth.store(Arc::new(auth));
        self.api_keys.store(Arc::new(api_keys));
        Ok(())
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    /// The graceful drain: readiness turns false and new upgrades get 503
    /// at once; then every connection, in batches spread over
    /// `drain.window_secs`, answers what it has pending, gets a `reconnect`
    /// frame with a jittered delay and closes with 1001 (leaving presence).
    /// Returns when all are gone, or a few seconds after the window.
    pub async fn drain(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
        self.metrics.set_ready(false);
        let window = Duration::from_secs(self.settings.drain.window_secs);
        let conns = self.hub.connections();
        tracing::info!(connections = conns.len(), ?window, "draining");
        let steps = (window.as_millis() / PACING_STEP.as_millis()).max(1) as usize;
        let per_step = conns.len().div_ceil(steps);
        let max_delay = self.settings.drain.max_reconnect_delay_ms.max(1);
        self.offer_in_steps(&conns, per_step, |_| herald_core::ConnEvent::Drain {
            after_ms: rand::random_range(0..max_delay),
        })
        .await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.metrics.open_connections() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Whatever connected meanwhile or did not leave: close it now.
        self.hub.close_all();
    }

    /// Offers each of `conns` the event `event` makes for it, `per_step` of
    /// them every [`PACING_STEP`], so that what each connection does then
    /// (reconnect elsewhere, register in presence again) is spread out.
    pub(crate) async fn offer_in_steps(
        &self,
        conns: &[(String, herald_core::ConnHandle)],
        per_step: usize,
        event: impl Fn(&herald_core::ConnHandle) -> herald_core::ConnEvent,
    ) {
        let mut tick = tokio::time::interval(PACING_STEP);
        for batch in conns.chunks(per_step.max(1)) {
            tick.tick().await;
            for (user, conn) in batch {
                self.hub.offer_to(user, conn, event(conn));
            }
        }
    }

    /// Closes backend connections (after the connections have ended). The
    /// fan-out worker stops first: a job it held is taken over by another
    /// node once the claim timeout passes.
    pub async fn stop_backend(&self) {
        if let Some(worker) = &self.fanout_worker {
            worker.abort();
        }
        if let Some(worker) = &self.webhook_worker {
            worker.abort();
        }
        if let Some(task) = self.scheduler_task.get() {
            task.abort();
        }
        if let Some(redis) = &self.redis {
            redis.shutdown().await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(worker) = &self.fanout_worker {
            worker.abort();
        }
        if let Some(worker) = &self.webhook_worker {
            worker.abort();
        }
        if let Some(task) = self.scheduler_task.get() {
            task.abort();
        }
    }
}

/// The periodic work of a node beside its heartbeat (which beats on a
/// thread of its own, `node/heartbeat.rs`), every `node.heartbeat_ms` until
/// the node is dropped: reaping dead nodes, and the counts metrics show.
async fn housekeeping_loop(node: std::sync::Weak<Node>) {
    let period = match node.upgrade() {
        Some(n) => Duration::from_millis(n.settings.node.heartbeat_ms),
        None => return,
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut conntrack_warner = crate::conntrack::Warner::default();
    loop {
        tick.tick().await;
        let Some(node) = node.upgrade() else { return };
        if let Some(fill) = crate::conntrack::Fill::read() {
            node.metrics.set_conntrack(fill.entries, fill.limit);
            if conntrack_warner.should_warn(&fill, std::time::Instant::now()) {
                tracing::warn!(entries = fill.entries, limit = fill.limit,
                    "conntrack table over 90% full: new connections will be dropped when it fills \
                     (raise net.netfilter.nf_conntrack_max; docs/operations.md, Connection tracking)");
            }
        }
        // A draining node is about to exit: it must not start reaping
        // others (counting online users reaps first), because a reap cut
        // short leaves the reaped node's entries half removed until its
        // reap lock expires.
        if node.is_shutting_down() {
            continue;
        }
        match node.presence.online_users().await {
            Ok(users) => node.metrics.set_online_users(users),
            Err(e) => tracing::debug!(%e, "online users not read"),
        }
        node.limiter.prune();
        match node.fanout.backlog().await {
            Ok(jobs) => node.metrics.set_job_backlog(jobs),
            Err(e) => tracing::debug!(%e, "fan-out backlog not read"),
        }
        match node.fanout.workers().await {
            Ok(Some(counts)) => node.metrics.set_fanout_workers(counts),
            Ok(None) => {}
            Err(e) => tracing::debug!(%e, "fan-out group not read"),
        }
        match node.scheduler.pending().await {
            Ok(pending) => node.metrics.set_scheduled_pending(pending),
            Err(e) => tracing::debug!(%e, "scheduled sends not counted"),
        }
        match node.scheduler.snoozing().await {
            Ok(users) => node.metrics.set_snoozing(users),
            Err(e) => tracing::debug!(%e, "snoozing users not counted"),
        }
        if let Some(webhooks) = &node.webhooks {
            if let Err(e) = webhooks.sweep(herald_core::unix_ms()).await {
                tracing::debug!(%e, "dead webhook events not trimmed");
            }
            match webhooks.backlog().await {
                Ok(backlog) => node
                    .metrics
                    .set_webhook_backlog(&backlog, webhooks.in_flight()),
                Err(e) => tracing::debug!(%e, "webhook backlog not read"),
            }
        }
    }
}

/// This node's scheduler until the node is dropped: every `schedule.poll_ms`
/// it claims the sends that came due and appends them, then the users whose
/// snoozes came due and wakes them, round after round while rounds come
/// back full (a second's worth due at once).
async fn scheduler_loop(node: std::sync::Weak<Node>) {
    let (poll, batch) = match node.upgrade() {
        Some(n) => (n.scheduler.settings().poll, n.scheduler.settings().batch),
        None => return,
    };
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        loop {
            let Some(node) = node.upgrade() else { return };
            match node
                .scheduler
                .run_due(&node.sender, herald_core::unix_ms())
                .await
            {
                Ok(round) => {
                    node.metrics.schedule_round(&round);
                    if round.claimed < batch {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(%e, "scheduler round failed");
                    break;
                }
            }
        }
        loop {
            let Some(node) = node.upgrade() else { return };
            match node
                .scheduler
                .run_wakes(&node.inbox, herald_core::unix_ms())
                .await
            {
                Ok(round) => {
                    node.metrics.wake_round(&round);
                    if round.users < batch {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(%e, "snooze wake-up round failed");
                    break;
                }
            }
        }
    }
}
