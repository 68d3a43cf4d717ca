//! One reporting window of a soak, and the drift over all of them: does
//! the gateway's memory creep up, do latencies get worse, the longer it
//! runs?

use herald_harness::latency::Summary;
use serde::Serialize;

use super::observer::Acc;

/// What one window measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Window {
    pub index: usize,
    /// Seconds since the mix started, at the window's end.
    pub end_secs: f64,
    /// Each `--gateway-pid`'s RSS at the window's end, and their sum.
    pub rss_kib: Vec<u64>,
    pub rss_total_kib: u64,
    /// Each gateway's CPU over the window, in cores.
    pub cpu_cores: Vec<f64>,
    pub redis_ops: Option<f64>,
    pub online: usize,
    pub unicast_sent: u64,
    pub unicast_received: u64,
    pub broadcasts_sent: u64,
    pub broadcast_received: u64,
    pub marks_ok: u64,
    pub mark_errors: u64,
    pub churned: u64,
    pub unexpected_ends: u64,
    pub refused: u64,
    /// From the scheduled send to the first arrival.
    pub unicast: Summary,
    pub broadcast: Summary,
    /// From the `mark` frame to its reply.
    pub mark: Summary,
    /// From a churn's close to the resume on the new connection (the
    /// backoff wait, up to `--backoff-base-ms`, included).
    pub reconnect: Summary,
}

impl Window {
    /// The client-side half of a window from its accumulator.
    pub fn from_acc(index: usize, end_secs: f64, acc: &Acc) -> Window {
        Window {
            index,
            end_secs,
            unicast_received: acc.unicast_received,
            broadcast_received: acc.broadcast_received,
            marks_ok: acc.marks_ok,
            mark_errors: acc.mark_errors,
            churned: acc.churned,
            unexpected_ends: acc.unexpected_ends,
            refused: acc.refused,
            unicast: acc.unicast.summary(),
            broadcast: acc.broadcast.summary(),
            mark: acc.mark.summary(),
            reconnect: acc.reconnect.summary(),
            ..Window::default()
        }
    }
}

/// How the last window compares with the first.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Drift {
    pub windows: usize,
    pub rss_first_kib: u64,
    pub rss_last_kib: u64,
    pub rss_change_kib: i64,
    pub rss_change_pct: f64,
    /// Least-squares slope of the total RSS over the windows, KiB per minute.
    pub rss_slope_kib_per_min: f64,
    pub unicast_p50_first_us: u64,
    pub unicast_p50_last_us: u64,
    pub unicast_p99_first_us: u64,
    pub unicast_p99_last_us: u64,
    pub mark_p99_first_us: u64,
    pub mark_p99_last_us: u64,
}

/// The drift over `windows` (none without two windows).
pub fn drift(windows: &[Window]) -> Option<Drift> {
    let (first, last) = (windows.first()?, windows.last()?);
    if windows.len() < 2 {
        return None;
    }
    let change = last.rss_total_kib as i64 - first.rss_total_kib as i64;
    let points: Vec<(f64, f64)> = windows
        .iter()
        .map(|w| (w.end_secs / 60.0, w.rss_total_kib as f64))
        .collect();
    Some(Drift {
        windows: windows.len(),
        rss_first_kib: first.rss_total_kib,
        rss_last_kib: last.rss_total_kib,
        rss_change_kib: change,
        rss_change_pct: change as f64 * 100.0 / first.rss_total_kib.max(1) as f64,
        rss_slope_kib_per_min: slope(&points),
        unicast_p50_first_us: first.unicast.p50_us,
        unicast_p50_last_us: last.unicast.p50_us,
        unicast_p99_first_us: first.unicast.p99_us,
        unicast_p99_last_us: last.unicast.p99_us,
        mark_p99_first_us: first.mark.p99_us,
        mark_p99_last_us: last.mark.p99_us,
    })
}

/// The least-squares slope of y over x (0 when x does not vary).
pub fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx
    }
}
