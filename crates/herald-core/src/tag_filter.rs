//! The tags-and-severity filter of history, marks and the `counts`
//! request: which messages it keeps, checked once for every transport.

use herald_protocol::{check_tags, Message, Severity};

use crate::error::{CoreError, Result};

/// Keeps a message with any of `tags` (none given: any message) and of
/// `severity` (none: any). The default keeps every message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagFilter {
    /// Sorted, without repeats.
    pub tags: Vec<String>,
    pub severity: Option<Severity>,
}

impl TagFilter {
    /// Checks the wire form: at most [`herald_protocol::MAX_TAGS`] tags,
    /// each well formed, and a known severity; an error names the field
    /// (`tags: …`, `severity: …`, a 400 on every transport). An empty
    /// `tags` list is refused: it would keep nothing, which is never what
    /// was meant.
    pub fn check(tags: Option<Vec<String>>, severity: Option<&str>) -> Result<TagFilter> {
        let tags = match tags {
            Some(tags) if tags.is_empty() => {
                return Err(CoreError::Invalid("tags: list at least one tag".into()))
            }
            Some(tags) => check_tags(tags).map_err(|e| CoreError::Invalid(format!("tags: {e}")))?,
            None => Vec::new(),
        };
        let severity = severity
            .map(|s| s.parse::<Severity>())
            .transpose()
            .map_err(|e| CoreError::Invalid(format!("severity: {e}")))?;
        Ok(TagFilter { tags, severity })
    }

    /// [`TagFilter::check`] of a query string's `tags=a,b` (comma
    /// separated) and `severity=`.
    pub fn from_query(tags: Option<&str>, severity: Option<&str>) -> Result<TagFilter> {
        let tags = tags.map(|t| t.split(',').map(str::to_owned).collect());
        TagFilter::check(tags, severity)
    }

    /// Keeps every message.
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.severity.is_none()
    }

    pub fn matches(&self, message: &Message) -> bool {
        self.severity.is_none_or(|s| s == message.severity)
            && (self.tags.is_empty()
                || message
                    .tags
                    .iter()
                    .any(|t| self.tags.binary_search(t).is_ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Draft;
    use herald_protocol::{Category, Stream};

    #[test]
    fn a_filter_keeps_any_of_its_tags_and_its_severity() {
        let mut draft = Draft::new(Category::REMIND, "x");
        draft.tags = vec!["billing".into(), "team:42".into()];
        draft.severity = Severity::High;
        let m = draft.into_message(Stream::Inbox, 1);
        let keeps = |tags: Option<&str>, sev: Option<&str>| {
            TagFilter::from_query(tags, sev).unwrap().matches(&m)
        };
        assert!(keeps(None, None));
        assert!(keeps(Some("ops,team:42"), None));
        assert!(!keeps(Some("ops"), None));
        assert!(keeps(Some("billing"), Some("high")));
        assert!(!keeps(Some("billing"), Some("low")));
        let err = |tags: Option<&str>, sev: Option<&str>| {
            TagFilter::from_query(tags, sev).unwrap_err().to_string()
        };
        assert!(err(Some("Billing"), None).contains("tags:"));
        assert!(err(Some(""), None).contains("tags:"));
        assert!(err(None, Some("urgent")).contains("severity:"));
        assert!(TagFilter::check(Some(vec![]), None).is_err());
    }
}
