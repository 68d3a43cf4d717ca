//! The report writer: the table, the JSON file, the figures' text.

use herald_loadtest::harness::report::{opt_us, percent, write_json, Table};

#[test]
fn table_aligns_columns_to_the_widest_cell() {
    let mut t = Table::new(["what", "n"]);
    t.row(["resumed", "20000"]);
    t.row(["lost"]);
    let text = t.render();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "   what |     n");
    assert_eq!(lines[1], "--------+------");
    assert_eq!(lines[2], "resumed | 20000");
    assert_eq!(lines[3], "   lost |      ");
}

#[test]
fn json_goes_only_where_asked() {
    write_json(None, &1).unwrap();
    let path = std::env::temp_dir().join(format!("lt-report-{}.json", std::process::id()));
    write_json(Some(&path), &serde_json::json!({"a": 1})).unwrap();
    let back: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(back["a"], 1);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn percent_and_optional_times() {
    assert_eq!(percent(1, 3), "33.3%");
    assert_eq!(percent(1, 0), "-");
    assert_eq!(opt_us(None), "-");
    assert_eq!(opt_us(Some(1_500)), "1.5ms");
}
