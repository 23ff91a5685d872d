//! Output for people (aligned tables, safe one-line cells) and for scripts (JSON with RFC 3339 UTC times).

use chrono::{DateTime, Utc};
use flowstate_store::RunSummary;
use serde_json::Value;
use unicode_width::UnicodeWidthStr;

pub use flowstate_model::rfc3339;

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

    /// Each column's width: its widest cell or header.
    fn widths(&self) -> Vec<usize> {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(width(cell));
            }
        }
        widths
    }

    /// Cuts the cells of column `column` (with `…`) so every line fits in `max` terminal columns, keeping that
    /// column at least `min` wide (a terminal too narrow for the other columns then wraps, as it would anyway).
    pub fn fit(&mut self, column: usize, max: usize) {
        const MIN: usize = 12;
        let widths = self.widths();
        let Some(&current) = widths.get(column) else {
            return;
        };
        let total: usize = widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1);
        if total <= max {
            return;
        }
        let target = current.saturating_sub(total - max).max(MIN.min(current));
        for row in &mut self.rows {
            if let Some(cell) = row.get_mut(column) {
                *cell = truncate(cell, target);
            }
        }
    }

    /// The rendered table, ending with a newline.
    pub fn render(&self) -> String {
        let columns = self.headers.len();
        let widths = self.widths();
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
        let pad = " ".repeat(key_width - width(key));
        out.push_str(format!("{key}{pad}  {first}").trim_end());
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
    // The longest prefix that leaves a column for `…` (measured whole: an emoji and its variation selector or
    // joiner sequence count as they are drawn). Only the first `max` characters or so are ever measured.
    let mut end = 0;
    for (i, c) in text.char_indices() {
        let next = i + c.len_utf8();
        if width(&text[..next]) + 1 > max {
            break;
        }
        end = next;
    }
    format!("{}…", &text[..end])
}

/// How wide the output may be: `COLUMNS` when it holds a width (as `ls` reads it; tests and scripts set it),
/// otherwise the width of the terminal stdout is, and `None` when stdout is not a terminal (a pipe or a file:
/// then each table keeps its own fixed bound, so scripted output does not depend on who runs it).
pub fn terminal_columns() -> Option<usize> {
    if let Some(n) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|n| (20..=10_000).contains(n))
    {
        return Some(n);
    }
    terminal_size::terminal_size_of(std::io::stdout())
        .map(|(terminal_size::Width(w), _)| usize::from(w))
        .filter(|w| *w >= 20)
}

/// Terminal columns a text takes, as the `unicode-width` crate measures them (Unicode's East Asian Width and
/// emoji presentation: CJK and emoji count two, combining marks and joiners zero).
pub fn width(text: &str) -> usize {
    text.width()
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

/// Milliseconds for people, as the dashboard writes them (`flowstate_app::format::duration_ms`, one function
/// for both): `850 ms`, `27.5 s`, `4 min 05 s`, `2 h 03 min`; `-` when unknown.
pub fn duration_ms(ms: Option<i64>) -> String {
    match ms {
        None => "-".into(),
        Some(ms) => flowstate_app::format::duration_ms(ms as f64),
    }
}

/// A run's step as the dashboard counts it (`flowstate_app::model::step_text`: 1-based, a finished run's index
/// past the last step reads N of N): `1/4`, `4/4`, or `3` when the step count is unknown.
pub fn step(index: i64, total: i64) -> String {
    let shown = flowstate_app::model::step_number(index, total);
    if total > 0 {
        format!("{shown}/{total}")
    } else {
        shown.to_string()
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

/// A listed run as JSON: every summary column, times in RFC 3339 UTC ([`RunSummary`]'s own serialization), but
/// not the list's bookkeeping of how long the whole error message is (`error_message_bytes`).
pub fn run_json(run: &RunSummary) -> Value {
    let mut value = serde_json::to_value(run).unwrap_or(Value::Null);
    if let Some(fields) = value.as_object_mut() {
        fields.remove("error_message_bytes");
    }
    value
}

/// A JSON document as printed: pretty, ending with a newline, and safe for a terminal ([`terminal_safe_json`]).
pub fn json_doc(value: &Value) -> String {
    let mut text = terminal_safe_json(serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into()));
    text.push('\n');
    text
}

/// JSON text with every character that could rewrite a terminal written as a `\uXXXX` escape: serde_json
/// escapes the C0 controls but writes DEL, the C1 controls (U+009B is a CSI on some terminals) and the bidi
/// overrides as they are. The same JSON value (such characters only occur inside strings, where the escape means
/// the character), so scripts read what they read before; the structure's own line breaks stay.
pub fn terminal_safe_json(text: String) -> String {
    if !text.chars().any(|c| c != '\n' && is_unsafe(c)) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if c != '\n' && is_unsafe(c) {
            // Every such character is in the Basic Multilingual Plane: one escape.
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// An error as a JSON value: `{"error": {"kind": "usage"|"runtime", "message": ..., "exit_code": N}}`.
fn error_value(err: &super::CliError) -> Value {
    let kind = match err {
        super::CliError::Usage(_) => "usage",
        super::CliError::Runtime(_) => "runtime",
    };
    serde_json::json!({
        "error": { "kind": kind, "message": err.to_string(), "exit_code": err.exit_code() }
    })
}

/// An error as a JSON document (pretty, as `copy --json` prints it on stdout).
pub fn json_error(err: &super::CliError) -> String {
    json_doc(&error_value(err))
}

/// An error as one line of JSON (what every command prints on stderr with `--json`).
pub fn json_error_line(err: &super::CliError) -> String {
    terminal_safe_json(error_value(err).to_string())
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
    fn a_table_fits_its_widest_column_to_the_width() {
        let mut t = Table::new(&["ID", "ERROR"]);
        t.row(vec!["run_1".into(), "x".repeat(200)]);
        t.row(vec!["run_22".into(), "short".into()]);
        t.fit(1, 40);
        let text = t.render();
        assert!(text.lines().all(|l| width(l) <= 40), "{text}");
        assert!(text.contains('…'), "{text}");
        assert!(text.contains("short"), "{text}");
        let mut narrow = Table::new(&["ID", "ERROR"]);
        narrow.row(vec!["r".into(), "y".repeat(50)]);
        narrow.fit(1, 5);
        assert!(
            narrow.render().contains(&"y".repeat(11)),
            "never below 12 columns"
        );
    }

    #[test]
    fn steps_and_durations_read_as_the_dashboard_writes_them() {
        assert_eq!(step(0, 4), "1/4");
        assert_eq!(step(3, 4), "4/4");
        assert_eq!(step(4, 4), "4/4", "a finished run's index past the last step");
        assert_eq!(step(9, 4), "4/4");
        assert_eq!(step(2, 0), "3");
        assert_eq!(step(-1, 3), "1/3");
        assert_eq!(duration_ms(Some(27_466)), "27.5 s");
        assert_eq!(duration_ms(Some(850)), "850 ms");
        assert_eq!(duration_ms(Some(245_000)), "4 min 05 s");
        assert_eq!(duration_ms(None), "-");
    }

    #[test]
    fn truncation_counts_columns() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
        assert_eq!(width("注文"), 4);
        assert_eq!(truncate("注文番号", 5), "注文…");
        // Emoji outside the old hand-written ranges, and a sequence drawn as one.
        assert_eq!(width("🚀✅🪐"), 6);
        assert_eq!(truncate("🚀🚀🚀", 5), "🚀🚀…");
        assert_eq!(width("e\u{301}"), 1, "a combining accent takes no column");
    }

    #[test]
    fn cjk_and_emoji_cells_align_by_display_width() {
        let mut t = Table::new(&["NAME", ">RUNS", "NOTE"]);
        t.row(vec!["請求書".into(), "5".into(), "x".into()]);
        t.row(vec!["🚀 ship".into(), "12".into(), "y".into()]);
        t.row(vec!["plain".into(), "3".into(), "z".into()]);
        let text = t.render();
        let columns: Vec<usize> = text
            .lines()
            .map(|line| width(&line[..line.rfind(' ').unwrap()]))
            .collect();
        assert!(columns.windows(2).all(|w| w[0] == w[1]), "{columns:?}\n{text}");
    }

    #[test]
    fn json_runs_have_every_summary_column() {
        use chrono::TimeZone;
        let run = RunSummary {
            run_id: "r".into(),
            pipeline_id: "p".into(),
            pipeline_name: "P".into(),
            pipeline_version: "1".into(),
            status: flowstate_store::Status::Failed,
            current_step_index: 1,
            total_steps: 2,
            created_at: Some(Utc.with_ymd_and_hms(2026, 1, 31, 12, 0, 0).unwrap()),
            updated_at: None,
            error_message: None,
            execution_time_ms: Some(5),
            memory_usage_mb: None,
            error_message_bytes: None,
        };
        let v = run_json(&run);
        assert_eq!(v["created_at"], "2026-01-31T12:00:00.000000Z");
        assert_eq!(v["updated_at"], Value::Null);
        assert_eq!(v["status"], "failed");
        assert_eq!(v.as_object().unwrap().len(), 12);
    }

    #[test]
    fn json_documents_escape_what_a_terminal_would_obey() {
        let hostile = "a\u{1b}[2Jb\u{9b}31mc\u{7f}d\u{202e}e\u{2066}f\nline\u{0}";
        let doc = json_doc(&serde_json::json!({"name": hostile, "n": [1, 2]}));
        assert!(!doc.chars().any(|c| c != '\n' && is_unsafe(c)), "{doc:?}");
        assert!(
            doc.contains("\\u009b") && doc.contains("\\u202e") && doc.contains("\\u007f"),
            "{doc}"
        );
        let back: Value = serde_json::from_str(&doc).unwrap();
        assert_eq!(back["name"], hostile, "the same value");
        assert!(doc.lines().count() > 3, "still pretty: {doc}");
        let plain = json_doc(&serde_json::json!({"name": "日本 🚀"}));
        assert!(plain.contains("日本 🚀"), "other text stays as it is: {plain}");
    }

    #[test]
    fn key_values_align_and_indent() {
        let text = key_values(&[("a", "1".into()), ("long key", "x\ny".into())]);
        assert_eq!(text, "a         1\nlong key  x\n          y\n");
    }
}
