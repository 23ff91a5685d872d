//! `flowstate show RUN_ID`: every field of one run, and its steps as the dashboard's run page lists them (the
//! same reading, [`flowstate_model::steps`]).

use std::path::Path;

use flowstate_model::steps::{steps_of_value, Outcome, StepList};
use flowstate_store::{StoreError, WorkflowState};
use serde_json::{json, Value};

use super::output::{
    ago, bytes, duration_ms, json_doc, json_time, key_values, one_line, rfc3339, safe_text, terminal_columns,
    truncate, Table,
};
use super::{open, CliError};

/// JSON columns longer than this (pretty-printed) are cut in the human view.
const JSON_PREVIEW_BYTES: usize = 4 * 1024;
/// Widest step name shown when the width of the output is unknown (not a terminal, no `COLUMNS`).
const NAME_COLUMNS: usize = 60;

/// Prints one run: with `--json` every column as a key (JSON columns as JSON values) and its `steps`, otherwise
/// the error first, aligned fields, the steps (the failing one first), then the JSON columns pretty-printed and
/// size-guarded.
pub async fn run(db: &Path, run_id: &str, json: bool) -> Result<String, CliError> {
    let store = open::read_only(db).await?;
    let now = store.now();
    let state = store.load_state(run_id).await?;
    store.close().await;
    let state = state.ok_or_else(|| StoreError::NotFound {
        run_id: run_id.to_string(),
    })?;
    if json {
        return Ok(json_doc(&state_json(&state)));
    }
    Ok(human(&state, now, terminal_columns()))
}

/// Every column of a run, JSON columns as values and times as RFC 3339 UTC; then its steps as the run page lists
/// them (`steps`: number, name, outcome, duration_ms, attempts, output_bytes, feedback), whether that is every
/// step (`steps_complete`) and why not (`steps_note`).
fn state_json(s: &WorkflowState) -> Value {
    let steps = steps_of_value(&s.step_history);
    json!({
        "run_id": s.run_id,
        "pipeline_id": s.pipeline_id,
        "pipeline_name": s.pipeline_name,
        "pipeline_version": s.pipeline_version,
        "current_step_index": s.current_step_index,
        "pipeline_context": s.pipeline_context,
        "last_step_output": s.last_step_output,
        "step_history": s.step_history,
        "status": s.status,
        "created_at": json_time(&s.created_at),
        "updated_at": json_time(&s.updated_at),
        "total_steps": s.total_steps,
        "error_message": s.error_message,
        "execution_time_ms": s.execution_time_ms,
        "memory_usage_mb": s.memory_usage_mb,
        "metadata": s.extras.metadata,
        "is_background_task": s.extras.is_background_task,
        "parent_run_id": s.extras.parent_run_id,
        "task_id": s.extras.task_id,
        "background_error": s.extras.background_error,
        "steps": steps.steps,
        "steps_complete": steps.complete,
        "steps_note": steps.note,
    })
}

/// The steps for people: how many, the failing step called out (its name, attempts, time and the first line of
/// its feedback), then a table of every step with the failed ones marked `!`. `columns` is the terminal's width
/// (`None`: not a terminal; then names keep a fixed bound). Every text is made safe for a terminal.
fn steps_text(list: &StepList, columns: Option<usize>) -> String {
    let mut out = format!("steps: {}", list.count_text());
    if list.steps.is_empty() {
        out.push('\n');
    } else {
        out.push_str(", in the order they ran\n");
    }
    if let Some(s) = list.failing() {
        let mut line = format!("Failed at step {}", s.number);
        if !s.name.is_empty() {
            line.push_str(&format!(": {}", one_line(&s.name)));
        }
        line.push_str(&s.attempts_phrase());
        if let Some(ms) = s.duration_ms {
            line.push_str(&format!(" ({})", flowstate_app::format::duration_ms(ms)));
        }
        let fitted = |text: &str, indent: usize| match columns {
            Some(c) => truncate(text, c.saturating_sub(indent).max(20)),
            None => text.to_string(),
        };
        out.push_str(&fitted(&line, 0));
        out.push('\n');
        if let Some(feedback) = &s.feedback {
            out.push_str(&format!("  {}\n", fitted(&one_line(feedback), 2)));
        }
    }
    if let Some(note) = &list.note {
        out.push_str(&one_line(note));
        out.push('\n');
    }
    if list.steps.is_empty() {
        return out;
    }
    // The mark column only when a step failed (otherwise every line would start with blanks).
    let marked = list.failing().is_some();
    let headers = ["", ">#", "STEP", "OUTCOME", ">DURATION", ">ATTEMPTS", ">OUTPUT"];
    let mut table = Table::new(&headers[usize::from(!marked)..]);
    for s in &list.steps {
        let name = if s.name.is_empty() {
            "(no name)".to_string()
        } else {
            one_line(&s.name)
        };
        let mut cells = Vec::with_capacity(headers.len());
        if marked {
            cells.push(if s.outcome == Outcome::Failed { "!" } else { "" }.to_string());
        }
        cells.extend([
            s.number.to_string(),
            match columns {
                Some(_) => name,
                None => truncate(&name, NAME_COLUMNS),
            },
            s.outcome.label().to_string(),
            s.duration_ms
                .map_or_else(|| "-".to_string(), flowstate_app::format::duration_ms),
            s.attempts.map_or_else(|| "-".to_string(), |a| a.to_string()),
            s.output_bytes.map_or_else(|| "none".to_string(), bytes),
        ]);
        table.row(cells);
    }
    if let Some(c) = columns {
        table.fit(1 + usize::from(marked), c);
    }
    out.push('\n');
    out.push_str(&table.render());
    out
}

fn human(s: &WorkflowState, now: chrono::DateTime<chrono::Utc>, columns: Option<usize>) -> String {
    let time = |at: &Option<chrono::DateTime<chrono::Utc>>| match at {
        Some(t) => format!("{} ({})", rfc3339(t), ago(t, now)),
        None => "- (missing or unreadable)".into(),
    };
    let mut pairs: Vec<(&str, String)> = Vec::new();
    if let Some(error) = &s.error_message {
        pairs.push(("error_message", error.clone()));
    }
    pairs.extend([
        ("run_id", s.run_id.clone()),
        ("status", s.status.to_string()),
        ("pipeline_id", s.pipeline_id.clone()),
        ("pipeline_name", s.pipeline_name.clone()),
        ("pipeline_version", s.pipeline_version.clone()),
        // The stored 0-based index, and the step as the dashboard counts it (1-based).
        (
            "current_step_index",
            format!(
                "{} ({})",
                s.current_step_index,
                flowstate_app::model::step_text(s.current_step_index, s.total_steps)
            ),
        ),
        ("total_steps", s.total_steps.to_string()),
        ("created_at", time(&s.created_at)),
        ("updated_at", time(&s.updated_at)),
        (
            "execution_time_ms",
            match s.execution_time_ms {
                Some(ms) => format!("{ms} ({})", duration_ms(Some(ms))),
                None => "-".into(),
            },
        ),
        (
            "memory_usage_mb",
            s.memory_usage_mb
                .map(|m| format!("{m:.3}"))
                .unwrap_or_else(|| "-".into()),
        ),
    ]);
    // flujo's PostgreSQL-only columns, when a run has any of them.
    let extras = &s.extras;
    if !extras.is_empty() {
        let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        pairs.extend([
            (
                "is_background_task",
                if extras.is_background_task { "yes" } else { "no" }.to_string(),
            ),
            ("parent_run_id", or_dash(&extras.parent_run_id)),
            ("task_id", or_dash(&extras.task_id)),
            ("background_error", or_dash(&extras.background_error)),
        ]);
    }
    let mut out = key_values(&pairs);
    out.push('\n');
    out.push_str(&steps_text(&steps_of_value(&s.step_history), columns));
    let steps = s.step_history.as_array().map(Vec::len);
    let mut columns: Vec<(&str, Option<&Value>, String)> = vec![
        ("pipeline_context", Some(&s.pipeline_context), String::new()),
        ("last_step_output", s.last_step_output.as_ref(), String::new()),
        (
            "step_history",
            Some(&s.step_history),
            steps.map(|n| format!(", {n} steps")).unwrap_or_default(),
        ),
    ];
    if !extras.is_empty() {
        columns.push(("metadata", extras.metadata.as_ref(), String::new()));
    }
    for (name, value, extra) in columns {
        out.push('\n');
        match value {
            None => out.push_str(&format!("{name}: NULL\n")),
            Some(v) => {
                let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| "null".into());
                out.push_str(&format!("{name} ({}{extra}):\n", bytes(text.len())));
                out.push_str(&safe_text(&cut(&text, JSON_PREVIEW_BYTES, &s.run_id)));
                out.push('\n');
            }
        }
    }
    out
}

/// The first `max` bytes of `text`, cut at a line end (or a character boundary), with a note saying how much
/// was left out and how to see everything.
fn cut(text: &str, max: usize, run_id: &str) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    if let Some(line_end) = text[..end].rfind('\n') {
        if line_end > max / 2 {
            end = line_end;
        }
    }
    format!(
        "{}\n… cut: showing {} of {}; `flowstate show {} --json` prints everything",
        &text[..end],
        bytes(end),
        bytes(text.len()),
        shell_word(run_id)
    )
}

/// A run id as it could be typed in a shell.
fn shell_word(text: &str) -> String {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/'))
    {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::output::width;

    #[test]
    fn the_steps_fit_the_width_and_show_nothing_raw() {
        let list = steps_of_value(&json!([
            {"name": "ok", "success": true, "latency_s": 0.5},
            {"name": format!("bad\u{1b}[31m{}", "x".repeat(150)), "success": false, "attempts": 2,
             "feedback": "\u{1b}]52;c;cHduZWQ=\u{7}why\nnext"},
        ]));
        for columns in [Some(60), Some(80), None] {
            let text = steps_text(&list, columns);
            assert!(!text.contains('\u{1b}') && !text.contains('\u{7}'), "{text:?}");
            assert!(text.contains("Failed at step 2: bad\u{FFFD}[31m"), "{text}");
            assert!(!text.contains("next"), "the feedback's first line: {text}");
            if let Some(c) = columns {
                assert!(text.lines().all(|l| width(l) <= c), "{c}: {text}");
            } else {
                assert!(text.lines().all(|l| width(l) <= 200), "{text}");
            }
            assert!(
                text.lines().any(|l| l.starts_with("!  2  bad")),
                "the failed row is marked: {text}"
            );
        }
    }

    #[test]
    fn large_values_are_cut_with_a_note() {
        let text = "line of text\n".repeat(1000);
        let shown = cut(&text, JSON_PREVIEW_BYTES, "run_1");
        assert!(shown.len() < JSON_PREVIEW_BYTES + 200);
        assert!(
            shown.contains("`flowstate show run_1 --json` prints everything"),
            "{shown}"
        );
        assert_eq!(cut("short", JSON_PREVIEW_BYTES, "r"), "short");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }
}
