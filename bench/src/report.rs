//! The figures: one JSON object per measurement in `target/bench/flowstate.json`, and a table on stdout.
//!
//! Each measurement has `name`, `rows`, `value`, `unit`, and, when it has one, `baseline_value` (with
//! `baseline` saying what that is), `ratio` (= value / baseline_value; `better` says whether higher or lower is
//! better), the issue's `goal` and whether it was met, a `note`, and any other figures (`p50_ms`, `p99_ms`, ...).
//! Every bench target of the crate writes into the same file: an entry replaces the one with the same `name`
//! and `rows`, and the others stay, so the store bench and the HTTP bench build one report together.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Result;

/// One figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// What was measured, dotted (`save_state.full.1_caller`).
    pub name: String,
    /// Rows in the database it was measured on.
    pub rows: u64,
    /// The figure.
    pub value: f64,
    /// Its unit (`ops/s`, `ms`, `rows/s`, ...).
    pub unit: String,
    /// The baseline's figure, measured in the same run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_value: Option<f64>,
    /// What the baseline is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// value / baseline_value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// `higher` or `lower`: which way is better.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub better: Option<String>,
    /// The goal, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<String>,
    /// Whether the goal was met.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal_met: Option<bool>,
    /// How it was measured, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// When it was measured (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// Any other figures (percentiles, counts).
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Measurement {
    /// A figure without a baseline.
    pub fn new(name: impl Into<String>, rows: u64, value: f64, unit: impl Into<String>) -> Measurement {
        Measurement {
            name: name.into(),
            rows,
            value,
            unit: unit.into(),
            baseline_value: None,
            baseline: None,
            ratio: None,
            better: None,
            goal: None,
            goal_met: None,
            note: None,
            at: Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            extra: BTreeMap::new(),
        }
    }

    /// Says which way is better: `higher` (throughput) or `lower` (latency).
    pub fn higher_is_better(mut self, higher: bool) -> Self {
        self.better = Some(if higher { "higher" } else { "lower" }.into());
        self
    }

    /// Adds the baseline measured beside it, and the ratio.
    pub fn baseline(mut self, value: f64, what: impl Into<String>) -> Self {
        self.baseline_value = Some(value);
        self.baseline = Some(what.into());
        self.ratio = (value != 0.0).then(|| self.value / value);
        self
    }

    /// Goal: the value is at most `limit`.
    pub fn goal_at_most(mut self, limit: f64) -> Self {
        self.goal = Some(format!("<= {} {}", number(limit), self.unit));
        self.goal_met = Some(self.value <= limit);
        self
    }

    /// Goal: the value is at least `limit` (`what` names it, e.g. "raw's 1-caller figure").
    pub fn goal_at_least(mut self, limit: f64, what: Option<&str>) -> Self {
        self.goal = Some(match what {
            Some(w) => format!(">= {} {} ({w})", number(limit), self.unit),
            None => format!(">= {} {}", number(limit), self.unit),
        });
        self.goal_met = Some(self.value >= limit);
        self
    }

    /// Goal: the ratio to the baseline is at least `ratio`.
    pub fn goal_ratio_at_least(mut self, ratio: f64) -> Self {
        self.goal = Some(format!(">= {ratio}x baseline"));
        self.goal_met = Some(self.ratio.is_some_and(|r| r >= ratio));
        self
    }

    /// Adds a note.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// Adds another figure.
    pub fn extra(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_string(), value.into());
        self
    }
}

/// `target/bench/flowstate.json` (or `FLOWSTATE_BENCH_JSON`).
pub fn report_path() -> PathBuf {
    match std::env::var_os("FLOWSTATE_BENCH_JSON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => crate::bench_dir().join("flowstate.json"),
    }
}

/// Reads the measurements in `path` (none when it is missing or unreadable).
pub fn read(path: &Path) -> Vec<Measurement> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Writes `new` into the report at `path`: each replaces the entry with the same name and rows, the rest are
/// appended; other entries stay. Returns the whole report.
///
/// # Errors
/// I/O failures.
pub fn merge_into(path: &Path, new: &[Measurement]) -> Result<Vec<Measurement>> {
    let mut all = read(path);
    for m in new {
        match all.iter_mut().find(|o| o.name == m.name && o.rows == m.rows) {
            Some(slot) => *slot = m.clone(),
            None => all.push(m.clone()),
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = crate::load::with_suffix(path, ".tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&all)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(all)
}

/// A number for people: thousands separated, a sensible number of decimals.
pub fn number(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let a = v.abs();
    if a >= 1000.0 {
        let digits = format!("{:.0}", a);
        let mut out = String::new();
        for (k, c) in digits.chars().enumerate() {
            if k > 0 && (digits.len() - k) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        if v < 0.0 {
            format!("-{out}")
        } else {
            out
        }
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// The measurements as a table, then their notes.
pub fn table(ms: &[Measurement]) -> String {
    let head = [
        "measurement",
        "rows",
        "value",
        "baseline",
        "ratio",
        "p99",
        "goal",
        "met",
    ];
    let rows: Vec<[String; 8]> = ms
        .iter()
        .map(|m| {
            let p99 = m
                .extra
                .get("p99_ms")
                .and_then(Value::as_f64)
                .map(|v| format!("{} ms", number(v)))
                .unwrap_or_default();
            [
                m.name.clone(),
                number(m.rows as f64),
                format!("{} {}", number(m.value), m.unit),
                m.baseline_value
                    .map(|b| format!("{} {}", number(b), m.unit))
                    .unwrap_or_default(),
                m.ratio.map(|r| format!("{r:.2}x")).unwrap_or_default(),
                p99,
                m.goal.clone().unwrap_or_default(),
                match m.goal_met {
                    Some(true) => "yes".into(),
                    Some(false) => "NO".into(),
                    None => String::new(),
                },
            ]
        })
        .collect();
    let mut widths = head.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (k, (c, w)) in cells.iter().zip(widths).enumerate() {
            let pad = w - c.chars().count();
            // Text left, figures right.
            if k == 0 || k == 6 {
                s.push_str(c);
                s.push_str(&" ".repeat(pad));
            } else {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            }
            s.push_str("  ");
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(&head.map(String::from));
    out.push_str(&line(&widths.map(|w| "-".repeat(w))));
    for r in &rows {
        out.push_str(&line(r));
    }
    let notes: Vec<&Measurement> = ms
        .iter()
        .filter(|m| m.note.is_some() || m.baseline.is_some())
        .collect();
    if !notes.is_empty() {
        out.push('\n');
        for m in notes {
            out.push_str(&format!("{} ({} rows):", m.name, number(m.rows as f64)));
            if let Some(b) = &m.baseline {
                out.push_str(&format!(" baseline = {b}."));
            }
            if let Some(n) = &m.note {
                out.push_str(&format!(" {n}"));
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_replace_by_name_and_rows_and_keep_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b").join("flowstate.json");
        let a = Measurement::new("x", 100, 1.0, "ms")
            .baseline(2.0, "raw")
            .goal_at_most(2.0);
        let b = Measurement::new("y", 100, 5.0, "ops/s").extra("p99_ms", 3.5);
        merge_into(&path, &[a.clone(), b.clone()]).unwrap();
        let a2 = Measurement::new("x", 100, 3.0, "ms")
            .baseline(2.0, "raw")
            .goal_at_most(2.0);
        let other_size = Measurement::new("x", 1_000, 4.0, "ms");
        let all = merge_into(&path, &[a2.clone(), other_size.clone()]).unwrap();
        assert_eq!(all, vec![a2.clone(), b.clone(), other_size]);
        assert_eq!(read(&path), all, "the file holds what was returned");
        assert_eq!(a2.ratio, Some(1.5));
        assert_eq!(a2.goal_met, Some(false));
        assert_eq!(a.goal_met, Some(true));

        // The JSON has the keys the issue names, flat.
        let json: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let first = &json[1];
        assert_eq!(first["name"], "y");
        assert_eq!(first["rows"], 100);
        assert_eq!(first["value"], 5.0);
        assert_eq!(first["unit"], "ops/s");
        assert_eq!(first["p99_ms"], 3.5);
        assert!(first.get("baseline_value").is_none());
        assert_eq!(json[0]["baseline_value"], 2.0);

        let t = table(&all);
        assert!(
            t.contains("3.00 ms") && t.contains("1.50x") && t.contains("NO"),
            "{t}"
        );
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(number(1234567.4), "1,234,567");
        assert_eq!(number(250.4), "250");
        assert_eq!(number(12.34), "12.3");
        assert_eq!(number(1.234), "1.23");
        assert_eq!(number(0.1234), "0.123");
    }
}
