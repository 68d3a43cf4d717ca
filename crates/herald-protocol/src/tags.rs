//! Tags and severity: what a sender may label a message with, and what
//! history, marks and counts may filter by (`docs/protocol.md`, *Tags and
//! severity*).

use serde::{Deserialize, Serialize};

/// How urgent a message is. `normal` unless the sender said otherwise;
/// the `counts` frame's `unread_by_severity` has one number for each.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    #[default]
    Normal,
    High,
    Critical,
}

impl Severity {
    /// Every severity, in the order of [`Severity::index`].
    pub const ALL: [Severity; 4] = [
        Severity::Low,
        Severity::Normal,
        Severity::High,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Normal => "normal",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// The position in [`Severity::ALL`], for per-severity arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The default: left out of a stored or pushed message.
    pub fn is_normal(&self) -> bool {
        *self == Severity::Normal
    }
}

/// A severity name that is not one of the four.
#[derive(Debug, thiserror::Error)]
#[error("must be one of low, normal, high, critical; got {0:?}")]
pub struct InvalidSeverity(pub String);

impl std::str::FromStr for Severity {
    type Err = InvalidSeverity;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| InvalidSeverity(s.to_owned()))
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Most tags on one message (and in one filter).
pub const MAX_TAGS: usize = 10;
/// Longest tag, in bytes.
pub const MAX_TAG_LEN: usize = 64;

/// Checks one tag: 1 to [`MAX_TAG_LEN`] bytes of `a-z`, `0-9`, `:`, `_`,
/// `.`, `-`. Lower case only, so `Billing` and `billing` never name two
/// groups a filter would have to merge.
pub fn check_tag(tag: &str) -> Result<(), String> {
    if tag.is_empty() || tag.len() > MAX_TAG_LEN {
        return Err(format!(
            "each tag must be 1 to {MAX_TAG_LEN} bytes; got {tag:?}"
        ));
    }
    let ok = tag.bytes().all(|b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b':' | b'_' | b'.' | b'-')
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "each tag must be of a-z, 0-9, ':', '_', '.', '-'; got {tag:?}"
        ))
    }
}

/// Checks a list of tags (a message's or a filter's): at most
/// [`MAX_TAGS`], each as [`check_tag`] says. Returns them sorted, without
/// repeats. The error is what follows the field's name.
pub fn check_tags(mut tags: Vec<String>) -> Result<Vec<String>, String> {
    if tags.len() > MAX_TAGS {
        return Err(format!("at most {MAX_TAGS} tags; got {}", tags.len()));
    }
    for tag in &tags {
        check_tag(tag)?;
    }
    tags.sort_unstable();
    tags.dedup();
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_severities_are_checked() {
        assert_eq!(
            check_tags(vec!["team:42".into(), "billing".into(), "billing".into()]).unwrap(),
            vec!["billing".to_owned(), "team:42".to_owned()]
        );
        assert!(check_tags((0..11).map(|i| format!("t{i}")).collect()).is_err());
        for bad in ["", "Billing", "a b", &"x".repeat(65)] {
            assert!(check_tag(bad).is_err(), "{bad:?}");
        }
        assert!(check_tag(&"x".repeat(64)).is_ok());
        assert_eq!("high".parse::<Severity>().unwrap(), Severity::High);
        assert!("urgent".parse::<Severity>().is_err());
        for s in Severity::ALL {
            assert_eq!(Severity::ALL[s.index()], s);
        }
    }
}
