//! The CPU time of the processes a benchmark charges its work to (the
//! gateways, Redis, the load generator itself), read before and after the
//! measured part, and the report's rows of it: a latency figure means
//! little on two shared cores without knowing who burnt them.

use anyhow::Context;
use serde::Serialize;

use herald_harness::process::{cpu_split_each, cpu_split_total};

/// A `--cpu-pid` argument: `LABEL=PID` or `PID` (labelled `pid PID`).
pub fn parse_cpu_pid(s: &str) -> anyhow::Result<(String, u32)> {
    let (label, pid) = match s.split_once('=') {
        Some((l, p)) => (l.to_owned(), p),
        None => (format!("pid {s}"), s),
    };
    let pid = pid
        .trim()
        .parse()
        .with_context(|| format!("--cpu-pid {s}: expected LABEL=PID or PID"))?;
    Ok((label, pid))
}

/// What one process (or the load generator's processes together) used
/// over a measured span.
pub struct CpuUse {
    pub label: String,
    pub pid: u32,
    pub user_us: u64,
    pub system_us: u64,
}

/// A report's row for one process: its [`CpuUse`] and that per unit of
/// the scenario's work.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessCpu {
    pub label: String,
    pub pid: u32,
    pub cpu_us: u64,
    #[serde(flatten)]
    pub share: Share,
}

/// A process's CPU per unit of a scenario's work, under the name that
/// scenario's report gives it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Share {
    /// Per mark sent, none without marks (`mark`).
    PerMark { us_per_mark: Option<f64> },
    /// Per message of the job (`fanout`).
    PerMessage { us_per_message: f64 },
    /// Of one core, over the span (`storm`).
    Cores { cores: f64 },
}

impl Share {
    /// The one figure of a share (user and system time together).
    pub fn figure(&self) -> Option<f64> {
        match *self {
            Share::PerMark { us_per_mark } => us_per_mark,
            Share::PerMessage { us_per_message: v } | Share::Cores { cores: v } => Some(v),
        }
    }
}

/// The CPU of the `--cpu-pid` processes, and optionally of the load
/// generator (this process and its workers, reported as `loadgen`), from
/// [`CpuMeter::start`] to [`CpuMeter::stop`].
pub struct CpuMeter {
    watched: Vec<(String, u32)>,
    loadgen: Option<Vec<u32>>,
    before: Vec<(u64, u64)>,
}

impl CpuMeter {
    pub fn start(watched: &[(String, u32)], loadgen: Option<Vec<u32>>) -> Self {
        let mut meter = CpuMeter {
            watched: watched.to_vec(),
            loadgen,
            before: Vec::new(),
        };
        meter.before = meter.now();
        meter
    }

    /// (user, system) now of each watched process, then of the load generator.
    fn now(&self) -> Vec<(u64, u64)> {
        let pids: Vec<u32> = self.watched.iter().map(|w| w.1).collect();
        let mut now = cpu_split_each(&pids);
        now.extend(self.loadgen.as_deref().map(cpu_split_total));
        now
    }

    /// What each process used since the start.
    pub fn stop(&self) -> Vec<CpuUse> {
        let loadgen = (self.loadgen.as_ref()).map(|_| ("loadgen".to_owned(), std::process::id()));
        (self.watched.iter().cloned().chain(loadgen))
            .zip(self.now().into_iter().zip(&self.before))
            .map(|((label, pid), ((u, s), (bu, bs)))| CpuUse {
                label,
                pid,
                user_us: u.saturating_sub(*bu),
                system_us: s.saturating_sub(*bs),
            })
            .collect()
    }

    /// [`CpuMeter::stop`] as report rows: `share` turns a process's CPU
    /// microseconds into the report's per-unit figure.
    pub fn rows(&self, share: impl Fn(u64) -> Share) -> Vec<ProcessCpu> {
        let row = |c: CpuUse| {
            let cpu_us = c.user_us + c.system_us;
            let (label, pid) = (c.label, c.pid);
            ProcessCpu {
                label,
                pid,
                cpu_us,
                share: share(cpu_us),
            }
        };
        self.stop().into_iter().map(row).collect()
    }
}
