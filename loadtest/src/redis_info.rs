//! Redis's load during a run: `INFO stats` polled every 50–100 ms for
//! `total_commands_processed`, turned into ops/s over any window.
//!
//! Redis is the one shared part of a cluster, so a reconnect storm's cost
//! shows there first: every reconnect subscribes, registers presence and
//! reads cursors and counts. A tiny RESP client is enough for one command.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::sys::unix_micros;

/// One reading: when, and the commands Redis had processed by then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sample {
    pub at_us: u64,
    pub commands: u64,
}

/// A running sampler; [`Sampler::finish`] stops it and hands the samples over.
pub struct Sampler {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    /// Polls `addr` (`host:port`) every `every` for at most `limit`.
    pub fn start(addr: String, every: Duration, limit: Duration) -> Sampler {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = watch::channel(false);
        let into = samples.clone();
        let task = tokio::spawn(async move {
            let run = poll(&addr, every, limit, &into);
            tokio::select! {
                r = run => if let Err(e) = r { tracing::warn!("redis INFO sampling ended: {e:#}") },
                _ = stopped.changed() => {}
            }
        });
        Sampler {
            samples,
            stop,
            task,
        }
    }

    /// Samples so far (a copy; the sampler keeps going).
    pub fn snapshot(&self) -> Vec<Sample> {
        self.samples.lock().expect("samples lock").clone()
    }

    pub async fn finish(self) -> Vec<Sample> {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let samples = self.samples.lock().expect("samples lock");
        samples.clone()
    }
}

async fn poll(
    addr: &str,
    every: Duration,
    limit: Duration,
    into: &Mutex<Vec<Sample>>,
) -> anyhow::Result<()> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to redis at {addr}"))?;
    stream.set_nodelay(true)?;
    let mut conn = BufReader::new(stream);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let rounds = (limit.as_micros() / every.as_micros().max(1)).max(1) as u64;
    for _ in 0..rounds {
        tick.tick().await;
        let info = info_stats(&mut conn).await?;
        let at_us = unix_micros();
        let commands = field(&info, "total_commands_processed")
            .context("no total_commands_processed in INFO stats")?;
        into.lock()
            .expect("samples lock")
            .push(Sample { at_us, commands });
    }
    Ok(())
}

/// One `INFO stats` round trip: the bulk string's text.
async fn info_stats(conn: &mut BufReader<TcpStream>) -> anyhow::Result<String> {
    conn.get_mut().write_all(b"INFO stats\r\n").await?;
    let mut header = String::new();
    conn.read_line(&mut header).await?;
    let len = bulk_len(&header)?;
    let mut body = vec![0; len + 2];
    conn.read_exact(&mut body).await?;
    body.truncate(len);
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The length of a RESP bulk string from its header line `$<len>\r\n`.
fn bulk_len(header: &str) -> anyhow::Result<usize> {
    let h = header.trim_end();
    match h.strip_prefix('$') {
        Some(n) => Ok(n
            .parse()
            .with_context(|| format!("bad bulk header {h:?}"))?),
        None => bail!("unexpected redis answer {h:?}"),
    }
}

/// A numeric `name:value` line of an INFO text.
fn field(info: &str, name: &str) -> Option<u64> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
}

/// Commands per second between samples `a` and `b`.
fn rate(a: &Sample, b: &Sample) -> f64 {
    let dt = b.at_us.saturating_sub(a.at_us).max(1) as f64 / 1e6;
    b.commands.saturating_sub(a.commands) as f64 / dt
}

/// The highest rate over any window of at least `window` between samples
/// taken in `[from_us, to_us]`: each sample paired with the first one at
/// least `window` later.
pub fn peak(samples: &[Sample], from_us: u64, to_us: u64, window: Duration) -> Option<f64> {
    let s: Vec<&Sample> = samples
        .iter()
        .filter(|x| (from_us..=to_us).contains(&x.at_us))
        .collect();
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
        }
    }

    #[test]
    fn reads_the_bulk_header_and_fields() {
        assert_eq!(bulk_len("$1234\r\n").unwrap(), 1234);
        assert!(bulk_len("-ERR no\r\n").is_err());
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
    }

    #[tokio::test]
    async fn a_sampler_without_redis_ends_empty() {
        let sampler = Sampler::start(
            "127.0.0.1:1".into(),
            Duration::from_millis(10),
            Duration::from_secs(1),
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(sampler.finish().await.is_empty());
    }
}
