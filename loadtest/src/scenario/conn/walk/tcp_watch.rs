//! Whether a step's connects still get anywhere: the TCP sockets in use on
//! this machine (`/proc/net/sockstat`), sampled every second. A walk once
//! ground on for many minutes at 262,144 connections — netfilter's
//! conntrack table full, every connect retried, the kernel's search for a
//! free port taking 77% of the CPU — with nothing saying so. Now a step
//! that sets no new high for `--stall-secs` is halted, and the report
//! says why, with what the machine looked like then.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// The highest count of TCP sockets in use since [`TcpWatch::restart`],
/// and when it was last raised.
pub struct TcpWatch {
    latest: AtomicU64,
    high: Mutex<(u64, Instant)>,
}

impl TcpWatch {
    /// Starts the sampling task; it ends at `until` (or when aborted).
    pub fn start(until: Instant) -> (Arc<Self>, tokio::task::JoinHandle<()>) {
        let now = tcp_in_use().unwrap_or(0);
        let watch = Arc::new(TcpWatch {
            latest: AtomicU64::new(now),
            high: Mutex::new((now, Instant::now())),
        });
        let w = watch.clone();
        let task = tokio::spawn(async move {
            while Instant::now() < until {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if let Some(n) = tcp_in_use() {
                    w.sample(n, Instant::now());
                }
            }
        });
        (watch, task)
    }

    fn sample(&self, in_use: u64, at: Instant) {
        self.latest.store(in_use, Ordering::Relaxed);
        let mut high = self.high.lock().expect("tcp watch lock");
        if in_use > high.0 {
            *high = (in_use, at);
        }
    }

    /// A new start, from the sockets in use now (at each step's connects:
    /// the settle and the broadcast before them add none).
    pub fn restart(&self) {
        *self.high.lock().expect("tcp watch lock") =
            (self.latest.load(Ordering::Relaxed), Instant::now());
    }

    /// Why the connects look stalled — no new high for `after` — or
    /// `None` while they get somewhere (or with `after` zero: never).
    pub fn stalled(&self, after: Duration) -> Option<String> {
        self.stalled_at(after, Instant::now())
    }

    fn stalled_at(&self, after: Duration, now: Instant) -> Option<String> {
        let (high, at) = *self.high.lock().expect("tcp watch lock");
        let quiet = now.saturating_duration_since(at);
        (!after.is_zero() && quiet >= after).then(|| {
            format!(
                "stalled: no more TCP sockets in use on this machine for {} s (highest {high}, now {}); load average {}; netfilter's conntrack table {} (a full table drops SYNs: `dmesg` says \"nf_conntrack: table full\")",
                quiet.as_secs(),
                self.latest.load(Ordering::Relaxed),
                read_trimmed("/proc/loadavg").unwrap_or_else(|| "?".into()),
                conntrack(),
            )
        })
    }
}

/// `TCP: inuse N` of `/proc/net/sockstat`.
fn tcp_in_use() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/sockstat").ok()?;
    parse_in_use(&text)
}

fn parse_in_use(sockstat: &str) -> Option<u64> {
    let line = sockstat.lines().find(|l| l.starts_with("TCP:"))?;
    let mut words = line.split_whitespace();
    words.find(|w| *w == "inuse")?;
    words.next()?.parse().ok()
}

/// `count / max` of the conntrack table, or that it is not loaded.
fn conntrack() -> String {
    let read = |f: &str| read_trimmed(&format!("/proc/sys/net/netfilter/{f}"));
    match (read("nf_conntrack_count"), read("nf_conntrack_max")) {
        (Some(count), Some(max)) => format!("{count} / {max}"),
        _ => "not loaded".into(),
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tcp_in_use() {
        let sockstat =
            "sockets: used 1234\nTCP: inuse 42 orphan 0 tw 7 alloc 50 mem 3\nUDP: inuse 2 mem 1\n";
        assert_eq!(parse_in_use(sockstat), Some(42));
        assert_eq!(parse_in_use("UDP: inuse 2\n"), None);
    }

    #[test]
    fn a_step_without_a_new_high_for_the_window_is_stalled() {
        let t0 = Instant::now();
        let at = |secs| t0 + Duration::from_secs(secs);
        let w = TcpWatch {
            latest: AtomicU64::new(100),
            high: Mutex::new((100, t0)),
        };
        let window = Duration::from_secs(60);
        w.sample(150, at(30));
        // Sockets closing and reopening (retries) set no new high.
        w.sample(120, at(60));
        w.sample(150, at(89));
        assert_eq!(w.stalled_at(window, at(89)), None);
        let why = w.stalled_at(window, at(90)).expect("stalled after 60 s");
        assert!(why.contains("for 60 s (highest 150, now 150)"), "{why}");
        assert_eq!(
            w.stalled_at(Duration::ZERO, at(90)),
            None,
            "0 turns the check off"
        );
        w.restart();
        assert_eq!(w.stalled(window), None, "a new step starts afresh");
    }
}
