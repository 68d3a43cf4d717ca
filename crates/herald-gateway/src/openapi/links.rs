//! The document's OpenAPI links: which answer feeds which next request
//! (a send's receiver and message id into history, counts and a mark; a
//! publish's job into `GET /v1/jobs/{id}`; …). They tell a reader how the
//! operations chain, and they let schemathesis's stateful phase
//! (`scripts/test-openapi.sh`) walk real sequences — send → history →
//! mark → counts — instead of guessing ids that do not exist.
//!
//! Written here as one table rather than in each handler's annotation:
//! a link names two operations, and the table shows every chain at once.

use serde_json::{json, Value};
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::{OpenApi, RefOr};

use super::operations::operations_mut;

/// The first receiver of a `POST /v1/messages` (the links follow one).
const SENT_TO: &str = "$request.body#/to/users/0";
/// The user of a `/v1/users/{id}/…` request.
const SAME_USER: &str = "$request.path.id";

/// One link: from `source`'s answer `status`, named `name`, to `target`
/// with these parameters (`in.name` → expression) and request body.
struct Chain {
    source: &'static str,
    status: &'static str,
    name: &'static str,
    target: &'static str,
    parameters: &'static [(&'static str, &'static str)],
    /// A body the target takes as it is (else a tool may merge it with
    /// one of its own making).
    body: Option<fn() -> Value>,
    description: &'static str,
}

const CHAINS: &[Chain] = &[
    Chain {
        source: "post_messages",
        status: "202",
        name: "History",
        target: "history",
        parameters: &[
            ("path.id", SENT_TO),
            ("query.category", "$request.body#/category"),
        ],
        body: None,
        description: "The first receiver's history of the message's category, which holds it",
    },
    Chain {
        source: "post_messages",
        status: "202",
        name: "Inbox",
        target: "inbox",
        parameters: &[("path.id", SENT_TO)],
        body: None,
        description: "The first receiver's inbox",
    },
    Chain {
        source: "post_messages",
        status: "202",
        name: "Counts",
        target: "counts",
        parameters: &[("path.id", SENT_TO)],
        body: None,
        description: "The first receiver's unread counts, the message counted",
    },
    Chain {
        source: "post_messages",
        status: "202",
        name: "MarkRead",
        target: "mark",
        parameters: &[("path.id", SENT_TO)],
        body: Some(|| json!({"state": "read", "ids": ["$response.body#/id"]})),
        description: "Mark the message read for its first receiver",
    },
    Chain {
        source: "post_messages",
        status: "202",
        name: "Export",
        target: "export_user",
        parameters: &[("path.id", SENT_TO)],
        body: None,
        description: "The first receiver's data, the message in it",
    },
    Chain {
        source: "mark",
        status: "200",
        name: "History",
        target: "history",
        parameters: &[("path.id", SAME_USER)],
        body: None,
        description: "The user's history, with the marked states",
    },
    Chain {
        source: "mark",
        status: "200",
        name: "Counts",
        target: "counts",
        parameters: &[("path.id", SAME_USER)],
        body: None,
        description: "The user's counts after the mark",
    },
    Chain {
        source: "act",
        status: "200",
        name: "History",
        target: "history",
        parameters: &[("path.id", SAME_USER)],
        body: None,
        description: "The user's history, the action taken shown",
    },
    Chain {
        source: "publish",
        status: "202",
        name: "Job",
        target: "job",
        parameters: &[("path.id", "$response.body#/job")],
        body: None,
        description: "The publish's fan-out job",
    },
    Chain {
        source: "subscribe",
        status: "200",
        name: "Topics",
        target: "user_topics",
        parameters: &[("path.id", SAME_USER)],
        body: None,
        description: "The user's topics, this one among them",
    },
    Chain {
        source: "subscribe",
        status: "200",
        name: "Subscribers",
        target: "topic_subscribers",
        parameters: &[("path.topic", "$request.path.topic")],
        body: None,
        description: "The topic's subscribers, this user among them",
    },
    Chain {
        source: "subscribe",
        status: "200",
        name: "Unsubscribe",
        target: "unsubscribe",
        parameters: &[
            ("path.id", SAME_USER),
            ("path.topic", "$request.path.topic"),
        ],
        body: None,
        description: "Undo the subscription",
    },
    Chain {
        source: "block",
        status: "200",
        name: "Blocks",
        target: "blocks",
        parameters: &[("path.id", SAME_USER)],
        body: None,
        description: "The user's block list, this user among them",
    },
    Chain {
        source: "block",
        status: "200",
        name: "Unblock",
        target: "unblock",
        parameters: &[("path.id", SAME_USER), ("path.user", "$request.path.user")],
        body: None,
        description: "Undo the block",
    },
    Chain {
        source: "patch_preferences",
        status: "200",
        name: "Preferences",
        target: "get_preferences",
        parameters: &[("path.id", SAME_USER)],
        body: None,
        description: "The preferences as patched",
    },
    Chain {
        source: "erase_user",
        status: "200",
        name: "Export",
        target: "export_user",
        parameters: &[("path.id", SAME_USER)],
        body: None,
        description: "The user's data after the erasure: empty",
    },
];

/// Adds [`CHAINS`] to the operations' answers. A chain whose source,
/// answer or target is not in the document is a mistake in the table:
/// it panics, and `tests/openapi.rs` (which builds the document) fails.
pub(super) fn add(doc: &mut OpenApi) {
    for chain in CHAINS {
        assert!(
            operations_mut(doc).any(|op| op.operation_id.as_deref() == Some(chain.target)),
            "link {}: no operation {}",
            chain.name,
            chain.target
        );
        let mut link = LinkBuilder::new()
            .operation_id(chain.target)
            .description(chain.description)
            .request_body(chain.body.map(|body| body()));
        if chain.body.is_some() {
            // schemathesis's own extension: send the link's body whole,
            // not merged field by field into a generated one.
            link = link.extensions(Some(
                ExtensionsBuilder::new()
                    .add("x-schemathesis", json!({"merge_body": false}))
                    .build(),
            ));
        }
        for (name, expression) in chain.parameters {
            link = link.parameter(*name, *expression);
        }
        let response = operations_mut(doc)
            .find(|op| op.operation_id.as_deref() == Some(chain.source))
            .and_then(|op| op.responses.responses.get_mut(chain.status));
        let Some(RefOr::T(response)) = response else {
            panic!(
                "link {}: no answer {} of its own in {}",
                chain.name, chain.status, chain.source
            );
        };
        response
            .links
            .insert(chain.name.into(), RefOr::T(link.build()));
    }
}

/// utoipa 5.5 writes a `Link`'s fields in snake case (`operation_id`,
/// `request_body`), which no OpenAPI tool reads: the serialized document's
/// keys are put right here. No other object of the document has a field of
/// those names (`tests/openapi.rs` checks the links as a tool reads them).
pub(super) fn fix_keys(json: String) -> String {
    json.replace("\"operation_id\": ", "\"operationId\": ")
        .replace("\"request_body\": ", "\"requestBody\": ")
}
