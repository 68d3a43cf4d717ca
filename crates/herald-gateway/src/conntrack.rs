//! Netfilter's connection-tracking table, as this node's network namespace
//! sees it: where conntrack is loaded, every TCP connection holds an entry
//! and a full table drops new connections' SYNs ("nf_conntrack: table
//! full, dropping packet" in the kernel log) — clients fail to connect and
//! the node itself sees nothing. The housekeeping tick reads the table's
//! fill into `herald_conntrack_entries` / `herald_conntrack_limit` and warns
//! past [`WARN_FRACTION`] (see docs/operations.md, "Connection tracking").

use std::path::Path;
use std::time::{Duration, Instant};

/// The share of the table past which the node warns.
pub const WARN_FRACTION: f64 = 0.9;
/// At most one warning per this long while the table stays that full.
pub const WARN_EVERY: Duration = Duration::from_secs(300);

const DIR: &str = "/proc/sys/net/netfilter";

/// Entries in use and the table's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fill {
    pub entries: u64,
    pub limit: u64,
}

impl Fill {
    /// `nf_conntrack_count` and `nf_conntrack_max` in `dir`; `None` where
    /// conntrack is not loaded (the files are absent) or unreadable.
    pub fn read_from(dir: &Path) -> Option<Fill> {
        let number = |name: &str| -> Option<u64> {
            std::fs::read_to_string(dir.join(name))
                .ok()?
                .trim()
                .parse()
                .ok()
        };
        Some(Fill {
            entries: number("nf_conntrack_count")?,
            limit: number("nf_conntrack_max")?,
        })
    }

    /// This host's (this network namespace's) table.
    pub fn read() -> Option<Fill> {
        Fill::read_from(Path::new(DIR))
    }

    pub fn nearly_full(&self) -> bool {
        self.limit > 0 && self.entries as f64 >= self.limit as f64 * WARN_FRACTION
    }
}

/// Rate-limits the warning of a nearly full table.
#[derive(Debug, Default)]
pub struct Warner {
    last: Option<Instant>,
}

impl Warner {
    /// Whether to warn about `fill` now: nearly full, and no warning in
    /// the last [`WARN_EVERY`].
    pub fn should_warn(&mut self, fill: &Fill, now: Instant) -> bool {
        if !fill.nearly_full() {
            return false;
        }
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < WARN_EVERY)
        {
            return false;
        }
        self.last = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_files_and_is_absent_without_them() {
        let dir = std::env::temp_dir().join(format!("herald-conntrack-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(Fill::read_from(&dir), None);
        std::fs::write(dir.join("nf_conntrack_count"), "235930\n").unwrap();
        assert_eq!(Fill::read_from(&dir), None, "max absent");
        std::fs::write(dir.join("nf_conntrack_max"), "262144\n").unwrap();
        assert_eq!(
            Fill::read_from(&dir),
            Some(Fill {
                entries: 235930,
                limit: 262144
            })
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn warns_past_ninety_percent_at_most_every_five_minutes() {
        let mut w = Warner::default();
        let t = Instant::now();
        let low = Fill {
            entries: 235_929,
            limit: 262_144,
        };
        let high = Fill {
            entries: 235_930,
            limit: 262_144,
        };
        assert!(!w.should_warn(&low, t));
        assert!(w.should_warn(&high, t));
        assert!(!w.should_warn(&high, t + Duration::from_secs(299)));
        assert!(w.should_warn(&high, t + Duration::from_secs(300)));
        assert!(!w.should_warn(
            &Fill {
                entries: 0,
                limit: 0
            },
            t
        ));
    }
}
