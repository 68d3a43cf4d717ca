//! What a topic is: the check every backend's [`Topics`](crate::Topics)
//! runs on a topic, and the error of one topic too many.

use crate::backend::MAX_TOPICS_PER_USER;
use crate::error::{CoreError, Result};

/// Longest topic, in bytes.
pub const MAX_TOPIC_LEN: usize = 200;

/// A topic is 1 to [`MAX_TOPIC_LEN`] bytes without whitespace, control
/// characters, `{` or `}` (the Redis backend puts it in a hash tag).
pub fn validate_topic(topic: &str) -> Result<()> {
    if topic.is_empty() || topic.len() > MAX_TOPIC_LEN {
        return Err(CoreError::Invalid(format!(
            "topic: must be 1 to {MAX_TOPIC_LEN} bytes long"
        )));
    }
    if topic
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '{' || c == '}')
    {
        return Err(CoreError::Invalid(
            "topic: may not contain whitespace, control characters, '{' or '}'".into(),
        ));
    }
    Ok(())
}

/// The error of a subscribe beyond [`MAX_TOPICS_PER_USER`].
pub(crate) fn too_many_topics() -> CoreError {
    CoreError::Invalid(format!(
        "topic: a user may subscribe to at most {MAX_TOPICS_PER_USER} topics"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_validated() {
        for ok in [
            "article:42",
            "user:alice",
            "a",
            &"x".repeat(MAX_TOPIC_LEN),
            "é:ü",
        ] {
            assert_eq!(validate_topic(ok), Ok(()), "{ok:?}");
        }
        for bad in [
            "",
            &"x".repeat(MAX_TOPIC_LEN + 1),
            "a b",
            "a\tb",
            "a\u{0}b",
            "a\u{7f}",
            "a{b",
            "}",
            "a\u{a0}b",
        ] {
            match validate_topic(bad) {
                Err(CoreError::Invalid(m)) => assert!(m.starts_with("topic: "), "{m}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}
