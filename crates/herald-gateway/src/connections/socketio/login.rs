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
/// has now been given everything that matters to an old client.
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
    let states = [StateFilter::Unread, StateFilter::Read];
    let pages = categories.iter().flat_map(|category| {
        states.map(|state| {
            let query = HistoryQuery {
                category: Some(category.clone()),
                state: Some(state),
                before: None,
                limit: Some(limit),
                snoozed: false,
            };
            node.inbox.history(user, query)
        })
    });
    let (pages, counts) = futures_util::try_join!(try_join_all(pages), node.inbox.counts(user))?;
    let mut unread = Map::new();
    let mut read = Map::new();
    for (i, page) in pages.into_iter().enumerate() {
        let (category, state) = (&categories[i / 2], states[i % 2]);
        let list = entries(page.messages);
        match state {
            StateFilter::Unread => unread.insert(category.clone(), list),
            _ => read.insert(category.clone(), list),
        };
    }
    let as_of = counts.as_of;
    let counts = serde_json::to_value(counts.counts()).unwrap_or_default();
    let push = serde_json::json!({"unread": unread, "read": read, "counts": counts});
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
