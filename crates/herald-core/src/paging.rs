//! Pages of messages, newest first, for history and conversations alike:
//! reading a stream page by page for the entries a filter keeps, merging
//! two such lists, and the cursor that holds a position in each.

use herald_protocol::{HistoryEntry, Message, Stream};

use crate::error::{CoreError, Result};

/// Most messages one history or conversation page holds.
pub const MAX_HISTORY_PAGE: usize = 200;

/// One page of history, newest first, and the cursor of the next page.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPage {
    pub messages: Vec<HistoryEntry>,
    pub next: Option<String>,
}

/// Up to `limit` messages below `before` that `keep` keeps, newest first,
/// read page by page with `read(before)` (pages of `page` messages, newest
/// first), and whether nothing older is left.
pub(crate) async fn newest_kept<F, Fut>(
    read: F,
    page: usize,
    before: Option<u64>,
    limit: usize,
    keep: &impl Fn(&Message) -> Option<HistoryEntry>,
) -> Result<(Vec<HistoryEntry>, bool)>
where
    F: Fn(Option<u64>) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Message>>>,
{
    let mut found = Vec::new();
    let mut before = before;
    loop {
        let messages = read(before).await?;
        let exhausted = messages.len() < page;
        for message in &messages {
            before = Some(message.seq);
            if let Some(entry) = keep(message) {
                found.push(entry);
                if found.len() == limit {
                    // Older matches may follow; the next page will tell.
                    return Ok((found, false));
                }
            }
        }
        if exhausted {
            return Ok((found, true));
        }
    }
}

/// Merges two lists, each newest first with a flag "nothing older", into
/// at most `limit` entries, newest first (on equal times the first list's
/// entry comes first). Each list gives a prefix of itself, so the next
/// page's cursor is simply each list's lowest seq taken (`before` where it
/// gave none); `None` when both lists are used up.
pub(crate) fn merge_newest(
    lists: [(Vec<HistoryEntry>, bool); 2],
    before: [Option<u64>; 2],
    limit: usize,
) -> (Vec<HistoryEntry>, Option<[Option<u64>; 2]>) {
    let mut heads = [0usize; 2];
    let mut merged = Vec::with_capacity(limit);
    while merged.len() < limit {
        let newer = (0..2)
            .filter_map(|i| lists[i].0.get(heads[i]).map(|e| (i, e)))
            .max_by_key(|(i, e)| (e.message.ts, *i == 0));
        let Some((i, entry)) = newer else { break };
        merged.push(entry.clone());
        heads[i] += 1;
    }
    let mut next = before;
    let mut more = false;
    for i in 0..2 {
        let (entries, exhausted) = &lists[i];
        if heads[i] > 0 {
            next[i] = Some(entries[heads[i] - 1].message.seq);
        }
        more |= heads[i] < entries.len() || !exhausted;
    }
    (merged, more.then_some(next))
}

/// The page size asked for, `default` when none was; 1 to `max`.
pub(crate) fn check_limit(limit: Option<usize>, default: usize, max: usize) -> Result<usize> {
    let limit = limit.unwrap_or(default);
    if limit == 0 || limit > max {
        return Err(CoreError::Invalid(format!("limit: must be 1 to {max}")));
    }
    Ok(limit)
}

/// `<inbox bound>.<all bound>`: each the seq below which that stream's next
/// page starts (`-` for "from the newest").
pub(crate) fn encode_cursor(bounds: [Option<u64>; Stream::ALL.len()]) -> String {
    bounds
        .iter()
        .map(|b| b.map_or("-".to_owned(), |s| s.to_string()))
        .collect::<Vec<_>>()
        .join(".")
}

pub(crate) fn decode_cursor(cursor: &str) -> Result<[Option<u64>; Stream::ALL.len()]> {
    let bad = || CoreError::Invalid("before: not a cursor this server gave".into());
    let parts: Vec<&str> = cursor.split('.').collect();
    if parts.len() != Stream::ALL.len() {
        return Err(bad());
    }
    let mut bounds = [None; Stream::ALL.len()];
    for (bound, part) in bounds.iter_mut().zip(parts) {
        *bound = match part {
            "-" => None,
            n => Some(n.parse().map_err(|_| bad())?),
        };
    }
    Ok(bounds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        for bounds in [[None, None], [Some(5), None], [Some(1), Some(9)]] {
            assert_eq!(decode_cursor(&encode_cursor(bounds)).unwrap(), bounds);
        }
        for bad in ["", "1", "1.2.3", "x.1", "-1.2"] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }
}
