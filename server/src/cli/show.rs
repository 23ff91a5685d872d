//! `flowstate show RUN_ID`: every field of one run.

use std::path::Path;

use flowstate_store::{StoreError, WorkflowState};
use serde_json::{json, Value};

use super::output::{ago, bytes, duration_ms, json_doc, json_time, key_values, rfc3339, safe_text};
use super::{open, CliError};

/// JSON columns longer than this (pretty-printed) are cut in the human view.
const JSON_PREVIEW_BYTES: usize = 4 * 1024;

/// Prints one run: with `--json` every column as a key (JSON columns as JSON values), otherwise the error
/// first, aligned fields, then the JSON columns pretty-printed and size-guarded.
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
    Ok(human(&state, now))
}

/// Every column of a run, JSON columns as values and times as RFC 3339 UTC.
fn state_json(s: &WorkflowState) -> Value {
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
    })
}

fn human(s: &WorkflowState, now: chrono::DateTime<chrono::Utc>) -> String {
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
