//! A user's data as a whole: the export of everything Herald holds about
//! one user (`GET /v1/users/{id}/export`) and its erasure
//! (`DELETE /v1/users/{id}`), over every backend part that keeps something
//! of theirs.
//!
//! The erasure runs part by part, each part atomic on its own (on a Redis
//! Cluster a user's keys sit on several slots: their own tag, each topic's,
//! the schedule's, the webhooks'): preferences, then the store (messages,
//! read state, counts, cursors, conversations; it closes the user's
//! connections), then presence, topics, blocks, scheduled sends and
//! webhook events. A message stored while it runs is either erased with the store
//! or stored after it, whole, and listed by the next export; its webhook
//! event is kept with it (an event whose message the inbox no longer holds
//! is erased; one armed later for an erased message finds the message gone
//! when due and sends nothing). See `docs/security.md`, *Erasure*.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::Serialize;

use crate::backend::{
    Blocklist, PreferenceChange, PreferenceStore, Presence, ScheduledSend, Store,
    StoredPreferences, Timers, Topics, WebhookQueue,
};
use crate::error::Result;
use crate::model::{validate_user_id, StreamKey};
use crate::preferences::UserPreferences;

mod export;

#[cfg(feature = "openapi")]
pub use export::ExportDocument;
pub use export::{Export, EXPORT_PAGE};

/// The backend parts a user's data lives in.
pub struct UserDataParts {
    pub store: Arc<dyn Store>,
    pub presence: Arc<dyn Presence>,
    pub topics: Arc<dyn Topics>,
    pub blocklist: Arc<dyn Blocklist>,
    pub preferences: Arc<dyn PreferenceStore>,
    pub timers: Arc<dyn Timers>,
    pub webhooks: Arc<dyn WebhookQueue>,
}

/// Export and erasure of one user's data.
pub struct UserData {
    parts: UserDataParts,
    /// For the preferences as the export shows them (defaults filled in).
    view: UserPreferences,
}

/// What an erasure erased, by kind (`DELETE /v1/users/{id}`'s answer).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Erased {
    /// Inbox messages.
    pub messages: u64,
    /// Conversations of the user's list (each peer keeps their side).
    pub conversations: u64,
    /// Device cursors.
    pub cursors: u64,
    /// Topic subscriptions.
    pub topics: u64,
    /// Users the user had blocked.
    pub blocked: u64,
    /// Preference settings (a category's, a topic's, the quiet hours).
    pub preferences: u64,
    /// Scheduled sends addressed to the user (the user taken off their
    /// receivers; a send to them alone cancelled).
    pub scheduled: u64,
    /// Webhook events of the user's messages, in any state.
    pub webhooks: u64,
    /// Live connections presence listed when the erasure began (closed
    /// with 4003, out of presence).
    pub connections: u64,
}

impl UserData {
    pub fn new(parts: UserDataParts, view: UserPreferences) -> Self {
        UserData { parts, view }
    }

    /// Everything Herald holds about `user`, as one JSON document written
    /// in chunks ([`Export::next_chunk`]): the small parts are read now,
    /// the inbox page by page as the chunks are taken.
    pub async fn export(&self, user: &str) -> Result<Export> {
        validate_user_id(user)?;
        let p = &self.parts;
        let preferences = self.view.get(user).await?;
        let mut conversations = p.store.peers(user).await?;
        conversations.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let head = export::Head {
            user: user.to_owned(),
            preferences,
            topics: p.topics.topics_of(user).await?,
            blocked: p.blocklist.blocked_by(user).await?,
            conversations: conversations
                .into_iter()
                .map(|(peer, last_activity_us)| export::Conversation {
                    peer,
                    last_activity_us,
                })
                .collect(),
            delivered: p.store.delivered(user).await?,
            scheduled: p
                .timers
                .scheduled_for(user)
                .await?
                .into_iter()
                .map(export::Scheduled::from)
                .collect(),
            webhooks: p.webhooks.events_of(user).await?,
        };
        let state = p.store.read_state(user).await?;
        Export::new(p.store.clone(), user, &head, state)
    }

    /// Erases everything Herald holds about `user` (see the module doc
    /// for the order and what a concurrent send does); returns what it
    /// erased. Idempotent: a second call erases nothing.
    pub async fn erase(&self, user: &str) -> Result<Erased> {
        validate_user_id(user)?;
        let p = &self.parts;
        // Preferences first: a backend may keep a mark of them beside the
        // counts (Redis: the muted categories), which the store's erasure
        // then removes with the counts.
        let mut erased = Erased {
            // Counted before the store's step, whose event starts closing
            // them (each leaves presence as it closes).
            connections: p.presence.connections(user).await?.len() as u64,
            ..Erased::default()
        };
        let stored = p.preferences.load(user).await?;
        if !stored.is_empty() {
            erased.preferences = settings(&stored);
            let change = PreferenceChange {
                remove: stored.into_keys().collect(),
                set: Vec::new(),
            };
            p.preferences.apply(user, &change).await?;
        }
        let store = p.store.erase_user(user).await?;
        erased.messages = store.messages;
        erased.conversations = store.conversations;
        erased.cursors = store.cursors;
        // The connections close on their own (4003) and leave presence as
        // they do; taken out here too, so that presence no longer lists
        // the user when the erasure answers, even for a node that is slow.
        for conn in p.presence.connections(user).await? {
            p.presence.remove(&conn).await?;
        }
        for topic in p.topics.topics_of(user).await? {
            erased.topics += u64::from(p.topics.unsubscribe(user, &topic).await?);
        }
        for blocked in p.blocklist.blocked_by(user).await? {
            erased.blocked += u64::from(p.blocklist.unblock(user, &blocked).await?);
        }
        erased.scheduled = p.timers.forget_receiver(user).await?;
        erased.webhooks = self.forget_webhooks(user).await?;
        // Out of the audience announcements' events are armed for.
        p.webhooks.forget(user).await?;
        Ok(erased)
    }

    /// Erases the user's webhook events but those of messages the inbox
    /// holds: those were stored after the store's erasure, and stay with
    /// their message.
    async fn forget_webhooks(&self, user: &str) -> Result<u64> {
        let p = &self.parts;
        let events = p.webhooks.events_of(user).await?;
        if events.is_empty() {
            return Ok(0);
        }
        let messages: Vec<_> = events.iter().map(|e| e.message).collect();
        let kept: BTreeSet<_> = p
            .store
            .find(&StreamKey::inbox(user), &messages)
            .await?
            .into_iter()
            .map(|m| m.id)
            .collect();
        let ids: Vec<_> = events
            .iter()
            .filter(|e| !kept.contains(&e.message))
            .map(|e| e.id)
            .collect();
        p.webhooks.forget_events(user, &ids).await
    }
}

/// How many settings `stored` holds: each category, topic and the quiet
/// hours once, however many fields it takes.
fn settings(stored: &StoredPreferences) -> u64 {
    stored
        .keys()
        .map(|field| match field.split_once(':') {
            Some((kind, name)) => (kind.chars().next().unwrap_or('?'), name),
            None => (field.chars().next().unwrap_or('?'), ""),
        })
        .collect::<BTreeSet<_>>()
        .len() as u64
}

impl From<ScheduledSend> for export::Scheduled {
    fn from(send: ScheduledSend) -> Self {
        export::Scheduled {
            id: send.id,
            deliver_at: send.deliver_at,
            message: send.message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_count_each_category_topic_and_quiet_hours_once() {
        let stored: StoredPreferences = [
            ("ci:remind", "0"),
            ("cf:remind", "1"),
            ("t:article:1", "1"),
            ("ti:article:1", "0"),
            ("q", "{}"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(settings(&stored), 3);
    }
}
