//! `flowstate runs` and `flowstate failed`: lists of runs.

use std::path::Path;

use flowstate_store::{ListQuery, ListSort, RunSummary};
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
        pipeline_version: args.version,
        min_execution_ms: args.min_duration,
        max_execution_ms: args.max_duration,
        min_memory_mb: args.min_memory,
        max_memory_mb: args.max_memory,
        sort: args.sort,
        limit: Some(args.limit),
        offset: args.offset,
        cursor: args.cursor,
        ..Default::default()
    };
    let page = store.list_workflows(&query).await?;
    let total = store.count_runs(&query).await?;
    store.close().await;
    if json {
        return Ok(json_doc(&json!({
            "runs": page.runs.iter().map(run_json).collect::<Vec<_>>(),
            "next_cursor": page.next_cursor,
            "prev_cursor": page.prev_cursor,
            "sort": query.sort.as_str(),
            "total": { "count": total.count, "exact": total.exact },
        })));
    }
    let total_text = flowstate_app::format::run_total(total.count, total.exact);
    if page.runs.is_empty() {
        return Ok(format!("no runs match ({total_text} in all)\n"));
    }
    let mut out = runs_table(&page.runs);
    let order = if query.sort == ListSort::Newest {
        String::new()
    } else {
        format!(", {}", query.sort.label())
    };
    out.push_str(&format!(
        "\n{} runs shown of {total_text}{order}",
        page.runs.len()
    ));
    match &page.next_cursor {
        Some(cursor) => out.push_str(&format!("; next page: --cursor {cursor}\n")),
        None => out.push_str(" (last page)\n"),
    }
    if let Some(cursor) = &page.prev_cursor {
        out.push_str(&format!("previous page: --cursor {cursor}\n"));
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
        ">MEMORY",
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
            memory(r.memory_usage_mb),
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
        table.fit(8, columns);
    }
    table.render()
}

/// Memory in MB, `-` for none (as the table's other empty cells).
fn memory(mb: Option<f64>) -> String {
    match mb {
        None => "-".into(),
        mb => flowstate_app::format::memory_mb(mb),
    }
}
