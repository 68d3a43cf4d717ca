//! Redis's load during a run: `INFO stats` polled every 50–100 ms for
//! `total_commands_processed` (and Redis's own `instantaneous_ops_per_sec`),
//! turned into ops/s over any window.
//!
//! Redis is the one shared part of a cluster, so a reconnect storm's cost
//! shows there first: every reconnect subscribes, registers presence and
//! reads cursors and counts. The sampler keeps one connection (through
//! herald-testing's RESP client) and opens a new one after an error, so a
//! Redis restarted mid-run is sampled again once it is back.

use std::time::Duration;

use herald_testing::RespConn;
use serde::Serialize;

use crate::clock::unix_micros;
use crate::sampler::Sampler;

/// One reading: when, and Redis's command counters by then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sample {
    pub at_us: u64,
    pub commands: u64,
    /// Redis's own estimate of ops/s (`instantaneous_ops_per_sec`).
    pub ops_per_sec: u64,
}

/// A running `INFO stats` sampler.
pub struct RedisSampler(Sampler<Sample>);

impl RedisSampler {
    /// Polls `addr` (`host:port`) every `every` for at most `limit`.
    pub fn start(addr: String, every: Duration, limit: Duration) -> RedisSampler {
        let rounds = (limit.as_micros() / every.as_micros().max(1)).max(1) as usize;
        let mut conn: Option<RespConn> = None;
        let mut failed = false;
        RedisSampler(Sampler::start(every, rounds, move || {
            let sample = read(&addr, &mut conn);
            if let (Err(e), false) = (&sample, failed) {
                tracing::warn!("redis INFO sampling at {addr}: {e}; retrying");
            }
            failed = sample.is_err();
            sample.ok()
        }))
    }

    /// Samples so far (a copy; the sampler keeps going).
    pub fn snapshot(&self) -> Vec<Sample> {
        self.0.snapshot().into_iter().map(|s| s.1).collect()
    }

    pub fn finish(self) -> Vec<Sample> {
        self.0.finish().into_iter().map(|s| s.1).collect()
    }
}

/// One `INFO stats` on `conn` (connecting first if it is not open; it is
/// dropped after an error).
fn read(addr: &str, conn: &mut Option<RespConn>) -> std::io::Result<Sample> {
    let open = match conn {
        Some(c) => c,
        None => conn.insert(RespConn::connect(addr)?),
    };
    let info = open.info("stats").inspect_err(|_| *conn = None)?;
    let missing = |name| std::io::Error::other(format!("no {name} in INFO stats"));
    Ok(Sample {
        at_us: unix_micros(),
        commands: field(&info, "total_commands_processed")
            .ok_or_else(|| missing("total_commands_processed"))?,
        ops_per_sec: field(&info, "instantaneous_ops_per_sec").unwrap_or(0),
    })
}

/// A numeric `name:value` line of an INFO text.
pub fn field(info: &str, name: &str) -> Option<u64> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
}

/// Commands per second between samples `a` and `b`.
fn rate(a: &Sample, b: &Sample) -> f64 {
    let dt = b.at_us.saturating_sub(a.at_us).max(1) as f64 / 1e6;
    b.commands.saturating_sub(a.commands) as f64 / dt
}

/// The samples taken in `[from_us, to_us]`.
fn within(samples: &[Sample], from_us: u64, to_us: u64) -> impl Iterator<Item = &Sample> {
    samples
        .iter()
        .filter(move |x| (from_us..=to_us).contains(&x.at_us))
}

/// The highest rate over any window of at least `window` between samples
/// taken in `[from_us, to_us]`: each sample paired with the first one at
/// least `window` later.
pub fn peak(samples: &[Sample], from_us: u64, to_us: u64, window: Duration) -> Option<f64> {
    let s: Vec<&Sample> = within(samples, from_us, to_us).collect();
    let w = window.as_micros() as u64;
    let mut best: Option<f64> = None;
    let mut j = 0;
    for i in 0..s.len() {
        j = j.max(i + 1);
        while j < s.len() && s[j].at_us - s[i].at_us < w {
            j += 1;
        }
        if j < s.len() {
            let r = rate(s[i], s[j]);
            best = Some(best.map_or(r, |b: f64| b.max(r)));
        }
    }
    best
}

/// The highest `instantaneous_ops_per_sec` Redis reported in `[from_us, to_us]`.
pub fn peak_reported(samples: &[Sample], from_us: u64, to_us: u64) -> Option<u64> {
    within(samples, from_us, to_us).map(|s| s.ops_per_sec).max()
}

/// The mean rate from the first sample at or after `from_us` to the last
/// at or before `to_us`.
pub fn mean(samples: &[Sample], from_us: u64, to_us: u64) -> Option<f64> {
    let first = samples.iter().find(|x| x.at_us >= from_us)?;
    let last = samples.iter().rev().find(|x| x.at_us <= to_us)?;
    (last.at_us > first.at_us).then(|| rate(first, last))
}

/// Commands processed between `from_us` and `to_us` (nearest samples).
pub fn commands_between(samples: &[Sample], from_us: u64, to_us: u64) -> Option<u64> {
    let first = samples.iter().find(|x| x.at_us >= from_us)?;
    let last = samples.iter().rev().find(|x| x.at_us <= to_us)?;
    Some(last.commands.saturating_sub(first.commands))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(at_ms: u64, commands: u64) -> Sample {
        Sample {
            at_us: at_ms * 1000,
            commands,
            ops_per_sec: commands / 10,
        }
    }

    #[test]
    fn reads_numeric_fields() {
        let info = "# Stats\r\ntotal_connections_received:7\r\ntotal_commands_processed:12345\r\n";
        assert_eq!(field(info, "total_commands_processed"), Some(12345));
        assert_eq!(field(info, "total_connections_received"), Some(7));
        assert_eq!(field(info, "missing"), None);
    }

    #[test]
    fn peak_is_the_busiest_window() {
        // 1,000/s, then 10,000/s for 200 ms, then 1,000/s.
        let samples = [
            s(0, 0),
            s(100, 100),
            s(200, 200),
            s(300, 1_200),
            s(400, 2_200),
            s(500, 2_300),
            s(600, 2_400),
        ];
        let p100 = peak(&samples, 0, u64::MAX, Duration::from_millis(100)).unwrap();
        assert!((p100 - 10_000.0).abs() < 1.0, "{p100}");
        let p200 = peak(&samples, 0, u64::MAX, Duration::from_millis(200)).unwrap();
        assert!((p200 - 10_000.0).abs() < 1.0, "{p200}");
        let p500 = peak(&samples, 0, u64::MAX, Duration::from_millis(500)).unwrap();
        assert!((p500 - 4_600.0).abs() < 1.0, "{p500}");
        assert_eq!(peak(&samples, 0, u64::MAX, Duration::from_secs(5)), None);
        let m = mean(&samples, 0, 200_000).unwrap();
        assert!((m - 1_000.0).abs() < 1.0, "{m}");
        assert_eq!(commands_between(&samples, 100_000, 400_000), Some(2_100));
        assert_eq!(peak_reported(&samples, 0, 300_000), Some(120));
    }

    #[test]
    fn a_sampler_without_redis_ends_empty() {
        let sampler = RedisSampler::start(
            "127.0.0.1:1".into(),
            Duration::from_millis(10),
            Duration::from_secs(1),
        );
        std::thread::sleep(Duration::from_millis(50));
        assert!(sampler.finish().is_empty());
    }

    #[test]
    fn samples_a_real_redis() {
        let redis = herald_testing::RedisServer::start();
        let sampler = RedisSampler::start(
            format!("127.0.0.1:{}", redis.port()),
            Duration::from_millis(10),
            Duration::from_secs(5),
        );
        while sampler.snapshot().len() < 3 {
            std::thread::sleep(Duration::from_millis(10));
        }
        let samples = sampler.finish();
        assert!(samples.windows(2).all(|w| w[0].commands < w[1].commands));
    }
}
