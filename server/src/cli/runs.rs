//! `flowstate runs` and `flowstate failed`: lists of runs.

use std::path::Path;

use flowstate_store::{ListQuery, RunSummary};
use serde_json::{json, Value};

use super::output::{duration_ms, human_time, json_doc, run_json, truncate, Table};
use super::{open, CliError, FailedArgs, RunsArgs};

/// Widest error message shown in a table when the width of the output is unknown (not a terminal, no
/// `COLUMNS`); on a terminal the column takes what the others leave. `flowstate show` has the whole text.
const ERROR_COLUMNS: usize = 60;

/// Lists runs newest first, one page per call.
pub async fn list(db: &Path, args: RunsArgs, json: bool) -> Result<String, CliError> {
    let store = open::read_only(db).await?;
    let now = store.now();
    let created_after = args.since.as_ref().map(|w| w.resolve(now));
    let created_before = args.until.as_ref().map(|w| w.resolve(now));
    if let (Some(since), Some(until)) = (created_after, created_before) {
        if since >= until {
            return Err(CliError::Usage(format!(
                "--since ({}) must be before --until ({})",
                super::output::rfc3339(&since),
                super::output::rfc3339(&until)
            )));
        }
    }
    let query = ListQuery {
        statuses: args.statuses,
        pipeline_id: args.pipeline,
        created_after,
        created_before,
        run_id_prefix: args.prefix,
        error_contains: args.search,
        parent_run_id: args.parent,
        background: match (args.background, args.no_background) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
        limit: Some(args.limit),
        offset: args.offset,
        cursor: args.cursor,
        ..Default::default()
    };
    let page = store.list_workflows(&query).await?;
    store.close().await;
    if json {
        return Ok(json_doc(&json!({
            "runs": page.runs.iter().map(run_json).collect::<Vec<_>>(),
            "next_cursor": page.next_cursor,
        })));
    }
    if page.runs.is_empty() {
        return Ok("no runs match\n".into());
    }
    let mut out = runs_table(&page.runs);
    match &page.next_cursor {
        Some(cursor) => out.push_str(&format!(
            "\n{} runs shown; next page: --cursor {cursor}\n",
            page.runs.len()
        )),
        None => out.push_str(&format!("\n{} runs shown (last page)\n", page.runs.len())),
    }
    Ok(out)
}

/// Failed runs whose last update lies in the last `--hours` hours.
pub async fn failed(db: &Path, args: FailedArgs, json: bool) -> Result<String, CliError> {
    let store = open::read_only(db).await?;
    let runs = store.get_failed_workflows(args.hours, args.limit).await?;
    store.close().await;
    if json {
        return Ok(json_doc(&json!({
            "runs": runs.iter().map(run_json).collect::<Vec<_>>(),
            "next_cursor": Value::Null,
        })));
    }
    if runs.is_empty() {
        return Ok(format!("no failed runs in the last {} h\n", args.hours));
    }
    let mut out = runs_table(&runs);
    let more = if runs.len() as u32 == args.limit {
        " (the limit; --limit N shows more)".to_string()
    } else {
        String::new()
    };
    out.push_str(&format!(
        "\n{} failed runs updated in the last {} h{more}\n",
        runs.len(),
        args.hours
    ));
    Ok(out)
}

fn runs_table(runs: &[RunSummary]) -> String {
    let mut table = Table::new(&[
        "RUN ID",
        "PIPELINE",
        "STATUS",
        ">STEP",
        "CREATED (UTC)",
        "UPDATED (UTC)",
        ">EXEC TIME",
        "ERROR",
    ]);
    let fit = super::output::terminal_columns();
    for r in runs {
        table.row(vec![
            r.run_id.clone(),
            truncate(&r.pipeline_id, 32),
            r.status.to_string(),
            super::output::step(r.current_step_index, r.total_steps),
            human_time(&r.created_at),
            human_time(&r.updated_at),
            duration_ms(r.execution_time_ms),
            // Cut after making it one line, so a traceback does not eat the column; on a terminal, cut to what
            // the other columns leave (below).
            match fit {
                Some(_) => super::output::one_line(r.error_message.as_deref().unwrap_or("")),
                None => truncate(
                    &super::output::one_line(r.error_message.as_deref().unwrap_or("")),
                    ERROR_COLUMNS,
                ),
            },
        ]);
    }
    if let Some(columns) = fit {
        table.fit(7, columns);
    }
    table.render()
}
