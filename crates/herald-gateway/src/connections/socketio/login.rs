//! `user_login` → `push_message`: the user's inbox as the old server sent
//! it, read and unread messages by category, with the counts beside them.

use futures_util::future::try_join_all;
use herald_core::{CoreError, HistoryQuery};
use herald_protocol::{HistoryEntry, StateFilter, Stream};
use serde_json::{Map, Value};

use crate::node::Node;

/// The old client's `user_login` payload; `socketId` is the id its own
/// socket had, which Herald does not need (it knows the session).
#[derive(Debug, serde::Deserialize)]
pub(super) struct UserLogin {
    #[serde(rename = "userId")]
    pub user_id: Value,
    #[serde(rename = "socketId", default)]
    pub _socket_id: Option<Value>,
}

impl UserLogin {
    /// The `userId` as Herald spells user ids: old apps sent numbers too.
    pub(super) fn user(&self) -> Option<String> {
        match &self.user_id {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

/// `{"unread": {"<category>": [message, …]}, "read": {…}, "counts": {…}}`:
/// the newest `socketio.push_per_category` of each category and state,
/// newest first, each message as `history` lists it (with its `state`);
/// and the seq of each stream the counts include, up to which the device
/// has now been given everything that matters to an old client. A user
/// with no message on either stream gets empty lists without a read.
pub(super) async fn push_message(
    node: &Node,
    user: &str,
) -> Result<(Value, [u64; Stream::ALL.len()]), CoreError> {
    let limit = node.settings.socketio.push_per_category.clamp(1, 200) as usize;
    let categories: Vec<String> = node
        .inbox
        .categories()
        .iter()
        .map(|spec| spec.category.as_str().to_owned())
        .collect();
    // The counts first: a category with nothing unread needs no unread
    // page (a new user's login then costs one page per category).
    let counts = node.inbox.counts(user).await?;
    let as_of = counts.as_of;
    let counts = counts.counts();
    // Nothing was ever written to the user's inbox and no announcement
    // exists: every page would be empty. A new user's login then reads no
    // page at all (each page reads the user's state and both streams: 18
    // Redis reads, a quarter of a connect's CPU by perf,
    // `docs/benchmarks.md`).
    let empty = as_of.iter().all(|&seq| seq == 0);
    let query = |category: &str, state| HistoryQuery {
        category: Some(category.to_owned()),
        state: Some(state),
        before: None,
        limit: Some(limit),
        snoozed: false,
        filter: Default::default(),
    };
    let unread_pages = categories.iter().map(|category| async {
        if empty || counts.unread.get(category).copied().unwrap_or(0) == 0 {
            return Ok(Vec::new());
        }
        let page = node
            .inbox
            .history(user, query(category, StateFilter::Unread));
        page.await.map(|page| page.messages)
    });
    let read_pages = categories.iter().map(|category| async {
        if empty {
            return Ok(Vec::new());
        }
        let page = node.inbox.history(user, query(category, StateFilter::Read));
        page.await.map(|page| page.messages)
    });
    let (unread_pages, read_pages) =
        futures_util::try_join!(try_join_all(unread_pages), try_join_all(read_pages))?;
    let by_category = |pages: Vec<Vec<HistoryEntry>>| -> Map<String, Value> {
        categories
            .iter()
            .cloned()
            .zip(pages.into_iter().map(entries))
            .collect()
    };
    let push = serde_json::json!({
        "unread": by_category(unread_pages),
        "read": by_category(read_pages),
        "counts": serde_json::to_value(&counts).unwrap_or_default(),
    });
    Ok((push, as_of))
}

fn entries(messages: Vec<HistoryEntry>) -> Value {
    Value::Array(
        messages
            .into_iter()
            .filter_map(|entry| serde_json::to_value(entry).ok())
            .collect(),
    )
}
