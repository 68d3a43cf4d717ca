//! How a user's read state and kept counts lie in Redis hashes, and the
//! commit script's ops that change them (`scripts.rs` has the scripts).

use std::collections::HashMap;

use fred::prelude::Value;
use herald_core::{Flags, KeptCounts, MarksUpdate, ReadChange, ReadState, Result};
use herald_protocol::{Severity, Stream};

use super::corrupt::corrupt;

/// A stream's tag in the marks hash's fields (`i.r`, `a.<seq>`, …).
pub(super) fn stream_tag(stream: Stream) -> &'static str {
    match stream {
        Stream::Inbox => "i",
        Stream::All => "a",
    }
}

/// The marks hash's fields of snoozes' wake-ups: `z.<stream tag>.<seq>` =
/// unix ms. Kept apart from the exception (`i.<seq>`, a flags code the
/// append's and expiry's scripts read as a number).
const UNTIL_TAG: &str = "z";

/// The marks hash's fields of the actions taken: `x.<stream tag>.<seq>` =
/// the action's id (`Inbox::act`). Apart from the exception for the same
/// reason as [`UNTIL_TAG`].
const ACTED_TAG: &str = "x";

/// The marks hash (see [`crate::keys::Keys::marks`]) as a [`ReadState`];
/// fields it does not know are ignored.
pub(super) fn parse_read_state(fields: HashMap<String, String>) -> Result<ReadState> {
    let mut state = ReadState::default();
    let number = |v: &str| v.parse::<u64>().map_err(|_| corrupt("read state"));
    for (field, value) in fields {
        if field == "v" {
            state.version = number(&value)?;
            continue;
        }
        let Some((tag, rest)) = field.split_once('.') else {
            continue;
        };
        if tag == ACTED_TAG {
            // `x.<stream>.<seq>`: the action taken on a message.
            let Some((tag, seq)) = rest.split_once('.') else {
                continue;
            };
            let (Some(stream), Ok(seq)) = (
                Stream::ALL.into_iter().find(|s| stream_tag(*s) == tag),
                seq.parse::<u64>(),
            ) else {
                continue;
            };
            state.marks_mut(stream).acted.insert(seq, value);
            continue;
        }
        if tag == UNTIL_TAG {
            // `z.<stream>.<seq>`: a snoozed message's wake-up.
            let Some((tag, seq)) = rest.split_once('.') else {
                continue;
            };
            let (Some(stream), Ok(seq)) = (
                Stream::ALL.into_iter().find(|s| stream_tag(*s) == tag),
                seq.parse::<u64>(),
            ) else {
                continue;
            };
            let until = value.parse::<i64>().map_err(|_| corrupt("read state"))?;
            state.marks_mut(stream).snoozed.insert(seq, until);
            continue;
        }
        let Some(stream) = Stream::ALL.into_iter().find(|s| stream_tag(*s) == tag) else {
            continue;
        };
        let marks = state.marks_mut(stream);
        match rest {
            "s" => marks.seen_upto = number(&value)?,
            "r" => marks.read_upto = number(&value)?,
            seq => {
                let Ok(seq) = seq.parse::<u64>() else {
                    continue;
                };
                let code = value.parse::<u8>().map_err(|_| corrupt("read state"))?;
                marks.exceptions.insert(seq, Flags::from_code(code));
            }
        }
    }
    Ok(state)
}

/// The commit script's (op, field, value) triples for `change`.
pub(super) fn commit_ops(change: &ReadChange) -> Vec<Value> {
    let mut args: Vec<Value> = Vec::new();
    // `seq`: the inbox message the op belongs to (0: none), skipped by the
    // script when retention dropped it meanwhile.
    let mut op = |op: &'static str, field: String, value: String, seq: u64| {
        args.push(op.into());
        args.push(field.into());
        args.push(value.into());
        args.push(seq.to_string().into());
    };
    let inbox_seq = |stream: Stream, seq: u64| if stream == Stream::Inbox { seq } else { 0 };
    for update in &change.updates {
        match *update {
            MarksUpdate::Acted(stream, seq, Some(ref action)) => op(
                "s",
                format!("{ACTED_TAG}.{}.{seq}", stream_tag(stream)),
                action.clone(),
                inbox_seq(stream, seq),
            ),
            // Always removed, as a wake-up is.
            MarksUpdate::Acted(stream, seq, None) => op(
                "d",
                format!("{ACTED_TAG}.{}.{seq}", stream_tag(stream)),
                String::new(),
                0,
            ),
            MarksUpdate::SeenUpto(stream, seq) => {
                op("s", format!("{}.s", stream_tag(stream)), seq.to_string(), 0)
            }
            MarksUpdate::ReadUpto(stream, seq) => {
                op("s", format!("{}.r", stream_tag(stream)), seq.to_string(), 0)
            }
            MarksUpdate::Set(stream, seq, flags) => op(
                "s",
                format!("{}.{seq}", stream_tag(stream)),
                flags.code().to_string(),
                inbox_seq(stream, seq),
            ),
            MarksUpdate::Unset(stream, seq) => op(
                "d",
                format!("{}.{seq}", stream_tag(stream)),
                String::new(),
                inbox_seq(stream, seq),
            ),
            MarksUpdate::Until(stream, seq, Some(until)) => op(
                "s",
                format!("{UNTIL_TAG}.{}.{seq}", stream_tag(stream)),
                until.to_string(),
                inbox_seq(stream, seq),
            ),
            // Always removed, dropped message or not: nothing else would.
            MarksUpdate::Until(stream, seq, None) => op(
                "d",
                format!("{UNTIL_TAG}.{}.{seq}", stream_tag(stream)),
                String::new(),
                0,
            ),
        }
    }
    for delta in &change.deltas {
        if delta.unread != 0 || delta.unseen != 0 {
            op(
                "c",
                format!("{PACKED_PREFIX}{}", delta.category),
                packed(delta.unread, delta.unseen).to_string(),
                delta.seq,
            );
        }
        if delta.unread != 0 && !delta.severity.is_normal() {
            op(
                "c",
                format!("{SEVERE_PREFIX}{}:{}", delta.category, delta.severity),
                delta.unread.to_string(),
                delta.seq,
            );
        }
    }
    args
}

/// The counts hash holds one field per category, `c:<category>` ->
/// unread × 2^32 + unseen, so that an append or an un-count moves both
/// with one HINCRBY (each is a Redis command inside the append script, and
/// those are what an append costs). Category names are `[a-z0-9_]`, so no
/// category is named like a field.
///
/// Versions before it kept `<category>` -> unread and `unseen:<category>`
/// -> unseen. Nothing writes those any more, and every change goes to the
/// packed field as a delta, so a hash holding both still sums to the right
/// counts: they are read and added in, and no migration is needed.
const PACKED_PREFIX: &str = "c:";
/// `s:<category>:<severity>` -> the unread messages of that category and
/// severity, for the severities other than normal (normal is the rest:
/// [`KeptCounts::severe`]).
const SEVERE_PREFIX: &str = "s:";
const LEGACY_UNSEEN_PREFIX: &str = "unseen:";

/// The packed counts field's delta for these unread and unseen deltas.
fn packed(unread: i64, unseen: i64) -> i64 {
    (unread << 32) + unseen
}

/// A packed counts field's (unread, unseen). Unseen is taken as the part in
/// [-2^31, 2^31), so a transiently negative unseen does not borrow from
/// unread.
fn unpack(value: i64) -> (i64, i64) {
    let unread = (value + (1 << 31)) >> 32;
    (unread, value - (unread << 32))
}

/// The marker the append script (`muted`) and the preferences script keep
/// in a packed field while the user keeps that category out: 2^62, far
/// above any count.
pub(crate) const MUTED_MARKER: i64 = 1 << 62;

/// A packed field's value without its muted marker.
fn unmarked(value: i64) -> i64 {
    if value >= MUTED_MARKER / 2 {
        value - MUTED_MARKER
    } else {
        value
    }
}

/// The counts hash (see [`PACKED_PREFIX`]) as [`KeptCounts`] as of
/// `last_seq`.
pub(super) fn parse_kept_counts(
    fields: HashMap<String, String>,
    last_seq: u64,
) -> Result<KeptCounts> {
    let mut counts = KeptCounts {
        last_seq,
        ..KeptCounts::default()
    };
    for (field, value) in fields {
        let value: i64 = value.parse().map_err(|_| corrupt("kept counts"))?;
        if let Some(rest) = field.strip_prefix(SEVERE_PREFIX) {
            let severity = rest.rsplit_once(':').and_then(|(category, severity)| {
                Some((category, severity.parse::<Severity>().ok()?))
            });
            let (category, severity) = severity.ok_or_else(|| corrupt("kept counts"))?;
            counts.severe.entry(category.to_owned()).or_default()[severity.index()] += value;
            continue;
        }
        let (category, unread, unseen) = if let Some(category) = field.strip_prefix(PACKED_PREFIX) {
            let (unread, unseen) = unpack(unmarked(value));
            (category, Some(unread), Some(unseen))
        } else if let Some(category) = field.strip_prefix(LEGACY_UNSEEN_PREFIX) {
            (category, None, Some(value))
        } else {
            (field.as_str(), Some(value), None)
        };
        if let Some(n) = unread {
            *counts.unread.entry(category.to_owned()).or_default() += n;
        }
        if let Some(n) = unseen {
            *counts.unseen.entry(category.to_owned()).or_default() += n;
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_counts_fields_per_category() {
        let fields = [
            ("c:remind", packed(2, 1).to_string()),
            ("c:_unseen", packed(7, 0).to_string()),
            // A commit that lowered unseen below what it holds (transient).
            ("c:promo", packed(1, -1).to_string()),
            // Written before the packed field: added in.
            ("system", "3".into()),
            ("unseen:system", "2".into()),
            ("c:system", packed(-1, -1).to_string()),
            ("unseen:promo", "1".into()),
            ("s:remind:high", "1".into()),
            ("s:remind:low", "1".into()),
        ]
        .into_iter()
        .map(|(f, v)| (f.to_owned(), v))
        .collect();
        let counts = parse_kept_counts(fields, 9).unwrap();
        assert_eq!(counts.last_seq, 9);
        let pairs = |m: &std::collections::BTreeMap<String, i64>| {
            m.iter().map(|(k, v)| (k.clone(), *v)).collect::<Vec<_>>()
        };
        assert_eq!(
            pairs(&counts.unread),
            [
                ("_unseen".to_owned(), 7),
                ("promo".to_owned(), 1),
                ("remind".to_owned(), 2),
                ("system".to_owned(), 2)
            ],
        );
        assert_eq!(
            pairs(&counts.unseen),
            [
                ("_unseen".to_owned(), 0),
                ("promo".to_owned(), 0),
                ("remind".to_owned(), 1),
                ("system".to_owned(), 1)
            ]
        );
        assert_eq!(counts.severe["remind"], [1, 0, 1, 0]);
        assert_eq!(counts.severe.len(), 1);
        let bad = [("c:remind".to_owned(), "x".to_owned())]
            .into_iter()
            .collect();
        assert!(parse_kept_counts(bad, 0).is_err());
    }

    #[test]
    fn packed_counts_round_trip() {
        for (unread, unseen) in [
            (0, 0),
            (1, 1),
            (5, 0),
            (0, -1),
            (-1, -1),
            (1 << 20, 3),
            (-3, 7),
        ] {
            assert_eq!(unpack(packed(unread, unseen)), (unread, unseen));
        }
        // What the append script adds: one unread, one unseen.
        assert_eq!(packed(1, 1), 4_294_967_297);
        assert_eq!(packed(-1, -1), -4_294_967_297);
        assert_eq!(packed(-1, 0), -4_294_967_296);
    }

    #[test]
    fn commits_move_both_counts_per_category() {
        let delta = |seq: u64, category: &str, unread: i64, unseen: i64| herald_core::CountDelta {
            seq,
            category: category.to_owned(),
            unread,
            unseen,
            severity: Severity::Normal,
        };
        let high = herald_core::CountDelta {
            severity: Severity::High,
            ..delta(5, "remind", 1, 0)
        };
        let change = ReadChange {
            deltas: vec![delta(3, "remind", -1, -1), delta(4, "system", 0, 1), high],
            ..ReadChange::default()
        };
        let ops: Vec<String> = commit_ops(&change)
            .into_iter()
            .map(|v| v.as_string().unwrap())
            .collect();
        assert_eq!(
            ops,
            [
                "c",
                "c:remind",
                "-4294967297",
                "3",
                "c",
                "c:system",
                "1",
                "4",
                "c",
                "c:remind",
                "4294967296",
                "5",
                "c",
                "s:remind:high",
                "1",
                "5"
            ]
        );
    }
}
