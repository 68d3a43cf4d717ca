//! The CPU meter: `--cpu-pid` arguments and the report rows.

use herald_loadtest::harness::cpu::{parse_cpu_pid, CpuMeter, Share};

#[test]
fn cpu_pids_take_an_optional_label() {
    assert_eq!(parse_cpu_pid("a=12").unwrap(), ("a".into(), 12));
    assert_eq!(parse_cpu_pid("12").unwrap(), ("pid 12".into(), 12));
    assert!(parse_cpu_pid("a=x").is_err());
}

#[test]
fn a_meter_reports_the_watched_then_the_load_generator() {
    let own = std::process::id();
    let meter = CpuMeter::start(&[("gone".into(), u32::MAX - 1)], Some(vec![own]));
    let cpu = meter.rows(|_| Share::Cores { cores: 0.5 });
    let labels: Vec<_> = cpu.iter().map(|c| (c.label.as_str(), c.pid)).collect();
    assert_eq!(labels, [("gone", u32::MAX - 1), ("loadgen", own)]);
    assert_eq!(cpu[0].cpu_us, 0);
    let json = serde_json::to_value(&cpu[0]).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"label": "gone", "pid": u32::MAX - 1, "cpu_us": 0, "cores": 0.5})
    );
    let per_mark = Share::PerMark { us_per_mark: None };
    assert_eq!(
        serde_json::to_value(per_mark).unwrap(),
        serde_json::json!({ "us_per_mark": null })
    );
}
