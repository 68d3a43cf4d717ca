//! Action buttons: what a send may carry in `actions` (checked here, once,
//! for every transport) and what an `act` may name. The act itself is
//! `Inbox::act` (`inbox/act.rs`); the taken action is read state
//! (`StreamMarks::acted`).
//!
//! The checks keep what a client renders safe: a `url` is http or https
//! only (a `javascript:` or `data:` link in a button would run in the
//! receiver's page), labels are short, and ids are plain tokens a tab can
//! compare and a receiver of the `message.action` webhook can switch on.

use herald_protocol::{Action, Message};

use crate::error::{CoreError, Result};

/// Most buttons one message may carry.
pub const MAX_ACTIONS: usize = 3;
/// Longest action `id` and `label`, in characters.
pub const MAX_ACTION_ID: usize = 64;
pub const MAX_ACTION_LABEL: usize = 64;
/// Longest action `url`, in bytes.
pub const MAX_ACTION_URL: usize = 2048;

/// Checks a send's `actions`: at most [`MAX_ACTIONS`], ids unique tokens
/// of 1 to 64 characters (`A-Z a-z 0-9 _ - . :`), labels of 1 to 64
/// characters, urls absolute http(s). The error names the field
/// (`actions[1].url: …`).
pub fn check_actions(actions: &[Action]) -> Result<()> {
    if actions.len() > MAX_ACTIONS {
        return Err(CoreError::Invalid(format!(
            "actions: at most {MAX_ACTIONS} actions, got {}",
            actions.len()
        )));
    }
    for (i, action) in actions.iter().enumerate() {
        let field =
            |name: &str, why: String| CoreError::Invalid(format!("actions[{i}].{name}: {why}"));
        let id_ok = !action.id.is_empty()
            && action.id.chars().count() <= MAX_ACTION_ID
            && action
                .id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b));
        if !id_ok {
            return Err(field(
                "id",
                format!(
                    "must be 1 to {MAX_ACTION_ID} characters of A-Z, a-z, 0-9, '_', '-', '.', ':'"
                ),
            ));
        }
        if actions[..i].iter().any(|a| a.id == action.id) {
            return Err(field("id", format!("{:?} is used twice", action.id)));
        }
        let label = action.label.chars().count();
        if label == 0 || label > MAX_ACTION_LABEL || action.label.chars().any(char::is_control) {
            return Err(field(
                "label",
                format!("must be 1 to {MAX_ACTION_LABEL} characters, none a control character"),
            ));
        }
        if let Some(url) = &action.url {
            check_url(url).map_err(|why| field("url", why))?;
        }
    }
    Ok(())
}

/// An absolute http or https URL with a host, at most
/// [`MAX_ACTION_URL`] bytes.
fn check_url(url: &str) -> std::result::Result<(), String> {
    if url.len() > MAX_ACTION_URL {
        return Err(format!("longer than {MAX_ACTION_URL} bytes"));
    }
    let parsed = url::Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "must be an http or https URL, not {}:",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".into());
    }
    Ok(())
}

/// The action of `message` named `id`, or an error saying which ones it
/// has.
pub fn find_action<'a>(message: &'a Message, id: &str) -> Result<&'a Action> {
    if message.actions.is_empty() {
        return Err(CoreError::Invalid("message: has no action buttons".into()));
    }
    message.actions.iter().find(|a| a.id == id).ok_or_else(|| {
        let known: Vec<&str> = message.actions.iter().map(|a| a.id.as_str()).collect();
        CoreError::Invalid(format!(
            "action: the message has no action {id:?} (it has {})",
            known.join(", ")
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(id: &str, label: &str, url: Option<&str>) -> Action {
        Action {
            id: id.into(),
            label: label.into(),
            url: url.map(Into::into),
        }
    }

    fn err(actions: &[Action]) -> String {
        check_actions(actions).unwrap_err().to_string()
    }

    #[test]
    fn good_actions_pass() {
        check_actions(&[]).unwrap();
        check_actions(&[
            action("accept", "Accept", Some("https://example.com/a?x=1")),
            action("decline", "Decline", Some("http://localhost:8080/d")),
            action("later:1", "Later…", None),
        ])
        .unwrap();
    }

    #[test]
    fn each_bad_action_is_named() {
        let a = |id: &str| action(id, "L", None);
        assert!(err(&[a("a"), a("b"), a("c"), a("d")]).starts_with("actions: at most 3"));
        assert!(err(&[a("a"), a("a")]).starts_with("actions[1].id: \"a\" is used twice"));
        assert!(err(&[a("")]).starts_with("actions[0].id:"));
        assert!(err(&[a("a b")]).starts_with("actions[0].id:"));
        assert!(err(&[a(&"x".repeat(65))]).starts_with("actions[0].id:"));
        assert!(err(&[action("a", &"é".repeat(65), None)]).starts_with("actions[0].label:"));
        check_actions(&[action("a", &"é".repeat(64), None)]).unwrap();
        assert!(err(&[action("a", "", None)]).starts_with("actions[0].label:"));
        for url in [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:text/html,x",
            "ftp://example.com/",
            "/relative",
            "https://",
        ] {
            let e = err(&[a("ok"), action("b", "B", Some(url))]);
            assert!(e.starts_with("actions[1].url:"), "{url}: {e}");
        }
    }
}
