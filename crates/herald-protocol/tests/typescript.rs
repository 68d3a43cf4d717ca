//! The browser SDK's protocol types (`clients/js/src/generated/`) are what
//! this crate's ts-rs derives generate: the committed files are compared
//! with a fresh export into a temporary folder, file by file, so a wire type
//! changed here without regenerating them fails CI instead of leaving the
//! SDK's types behind. `HERALD_WRITE_TS=1` rewrites them (`make ts-types`).
#![cfg(feature = "ts")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use herald_protocol::typescript::{self, GENERATED_DIR};
use herald_protocol::{
    Action, Category, Changed, ChangedState, ChannelsPatch, Counts, HistoryEntry, Message,
    MessageState, Preferences, PreferencesPatch, QuietHours, Reply, Severity, Stream,
};
use serde::Serialize;
use ts_rs::TS;
use uuid::Uuid;

const REGENERATE: &str =
    "HERALD_WRITE_TS=1 cargo test -p herald-protocol --features ts --test typescript (or make ts-types)";

fn committed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(GENERATED_DIR)
}

/// A folder of its own under the system's temporary one, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!("herald-ts-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every `.ts` file of `dir` by name, with its text (none if `dir` is
/// missing).
fn ts_files(dir: &Path) -> BTreeMap<String, String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "ts"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

#[test]
fn committed_typescript_is_what_the_types_generate() {
    let fresh = TempDir::new();
    typescript::export(&fresh.0).expect("ts-rs export");
    let generated = ts_files(&fresh.0);
    assert!(
        generated.contains_key("ServerFrame.ts") && generated.contains_key("Message.ts"),
        "the export wrote {:?}",
        generated.keys()
    );
    let committed_dir = committed_dir();

    if std::env::var_os("HERALD_WRITE_TS").is_some_and(|v| v == "1") {
        // A type that left the protocol must leave the folder too.
        for name in ts_files(&committed_dir).keys() {
            if !generated.contains_key(name) {
                std::fs::remove_file(committed_dir.join(name)).unwrap();
            }
        }
        std::fs::create_dir_all(&committed_dir).unwrap();
        for (name, text) in &generated {
            std::fs::write(committed_dir.join(name), text).unwrap();
        }
        eprintln!(
            "wrote {} files into {}",
            generated.len(),
            committed_dir.display()
        );
        return;
    }

    let committed = ts_files(&committed_dir);
    let mut wrong = Vec::new();
    for (name, text) in &generated {
        match committed.get(name) {
            None => wrong.push(format!("{name}: missing from {GENERATED_DIR}")),
            Some(c) if c != text => {
                let (n, (was, is)) = c
                    .lines()
                    .chain(std::iter::repeat(""))
                    .zip(text.lines().chain(std::iter::repeat("")))
                    .enumerate()
                    .find(|(_, (a, b))| a != b)
                    .expect("texts that differ differ on some line");
                wrong.push(format!(
                    "{name}: differs from line {}\n  committed: {was}\n  generated: {is}",
                    n + 1
                ));
            }
            Some(_) => {}
        }
    }
    for name in committed.keys().filter(|n| !generated.contains_key(*n)) {
        wrong.push(format!(
            "{name}: in {GENERATED_DIR} but no wire type generates it"
        ));
    }
    assert!(
        wrong.is_empty(),
        "{GENERATED_DIR} is not what the protocol types generate; run\n  {REGENERATE}\n\n{}",
        wrong.join("\n")
    );
}

/// `Category`'s TypeScript type is written by hand in its `ts(type)`
/// attribute (a newtype over a string has no variants to list): it must
/// name exactly the built-in categories.
#[test]
fn category_typescript_lists_the_builtin_categories() {
    let cfg = typescript::config(Path::new("."));
    let mut expected: Vec<String> = Category::BUILTIN
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect();
    expected.push("(string & {})".to_owned());
    assert_eq!(Category::inline(&cfg), expected.join(" | "));
}

/// The fields of a TypeScript object type as ts-rs writes it inline
/// (`{ a: T, b?: U, }`, doc comments between them), each with whether it
/// is optional (`?`).
fn ts_fields(inline: &str) -> BTreeMap<String, bool> {
    let mut text = String::new();
    let mut rest = inline;
    while let Some(start) = rest.find("/**") {
        text.push_str(&rest[..start]);
        let end = rest[start..]
            .find("*/")
            .expect("an unterminated doc comment")
            + start
            + 2;
        rest = &rest[end..];
    }
    text.push_str(rest);
    let body = text.trim();
    let body = body
        .strip_prefix('{')
        .and_then(|b| b.strip_suffix('}'))
        .unwrap_or_else(|| panic!("not one object type: {inline}"));
    let (mut fields, mut depth, mut field) = (BTreeMap::new(), 0i32, String::new());
    for c in body.chars().chain([',']) {
        match c {
            '{' | '[' | '<' | '(' => depth += 1,
            '}' | ']' | '>' | ')' => depth -= 1,
            ',' if depth == 0 => {
                let f = std::mem::take(&mut field);
                if let Some((name, _)) = f.split_once(':') {
                    let name = name.trim();
                    let optional = name.ends_with('?');
                    let name = name.trim_end_matches('?').trim_matches('"');
                    fields.insert(name.to_owned(), optional);
                }
                continue;
            }
            _ => {}
        }
        field.push(c);
    }
    fields
}

/// Checks `T`'s declaration against what serde writes: a field present
/// in the JSON of `fewest` (every field that may be left out, left out) is
/// required, one absent is optional; `most` (every field set) has every
/// field of the declaration and no other.
fn same_fields_as_serde<T: TS + Serialize>(fewest: &T, most: &T) {
    let cfg = typescript::config(Path::new("."));
    let declared = ts_fields(&T::inline(&cfg));
    let keys = |v: &T| -> Vec<String> {
        match serde_json::to_value(v).unwrap() {
            serde_json::Value::Object(m) => m.keys().cloned().collect(),
            other => panic!("{} is not an object: {other}", T::ident(&cfg)),
        }
    };
    let few = keys(fewest);
    for (name, optional) in &declared {
        assert_eq!(
            *optional,
            !few.contains(name),
            "{}.{name}: {} in TypeScript, but serde {}",
            T::ident(&cfg),
            if *optional { "optional" } else { "required" },
            if few.contains(name) {
                "writes it even when empty"
            } else {
                "leaves it out when empty"
            }
        );
    }
    let mut all = keys(most);
    all.sort();
    assert_eq!(
        all,
        declared.keys().cloned().collect::<Vec<_>>(),
        "{}: the fields serde writes and the TypeScript declaration's",
        T::ident(&cfg)
    );
}

fn message(full: bool) -> Message {
    let some = |s: &str| full.then(|| s.to_owned());
    Message {
        seq: 1,
        stream: Stream::Inbox,
        id: Uuid::nil(),
        category: Category::SYSTEM,
        severity: if full {
            Severity::High
        } else {
            Severity::Normal
        },
        tags: if full { vec!["a".into()] } else { vec![] },
        from: some("alice"),
        title: some("t"),
        body: "b".into(),
        data: serde_json::json!({}),
        ts: time::OffsetDateTime::UNIX_EPOCH,
        expires_at: full.then_some(time::OffsetDateTime::UNIX_EPOCH),
        group_key: some("g"),
        collapsed: full.then_some(2),
        replaces: full.then(Uuid::nil),
        critical: full,
        silent: full,
        actions: if full {
            vec![Action {
                id: "ok".into(),
                label: "OK".into(),
                url: None,
            }]
        } else {
            vec![]
        },
        acted: some("ok"),
    }
}

/// ts-rs reads `skip_serializing_if` only with `default`, and forgets it
/// under `ts(optional_fields)` for a field that is not an `Option`: this
/// is what notices a field whose declaration says required while the
/// server leaves it out (or the reverse).
#[test]
fn optional_fields_are_the_ones_serde_leaves_out() {
    same_fields_as_serde(&message(false), &message(true));
    let entry = |full: bool| HistoryEntry {
        message: message(full),
        state: MessageState::Snoozed,
        receipt: full.then_some(herald_protocol::ReceiptState::Read),
        until: full.then_some(1),
    };
    same_fields_as_serde(&entry(false), &entry(true));
    let action = |full: bool| Action {
        id: "ok".into(),
        label: "OK".into(),
        url: full.then(|| "https://example.com".into()),
    };
    same_fields_as_serde(&action(false), &action(true));
    let changed = |full: bool| Changed {
        ids: vec![Uuid::nil()],
        state: ChangedState::Acted,
        by: full.then(Uuid::nil),
        action: full.then(|| "ok".into()),
    };
    same_fields_as_serde(&changed(false), &changed(true));
    let full_reply = Reply {
        rid: Some(1.into()),
        ok: true,
        error: Some(herald_protocol::ErrorBody {
            code: herald_protocol::ErrorCode::Internal,
            message: "m".into(),
        }),
        id: Some(Uuid::nil()),
        seq: Some(1),
        skipped: Some(true),
        last_seq: Some(1),
        last_all_seq: Some(1),
        changed: Some(1),
        unread: Some(1),
        messages: Some(vec![]),
        conversations: Some(vec![]),
        preferences: Some(Preferences::default()),
        topics: Some(vec![]),
        next: Some(None),
    };
    same_fields_as_serde(&Reply::default(), &full_reply);
    same_fields_as_serde(&Counts::default(), &Counts::default());
    same_fields_as_serde(&Preferences::default(), &Preferences::default());
    same_fields_as_serde(
        &ChannelsPatch::default(),
        &ChannelsPatch {
            in_app: Some(true),
            fallback: Some(false),
        },
    );
    let patch = PreferencesPatch {
        categories: [("system".to_owned(), ChannelsPatch::default())].into(),
        topics: [("t".to_owned(), None)].into(),
        quiet_hours: Some(Some(QuietHours {
            tz: "UTC".into(),
            start: "22:00".into(),
            end: "07:00".into(),
        })),
    };
    same_fields_as_serde(&PreferencesPatch::default(), &patch);
}
