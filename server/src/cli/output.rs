//! Output for people (aligned tables, safe one-line cells) and for scripts (JSON with RFC 3339 UTC times).

use chrono::{DateTime, SecondsFormat, Utc};
use flowstate_store::RunSummary;
use serde_json::{json, Value};

/// A table of left- or right-aligned columns, separated by two spaces, without trailing blanks.
pub struct Table {
    headers: Vec<String>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers; a header starting with `>` is right-aligned (the `>` is dropped).
    pub fn new(headers: &[&str]) -> Self {
        Table {
            headers: headers
                .iter()
                .map(|h| h.trim_start_matches('>').to_string())
                .collect(),
            right: headers.iter().map(|h| h.starts_with('>')).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; each cell is made safe for a terminal and kept on one line.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.iter().map(|c| one_line(c)).collect());
    }

    /// The rendered table, ending with a newline.
    pub fn render(&self) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(width(cell));
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, column_width) in widths.iter().enumerate() {
                let cell = row.get(i).map(String::as_str).unwrap_or("");
                let pad = column_width.saturating_sub(width(cell));
                if i > 0 {
                    line.push_str("  ");
                }
                if self.right[i] {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    if i + 1 < columns {
                        line.push_str(&" ".repeat(pad));
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Aligned `key  value` lines; continuation lines of a multi-line value are indented under the value.
pub fn key_values(pairs: &[(&str, String)]) -> String {
    let key_width = pairs.iter().map(|(k, _)| width(k)).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in pairs {
        let value = safe_text(value);
        let mut lines = value.lines();
        let first = lines.next().unwrap_or("");
        out.push_str(format!("{key:<key_width$}  {first}").trim_end());
        out.push('\n');
        for line in lines {
            out.push_str(format!("{:key_width$}  {line}", "").trim_end());
            out.push('\n');
        }
    }
    out
}

/// Characters that could rewrite a terminal (escape sequences, bidi overrides) or break a line.
fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Text made safe for a terminal, keeping line breaks and tabs.
pub fn safe_text(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' | '\t' => c,
            c if is_unsafe(c) => '\u{FFFD}',
            c => c,
        })
        .collect()
}

/// Text on one line (whitespace runs become one space) and safe for a terminal.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.trim().chars() {
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.push(if is_unsafe(c) { '\u{FFFD}' } else { c });
    }
    out
}

/// Cuts text to at most `max` columns, ending with `…` when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if width(text) <= max {
        return text.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = char_width(c);
        if used + w + 1 > max {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push('…');
    out
}

/// Terminal columns a text takes (wide East Asian characters and emoji count two, combining marks zero).
pub fn width(text: &str) -> usize {
    text.chars().map(char_width).sum()
}

fn char_width(c: char) -> usize {
    match c as u32 {
        0x0300..=0x036F | 0x200B..=0x200F | 0xFE00..=0xFE0F => 0,
        0x1100..=0x115F
        | 0x2E80..=0x303E
        | 0x3041..=0x33FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x1F300..=0x1F64F
        | 0x1F900..=0x1F9FF
        | 0x20000..=0x3FFFD => 2,
        _ => 1,
    }
}

/// An instant as RFC 3339 in UTC with microseconds (`2026-01-31T12:00:00.000000Z`), the JSON spelling.
pub fn rfc3339(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// An optional instant as a JSON string or null.
pub fn json_time(at: &Option<DateTime<Utc>>) -> Value {
    at.as_ref()
        .map(|t| Value::String(rfc3339(t)))
        .unwrap_or(Value::Null)
}

/// An instant for a table: `2026-01-31 12:00:00` (UTC), or `-` when unknown.
pub fn human_time(at: &Option<DateTime<Utc>>) -> String {
    at.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

/// How long before `now` an instant was: `45s`, `12m`, `5h 3m`, `3d 4h`.
pub fn ago(at: &DateTime<Utc>, now: DateTime<Utc>) -> String {
    let s = (now - *at).num_seconds();
    if s < 0 {
        return "in the future".into();
    }
    let (d, h, m) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60);
    let text = if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m")
    } else {
        format!("{s}s")
    };
    format!("{text} ago")
}

/// Milliseconds for people: `850 ms`, `12.4 s`, `3m 20s`.
pub fn duration_ms(ms: Option<i64>) -> String {
    match ms {
        None => "-".into(),
        Some(ms) if ms < 1_000 => format!("{ms} ms"),
        Some(ms) if ms < 60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        Some(ms) => format!("{}m {}s", ms / 60_000, ms % 60_000 / 1000),
    }
}

/// Bytes for people: `830 B`, `4.0 KB`, `1.2 MB`.
pub fn bytes(n: usize) -> String {
    if n < 1024 {
        format!("{n} B")
    } else if n < 1024 * 1024 {
        format!("{:.1} KB", n as f64 / 1024.0)
    } else {
        format!("{:.1} MB", n as f64 / (1024.0 * 1024.0))
    }
}

/// A listed run as JSON: every summary column, times in RFC 3339 UTC.
pub fn run_json(run: &RunSummary) -> Value {
    json!({
        "run_id": run.run_id,
        "pipeline_id": run.pipeline_id,
        "pipeline_name": run.pipeline_name,
        "pipeline_version": run.pipeline_version,
        "status": run.status,
        "current_step_index": run.current_step_index,
        "total_steps": run.total_steps,
        "created_at": json_time(&run.created_at),
        "updated_at": json_time(&run.updated_at),
        "error_message": run.error_message,
        "execution_time_ms": run.execution_time_ms,
        "memory_usage_mb": run.memory_usage_mb,
    })
}

/// A JSON document as printed: pretty, ending with a newline.
pub fn json_doc(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into());
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_stay_on_one_line() {
        let mut t = Table::new(&["NAME", ">RUNS", "NOTE"]);
        t.row(vec!["a".into(), "5".into(), "one\ntwo\x1b[31m".into()]);
        t.row(vec!["longer".into(), "12345".into(), String::new()]);
        assert_eq!(
            t.render(),
            "NAME     RUNS  NOTE\na           5  one two\u{FFFD}[31m\nlonger  12345\n"
        );
    }

    #[test]
    fn truncation_counts_columns() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
        assert_eq!(width("注文"), 4);
        assert_eq!(truncate("注文番号", 5), "注文…");
    }

    #[test]
    fn key_values_align_and_indent() {
        let text = key_values(&[("a", "1".into()), ("long key", "x\ny".into())]);
        assert_eq!(text, "a         1\nlong key  x\n          y\n");
    }
}
