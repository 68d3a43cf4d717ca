//! The one validator of a message before it becomes a [`Draft`].
//!
//! The server API and the WebSocket used to check messages each in their own
//! way (and had drifted apart: 64 KiB against 32 KiB, two wordings). Both now
//! hand a [`NewMessage`] to [`MessageLimits::draft`] and only map its
//! [`CoreError::Invalid`] to their own error shape, so a message accepted by
//! one is accepted by the other with the same words for what is wrong.

use time::OffsetDateTime;

use crate::categories::Categories;
use crate::error::{CoreError, Result};
use crate::model::{validate_user_id, Draft};

/// Bounds on what one message may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageLimits {
    /// Longest `body`, in bytes.
    pub max_body: usize,
    /// Longest `title`, in bytes.
    pub max_title: usize,
    /// Largest `data`, in bytes of its JSON encoding.
    pub max_data: usize,
    /// Most users one send may address.
    pub max_recipients: usize,
}

impl Default for MessageLimits {
    fn default() -> Self {
        MessageLimits {
            max_body: 64 * 1024,
            max_title: 1024,
            max_data: 16 * 1024,
            max_recipients: 1_000,
        }
    }
}

/// A message as a client or backend sent it, before any check.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewMessage {
    /// The category's name as received (`"remind"`, …).
    pub category: String,
    /// Who sent it: a user id for private messages, or a system name.
    pub from: Option<String>,
    pub title: Option<String>,
    pub body: String,
    /// Must be a JSON object when present.
    pub data: Option<serde_json::Value>,
    /// When the message stops being pushed, listed and counted.
    pub expires_at: Option<OffsetDateTime>,
    /// The collapse group: 1 to [`MAX_GROUP_KEY`] characters.
    pub group_key: Option<String>,
    /// Nobody may mute it (the operator API only; a client's `send` has no
    /// such field).
    pub critical: bool,
    /// Seconds after which an unread copy raises the receiver's fallback
    /// webhook, overriding the category's (1 to [`MAX_FALLBACK_AFTER_SECS`]).
    pub fallback_after_secs: Option<u64>,
    /// Action buttons ([`check_actions`](crate::check_actions)).
    pub actions: Vec<herald_protocol::Action>,
    /// Labels: at most [`herald_protocol::MAX_TAGS`], each 1 to
    /// [`herald_protocol::MAX_TAG_LEN`] bytes of `[a-z0-9:_.-]`.
    pub tags: Option<Vec<String>>,
    /// `low`, `normal`, `high` or `critical`; none: normal.
    pub severity: Option<String>,
}

/// Longest `fallback_after_secs`: 30 days (a message is kept that long by
/// default).
pub const MAX_FALLBACK_AFTER_SECS: u64 = 30 * 24 * 3600;

/// Longest `group_key`, in characters.
pub const MAX_GROUP_KEY: usize = 128;

impl MessageLimits {
    /// Checks `message` against these limits and the configured
    /// `categories` and turns it into a draft with a fresh id, or says which
    /// field is wrong (`CoreError::Invalid`, message starting with the
    /// field's name). The draft expires at its `expires_at` or after its
    /// category's max age, whichever is sooner.
    pub fn draft(&self, message: NewMessage, categories: &Categories) -> Result<Draft> {
        let spec = categories.get(&message.category)?;
        if message.body.len() > self.max_body {
            return Err(too_long("body", self.max_body));
        }
        if let Some(title) = &message.title {
            if title.len() > self.max_title {
                return Err(too_long("title", self.max_title));
            }
        }
        if let Some(from) = &message.from {
            validate_user_id(from).map_err(|e| invalid("from", e))?;
        }
        let mut draft = Draft::new(spec.category.clone(), message.body);
        if message.expires_at.is_some_and(|t| t <= draft.ts) {
            return Err(invalid("expires_at", "is not in the future"));
        }
        let by_category = spec.max_age.map(|age| draft.ts + age);
        draft.expires_at = match (message.expires_at, by_category) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(data) = message.data {
            if !data.is_object() {
                return Err(invalid("data", "must be a JSON object"));
            }
            let size = serde_json::to_vec(&data).map_or(usize::MAX, |v| v.len());
            if size > self.max_data {
                return Err(too_long("data", self.max_data));
            }
            draft.data = data;
        }
        if let Some(key) = &message.group_key {
            let chars = key.chars().count();
            if chars == 0 || chars > MAX_GROUP_KEY {
                return Err(invalid(
                    "group_key",
                    format!("must be 1 to {MAX_GROUP_KEY} characters long"),
                ));
            }
        }
        crate::actions::check_actions(&message.actions)?;
        draft.actions = message.actions;
        if let Some(tags) = message.tags {
            draft.tags = herald_protocol::check_tags(tags).map_err(|e| invalid("tags", e))?;
        }
        if let Some(severity) = &message.severity {
            draft.severity = severity.parse().map_err(|e| invalid("severity", e))?;
        }
        draft.from = message.from;
        draft.title = message.title;
        draft.group_key = message.group_key;
        draft.critical = message.critical;
        draft.in_app_default = spec.defaults.in_app;
        draft.fallback_after = match message.fallback_after_secs {
            Some(secs) if secs == 0 || secs > MAX_FALLBACK_AFTER_SECS => {
                return Err(invalid(
                    "fallback_after_secs",
                    format!("must be 1 to {MAX_FALLBACK_AFTER_SECS}"),
                ))
            }
            Some(secs) => Some(std::time::Duration::from_secs(secs)),
            None => spec.fallback_after,
        };
        Ok(draft)
    }

    /// Checks a list of receivers: 1 to `max_recipients` valid user ids.
    /// Returns them sorted, without repeats (one inbox append each).
    pub fn recipients(&self, mut users: Vec<String>) -> Result<Vec<String>> {
        users.sort_unstable();
        users.dedup();
        if users.is_empty() || users.len() > self.max_recipients {
            return Err(CoreError::Invalid(format!(
                "to.users: must list 1 to {} users",
                self.max_recipients
            )));
        }
        for user in &users {
            validate_user_id(user).map_err(|e| invalid("to.users", e))?;
        }
        Ok(users)
    }
}

fn invalid(field: &str, why: impl std::fmt::Display) -> CoreError {
    CoreError::Invalid(format!("{field}: {why}"))
}

fn too_long(field: &str, max: usize) -> CoreError {
    CoreError::Invalid(format!("{field}: longer than {max} bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: &str) -> NewMessage {
        NewMessage {
            category: "remind".into(),
            body: body.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_valid_message_becomes_a_draft() {
        let mut m = message("hi");
        m.title = Some("t".into());
        m.data = Some(serde_json::json!({"k": 1}));
        let draft = MessageLimits::default()
            .draft(m, &Categories::default())
            .unwrap();
        assert_eq!(draft.category, herald_protocol::Category::REMIND);
        assert_eq!(draft.title.as_deref(), Some("t"));
        assert_eq!(draft.data["k"], 1);
    }

    #[test]
    fn each_bad_field_is_named() {
        let limits = MessageLimits {
            max_body: 4,
            max_title: 2,
            max_data: 10,
            max_recipients: 2,
        };
        let err = |m: NewMessage| {
            limits
                .draft(m, &Categories::default())
                .unwrap_err()
                .to_string()
        };
        assert!(err(message("12345")).starts_with("body: longer than 4 bytes"));
        let mut m = message("");
        m.category = "nope".into();
        assert!(err(m).starts_with("category: unknown category"));
        let mut m = message("");
        m.title = Some("abc".into());
        assert!(err(m).starts_with("title:"));
        let mut m = message("");
        m.data = Some(serde_json::json!([1]));
        assert_eq!(err(m), "data: must be a JSON object");
        let mut m = message("");
        m.data = Some(serde_json::json!({"long": "xxxxxxxxxx"}));
        assert!(err(m).starts_with("data: longer than 10 bytes"));
        let mut m = message("");
        m.from = Some("a b".into());
        assert!(err(m).starts_with("from:"));
        let mut m = message("");
        m.expires_at = Some(OffsetDateTime::now_utc() - std::time::Duration::from_secs(1));
        assert_eq!(err(m), "expires_at: is not in the future");
        let mut m = message("");
        m.tags = Some((0..11).map(|i| format!("t{i}")).collect());
        assert!(err(m).starts_with("tags: at most 10"));
        for bad in ["Billing", "a b", &"x".repeat(65)] {
            let mut m = message("");
            m.tags = Some(vec![bad.to_owned()]);
            assert!(err(m).starts_with("tags: each tag"), "{bad}");
        }
        let mut m = message("");
        m.severity = Some("urgent".into());
        assert!(err(m).starts_with("severity: must be one of"));
        let mut m = message("");
        m.tags = Some(vec!["team:42".into(), "billing".into()]);
        m.severity = Some("high".into());
        let draft = limits.draft(m, &Categories::default()).unwrap();
        assert_eq!(draft.tags, ["billing", "team:42"]);
        assert_eq!(draft.severity, herald_protocol::Severity::High);
        assert!(limits.recipients(vec![]).is_err());
        assert!(limits
            .recipients(vec!["a".into(), "b".into(), "c".into()])
            .is_err());
        assert!(limits.recipients(vec!["{x}".into()]).is_err());
        assert_eq!(
            limits
                .recipients(vec!["b".into(), "a".into(), "b".into()])
                .unwrap(),
            vec!["a".to_owned(), "b".to_owned()]
        );
    }
}

#[cfg(test)]
mod expiry_tests {
    use std::time::Duration;

    use super::*;
    use crate::categories::CategorySpec;

    #[test]
    fn a_category_max_age_bounds_the_expiry() {
        let categories = Categories::new(vec![CategorySpec {
            category: "flash".parse().unwrap(),
            max_age: Some(Duration::from_secs(60)),
            badge: true,
            defaults: Default::default(),
            fallback_after: None,
        }]);
        let limits = MessageLimits::default();
        let new = |expires_in: Option<u64>| NewMessage {
            category: "flash".into(),
            expires_at: expires_in.map(|s| OffsetDateTime::now_utc() + Duration::from_secs(s)),
            ..Default::default()
        };
        let d = limits.draft(new(None), &categories).unwrap();
        assert_eq!(d.expires_at, Some(d.ts + Duration::from_secs(60)));
        let d = limits.draft(new(Some(10)), &categories).unwrap();
        assert!(d.expires_at.unwrap() < d.ts + Duration::from_secs(11));
        let d = limits.draft(new(Some(600)), &categories).unwrap();
        assert_eq!(d.expires_at, Some(d.ts + Duration::from_secs(60)));
        let remind = NewMessage {
            category: "remind".into(),
            ..Default::default()
        };
        assert_eq!(limits.draft(remind, &categories).unwrap().expires_at, None);
    }
}
