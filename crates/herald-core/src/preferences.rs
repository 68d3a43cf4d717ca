//! Users' preferences: the checks of a change, its translation into the
//! fields a backend stores ([`StoredPreferences`]), and the object clients
//! see, with the operator's defaults filled in. Both transports and the
//! server API go through [`UserPreferences`].

use std::collections::BTreeSet;
use std::sync::Arc;

use herald_protocol::{Channels, ChannelsPatch, Preferences, PreferencesPatch, QuietHours};

use crate::backend::{PreferenceChange, PreferenceStore, StoredPreferences, MAX_TOPIC_PREFERENCES};
use crate::categories::Categories;
use crate::error::{CoreError, Result};
use crate::model::{validate_user_id, Draft};
use crate::quiet_hours::QuietWindow;
use crate::topics::validate_topic;

/// The field of the quiet hours (JSON).
const QUIET: &str = "q";

/// The field of one flag: `ci:`/`cf:` a category's `in_app`/`fallback`,
/// `ti:`/`tf:` a topic's; `t:<topic>` marks a topic the user set.
fn field(prefix: &str, name: &str) -> String {
    format!("{prefix}:{name}")
}

fn flag(value: bool) -> String {
    if value { "1" } else { "0" }.to_owned()
}

/// The preferences service of a node.
#[derive(Clone)]
pub struct UserPreferences {
    store: Arc<dyn PreferenceStore>,
    categories: Categories,
}

impl UserPreferences {
    pub fn new(store: Arc<dyn PreferenceStore>, categories: Categories) -> Self {
        UserPreferences { store, categories }
    }

    /// `user`'s preferences, defaults filled in.
    pub async fn get(&self, user: &str) -> Result<Preferences> {
        validate_user_id(user)?;
        Ok(self.resolve(&self.store.load(user).await?))
    }

    /// What `user` set (for a connection, which keeps their quiet hours).
    pub async fn stored(&self, user: &str) -> Result<StoredPreferences> {
        validate_user_id(user)?;
        self.store.load(user).await
    }

    /// The quiet hours in `stored`, checked; none when unset (or stored by
    /// a version that checked otherwise).
    pub fn quiet_window(stored: &StoredPreferences) -> Option<QuietWindow> {
        let hours: QuietHours = serde_json::from_str(stored.get(QUIET)?).ok()?;
        QuietWindow::parse(&hours).ok()
    }

    /// Merges `patch` into `user`'s preferences (atomically; every
    /// connection of the user is told) and returns all of them.
    pub async fn update(&self, user: &str, patch: &PreferencesPatch) -> Result<Preferences> {
        validate_user_id(user)?;
        let change = self.change_of(patch)?;
        Ok(self.resolve(&self.store.apply(user, &change).await?))
    }

    /// What clients see of `stored`: every configured category, the
    /// operator's defaults where the user set nothing; the topics the user
    /// set (an unset flag of one is on); the quiet hours.
    pub fn resolve(&self, stored: &StoredPreferences) -> Preferences {
        let read = |prefix: &str, name: &str, default: bool| match stored
            .get(&field(prefix, name))
            .map(String::as_str)
        {
            Some("0") => false,
            Some("1") => true,
            _ => default,
        };
        let categories = self
            .categories
            .iter()
            .map(|spec| {
                let name = spec.category.as_str();
                let channels = Channels {
                    in_app: read("ci", name, spec.defaults.in_app),
                    fallback: read("cf", name, spec.defaults.fallback),
                };
                (name.to_owned(), channels)
            })
            .collect();
        let topics = stored
            .keys()
            .filter_map(|k| k.strip_prefix("t:"))
            .map(|topic| {
                let channels = Channels {
                    in_app: read("ti", topic, true),
                    fallback: read("tf", topic, true),
                };
                (topic.to_owned(), channels)
            })
            .collect();
        let quiet_hours = stored
            .get(QUIET)
            .and_then(|json| serde_json::from_str::<QuietHours>(json).ok());
        Preferences {
            categories,
            topics,
            quiet_hours,
        }
    }

    /// Checks `patch` and turns it into field changes. Errors name the
    /// field: an unknown category, a bad topic, a bad zone or time, more
    /// topics than [`MAX_TOPIC_PREFERENCES`] in one patch.
    pub fn change_of(&self, patch: &PreferencesPatch) -> Result<PreferenceChange> {
        let mut change = PreferenceChange::default();
        for (name, channels) in &patch.categories {
            self.categories.get(name).map_err(|_| {
                let names: Vec<&str> = self
                    .categories
                    .iter()
                    .map(|s| s.category.as_str())
                    .collect();
                CoreError::Invalid(format!(
                    "categories.{name}: unknown category; expected one of {}",
                    names.join(", ")
                ))
            })?;
            set_flags(&mut change, ("ci", "cf"), name, channels);
        }
        if patch.topics.len() > MAX_TOPIC_PREFERENCES {
            return Err(too_many_topics());
        }
        for (topic, channels) in &patch.topics {
            validate_topic(topic)
                .map_err(|e| CoreError::Invalid(format!("topics.{topic}: {e}")))?;
            match channels {
                Some(channels) => {
                    change.set.push((field("t", topic), String::new()));
                    set_flags(&mut change, ("ti", "tf"), topic, channels);
                }
                None => {
                    for prefix in ["t", "ti", "tf"] {
                        change.remove.push(field(prefix, topic));
                    }
                }
            }
        }
        match &patch.quiet_hours {
            None => {}
            Some(None) => change.remove.push(QUIET.to_owned()),
            Some(Some(hours)) => {
                QuietWindow::parse(hours)?;
                let json = serde_json::to_string(hours).expect("quiet hours serialize");
                change.set.push((QUIET.to_owned(), json));
            }
        }
        Ok(change)
    }
}

fn set_flags(change: &mut PreferenceChange, (i, f): (&str, &str), name: &str, p: &ChannelsPatch) {
    if let Some(in_app) = p.in_app {
        change.set.push((field(i, name), flag(in_app)));
    }
    if let Some(fallback) = p.fallback {
        change.set.push((field(f, name), flag(fallback)));
    }
}

impl UserPreferences {
    /// Whether the receiver whose preferences are `stored` wants the
    /// fallback (webhook) of a message of `category`, published to `topic`:
    /// their `fallback` for the category, else the operator's default, and
    /// for the topic (unset: on).
    pub fn wants_fallback(
        &self,
        stored: &StoredPreferences,
        category: &herald_protocol::Category,
        topic: Option<&str>,
    ) -> bool {
        let flag = |f: String| stored.get(&f).map(String::as_str);
        let by_category = match flag(field("cf", category.as_str())) {
            Some("0") => false,
            Some("1") => true,
            _ => self
                .categories
                .get(category.as_str())
                .map_or(true, |spec| spec.defaults.fallback),
        };
        by_category && topic.is_none_or(|t| flag(field("tf", t)) != Some("0"))
    }
}

/// Whether the receiver whose preferences are `stored` keeps `draft` out:
/// not critical, and `in_app` off for its category (the receiver's setting,
/// else the operator's default) or for the topic it was published to. The
/// memory store asks this in its append; the Redis append script mirrors
/// it (`APPEND_MANY`).
pub fn keeps_out(stored: Option<&StoredPreferences>, draft: &Draft) -> bool {
    if draft.critical {
        return false;
    }
    let flag = |f: String| stored.and_then(|s| s.get(&f)).map(String::as_str);
    let category = match flag(field("ci", draft.category.as_str())) {
        Some("0") => false,
        Some("1") => true,
        _ => draft.in_app_default,
    };
    let topic = draft
        .topic
        .as_ref()
        .is_none_or(|t| flag(field("ti", t)) != Some("0"));
    !(category && topic)
}

/// The error of a change that would leave a user more than
/// [`MAX_TOPIC_PREFERENCES`] topics.
pub(crate) fn too_many_topics() -> CoreError {
    CoreError::Invalid(format!(
        "topics: preferences hold at most {MAX_TOPIC_PREFERENCES} topics per user"
    ))
}

/// Applies `change` to `fields` as every backend must: removals, then the
/// fields set, refused whole (nothing changed) when more than
/// [`MAX_TOPIC_PREFERENCES`] topics would result. The memory backend runs
/// this; the Redis script mirrors it.
pub fn apply_preference_change(
    fields: &mut StoredPreferences,
    change: &PreferenceChange,
) -> Result<()> {
    let mut topics: BTreeSet<&str> = fields.keys().filter_map(|k| k.strip_prefix("t:")).collect();
    for removed in &change.remove {
        if let Some(topic) = removed.strip_prefix("t:") {
            topics.remove(topic);
        }
    }
    for (set, _) in &change.set {
        if let Some(topic) = set.strip_prefix("t:") {
            topics.insert(topic);
        }
    }
    if topics.len() > MAX_TOPIC_PREFERENCES {
        return Err(too_many_topics());
    }
    for removed in &change.remove {
        fields.remove(removed);
    }
    for (k, v) in &change.set {
        fields.insert(k.clone(), v.clone());
    }
    Ok(())
}
