//! What the reports conclude from their figures: a unicast trial
//! sustained, the mark target met, a soak's drift.

use herald_harness::latency::Summary;
use herald_loadtest::scenario::mark::report::{target_met, MarkReport};
use herald_loadtest::scenario::soak::window::{drift, slope, Window};
use herald_loadtest::scenario::unicast::report::{is_sustained, TrialReport};

#[test]
fn sustained_needs_rate_latency_and_no_loss() {
    let good = TrialReport {
        via: "http".into(),
        batch: 1,
        offered_rate: 1000.0,
        achieved_rate: 990.0,
        received: 10_000,
        latency: Summary {
            count: 10_000,
            p50_us: 1_000,
            p99_us: 50_000,
            p999_us: 90_000,
            max_us: 200_000,
        },
        ..TrialReport::default()
    };
    assert!(is_sustained(&good, 100_000));
    assert!(!is_sustained(
        &TrialReport {
            achieved_rate: 900.0,
            ..good.clone()
        },
        100_000
    ));
    assert!(!is_sustained(
        &TrialReport {
            lost: 1,
            ..good.clone()
        },
        100_000
    ));
    assert!(!is_sustained(&good, 40_000));
}

#[test]
fn target_needs_latency_rate_and_no_failures() {
    let good = MarkReport {
        users: 200,
        offered_rate: 1000.0,
        sent: 10_000,
        completed: 10_000,
        achieved_rate: 999.0,
        counts_latency: Summary {
            count: 10_000,
            p50_us: 700,
            p99_us: 1_900,
            p999_us: 3_000,
            max_us: 5_000,
        },
        markers_live: 200,
        watchers_live: 200,
        max_p99_ms: 2.0,
        ..MarkReport::default()
    };
    assert!(target_met(&good));
    let p99 = |us| Summary {
        p99_us: us,
        ..good.counts_latency
    };
    assert!(!target_met(&MarkReport {
        counts_latency: p99(2_100),
        ..good.clone()
    }));
    assert!(!target_met(&MarkReport {
        counts_timeouts: 1,
        ..good.clone()
    }));
    assert!(!target_met(&MarkReport {
        achieved_rate: 900.0,
        ..good.clone()
    }));
}

fn w(index: usize, minutes: f64, rss: u64, p99: u64) -> Window {
    Window {
        index,
        end_secs: minutes * 60.0,
        rss_total_kib: rss,
        unicast: Summary {
            p99_us: p99,
            ..Summary::default()
        },
        ..Window::default()
    }
}

#[test]
fn drift_compares_last_with_first() {
    assert!(drift(&[w(0, 1.0, 1000, 5)]).is_none());
    let d = drift(&[w(0, 1.0, 1000, 5), w(1, 2.0, 1100, 9), w(2, 3.0, 1200, 7)]).unwrap();
    assert_eq!((d.rss_change_kib, d.windows), (200, 3));
    assert!((d.rss_change_pct - 20.0).abs() < 1e-9);
    assert!((d.rss_slope_kib_per_min - 100.0).abs() < 1e-9);
    assert_eq!((d.unicast_p99_first_us, d.unicast_p99_last_us), (5, 7));
}

#[test]
fn slope_fits_a_line() {
    assert!((slope(&[(0.0, 10.0), (1.0, 12.0), (2.0, 14.0)]) - 2.0).abs() < 1e-9);
    assert_eq!(slope(&[(1.0, 5.0), (1.0, 7.0)]), 0.0);
}
