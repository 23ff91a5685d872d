//! `flowstate stats`: the seed's four figures.

use std::path::Path;

use flowstate_store::Status;
use serde_json::json;

use super::output::{json_doc, Table};
use super::{open, CliError};

/// Prints total runs, runs created in the last 24 hours, runs per status and the average execution time.
pub async fn run(db: &Path, json: bool) -> Result<String, CliError> {
    let store = open::read_only(db).await?;
    let stats = store.get_workflow_stats().await?;
    store.close().await;
    if json {
        return Ok(json_doc(&json!({
            "total_workflows": stats.total_workflows,
            "recent_workflows_24h": stats.recent_workflows_24h,
            "status_counts": stats.status_counts,
            "average_execution_time_ms": stats.average_execution_time_ms,
        })));
    }
    let mut out = super::output::key_values(&[
        ("total runs", stats.total_workflows.to_string()),
        ("created in the last 24 h", stats.recent_workflows_24h.to_string()),
        (
            "average execution time",
            // As the dashboard writes it (27.5 s, not 27466.0 ms).
            flowstate_app::format::duration_ms(stats.average_execution_time_ms),
        ),
    ]);
    out.push('\n');
    let mut table = Table::new(&["STATUS", ">RUNS", ">SHARE"]);
    // The five known statuses always, in the dashboard's order; values from old files after them.
    let mut names: Vec<String> = Status::KNOWN.iter().map(|s| s.as_str().to_string()).collect();
    names.extend(
        stats
            .status_counts
            .keys()
            .filter(|k| !names.contains(k))
            .cloned()
            .collect::<Vec<_>>(),
    );
    for name in names {
        let count = stats.status_counts.get(&name).copied().unwrap_or(0);
        let share = if stats.total_workflows > 0 {
            format!("{:.1}%", 100.0 * count as f64 / stats.total_workflows as f64)
        } else {
            "-".into()
        };
        table.row(vec![name, count.to_string(), share]);
    }
    out.push_str(&table.render());
    Ok(out)
}
