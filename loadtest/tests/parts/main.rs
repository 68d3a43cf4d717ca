//! The library's parts through their public API, one file (or folder) per
//! part: what each must do, without a gateway. (The tests of a part's
//! private state stay beside it in `src/`.)

mod auth;
mod bounded;
mod cli;
mod cpu;
mod fanout;
mod lean;
mod loopback;
mod mark;
mod pacing;
mod pipes;
mod ports;
mod report;
mod rolling;
mod scaleout;
mod soak;
mod stamp;
mod storm;
mod storm_outcome;
mod unicast;
mod verdicts;
mod walk;
mod worker;

/// A message as a gateway sends it, with `body` and `data` (and a title
/// that needs escaping in JSON).
fn message(body: &str, data: serde_json::Value) -> herald_protocol::Message {
    herald_protocol::Message {
        seq: 7,
        stream: herald_protocol::Stream::All,
        id: uuid::Uuid::new_v4(),
        category: herald_protocol::Category::ANNOUNCEMENT,
        severity: Default::default(),
        tags: Vec::new(),
        from: None,
        title: Some("t \"quoted\" \\ {[".into()),
        body: body.into(),
        data,
        ts: time::OffsetDateTime::now_utc(),
        expires_at: None,
        group_key: None,
        collapsed: None,
        replaces: None,
        critical: false,
        silent: false,
        actions: Vec::new(),
        acted: None,
    }
}
