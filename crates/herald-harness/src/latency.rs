//! Latency histograms: recorded in microseconds, shipped between processes
//! as (value, count) buckets, merged, and summarised as percentiles.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency a histogram can hold: one hour, in microseconds. Larger
/// values are clamped, so a stuck message still shows up as a huge max.
const MAX_MICROS: u64 = 3_600_000_000;

/// A latency histogram in microseconds with three significant figures.
#[derive(Clone)]
pub struct LatencyHist {
    h: Histogram<u64>,
}

/// What crosses the worker pipe: the non-empty buckets of a histogram. Much
/// smaller than the raw samples (a few hundred pairs for any run) and needs
/// no extra hdrhistogram features.
pub type Buckets = Vec<(u64, u64)>;

/// The percentiles a report prints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

impl Default for LatencyHist {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHist {
    pub fn new() -> Self {
        LatencyHist {
            h: Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds"),
        }
    }

    pub fn record(&mut self, micros: u64) {
        self.h.saturating_record(micros.clamp(1, MAX_MICROS));
    }

    pub fn to_buckets(&self) -> Buckets {
        self.h
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect()
    }

    pub fn merge_buckets(&mut self, buckets: &[(u64, u64)]) {
        for &(value, count) in buckets {
            self.h
                .record_n(value.clamp(1, MAX_MICROS), count)
                .expect("value within bounds");
        }
    }

    pub fn summary(&self) -> Summary {
        if self.h.is_empty() {
            return Summary::default();
        }
        Summary {
            count: self.h.len(),
            p50_us: self.h.value_at_quantile(0.50),
            p99_us: self.h.value_at_quantile(0.99),
            p999_us: self.h.value_at_quantile(0.999),
            max_us: self.h.max(),
        }
    }
}

impl LatencyHist {
    /// Values recorded.
    pub fn len(&self) -> u64 {
        self.h.len()
    }

    pub fn is_empty(&self) -> bool {
        self.h.is_empty()
    }

    pub fn merge(&mut self, other: &LatencyHist) {
        // Same bounds on both sides, so adding cannot fail.
        self.h.add(&other.h).expect("histograms share bounds");
    }

    pub fn from_buckets(buckets: &[(u64, u64)]) -> Self {
        let mut h = Self::new();
        h.merge_buckets(buckets);
        h
    }
}

/// Formats microseconds for people: `850µs`, `12.3ms`, `2.04s`.
pub fn fmt_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.1}ms", us as f64 / 1e3)
    } else {
        format!("{:.2}s", us as f64 / 1e6)
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "n={} p50={} p99={} p999={} max={}",
            self.count,
            fmt_us(self.p50_us),
            fmt_us(self.p99_us),
            fmt_us(self.p999_us),
            fmt_us(self.max_us)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_adds_counts_and_keeps_extremes() {
        let mut a = LatencyHist::new();
        let mut b = LatencyHist::new();
        for v in 1..=1000 {
            a.record(v);
        }
        b.record(50_000);
        a.merge(&b);
        let s = a.summary();
        assert_eq!(s.count, 1001);
        assert!((49_950..=50_050).contains(&s.max_us), "{s:?}");
        assert!((495..=505).contains(&s.p50_us), "{s:?}");
    }

    #[test]
    fn buckets_round_trip_through_json() {
        let mut a = LatencyHist::new();
        for v in [3, 3, 700, 12_345, 2_000_000] {
            a.record(v);
        }
        let json = serde_json::to_string(&a.to_buckets()).unwrap();
        let back = LatencyHist::from_buckets(&serde_json::from_str::<Buckets>(&json).unwrap());
        assert_eq!(back.summary(), a.summary());
        // Merging buckets from two sources equals merging the histograms.
        let mut m = LatencyHist::from_buckets(&a.to_buckets());
        m.merge_buckets(&a.to_buckets());
        let mut n = a.clone();
        n.merge(&a);
        assert_eq!(m.summary(), n.summary());
    }

    #[test]
    fn out_of_range_values_are_clamped_not_lost() {
        let mut a = LatencyHist::new();
        a.record(0);
        a.record(u64::MAX);
        assert_eq!(a.len(), 2);
        assert!(a.summary().max_us >= MAX_MICROS);
    }

    #[test]
    fn empty_summary_is_zero() {
        assert_eq!(LatencyHist::new().summary(), Summary::default());
    }

    #[test]
    fn formats_units() {
        assert_eq!(fmt_us(850), "850µs");
        assert_eq!(fmt_us(12_300), "12.3ms");
        assert_eq!(fmt_us(2_040_000), "2.04s");
    }
}
