//! How a scenario hands its results over: a JSON file for scripts
//! (`--out`, read by `scripts/bench-suite.sh` and kept under `bench-out/`)
//! and a plain-text table for people.
//!
//! Every scenario writes its report the same way, so a script can rely on
//! one shape: pretty JSON, written only after the run finished (a partial
//! file never looks like a result).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use herald_harness::latency::fmt_us;
use serde::Serialize;

/// Writes `value` as pretty JSON to `path`, if one was given.
pub fn write_json<T: Serialize>(path: Option<&Path>, value: &T) -> anyhow::Result<()> {
    let Some(path) = path else { return Ok(()) };
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Microseconds as `fmt_us` prints them, `-` for none.
pub fn opt_us(us: Option<u64>) -> String {
    us.map(fmt_us).unwrap_or_else(|| "-".into())
}

/// A percentage with one decimal, `-` when there is nothing to divide.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "-".into();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

/// A table printed with right-aligned columns sized to their widest cell,
/// so new scenarios need no hand-counted format strings.
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Self {
        Table {
            headers: headers.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells print empty, extra ones are dropped.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        let mut cells: Vec<String> = cells.into_iter().map(Into::into).collect();
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
    }

    /// The table as text: a header line, a rule, one line per row.
    pub fn render(&self) -> String {
        let widths: Vec<usize> = (0..self.headers.len())
            .map(|c| {
                let cells = self.rows.iter().map(|r| r[c].chars().count());
                cells
                    .chain([self.headers[c].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(cell, &w)| format!("{cell:>w$}"))
                .collect();
            padded.join(" | ")
        };
        let mut out = String::new();
        let _ = writeln!(out, "{}", line(&self.headers));
        let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
        let _ = writeln!(out, "{}", rule.join("-+-"));
        for r in &self.rows {
            let _ = writeln!(out, "{}", line(r));
        }
        out
    }

    pub fn print(&self) {
        print!("{}", self.render());
    }
}
