//! `flowstate pipelines`: the Pipelines page's table in a terminal: per pipeline, runs last updated since
//! `--since` (24 h by default; rounded down to the hour), the failure rate of finished runs, execution-time mean
//! and percentiles, memory, the newest run (`flowstate_store::pipelines`).

use std::path::Path;

use serde_json::json;

use super::output::{json_doc, json_time, one_line, safe_text, truncate, Table};
use super::when::When;
use super::{open, CliError};

/// Prints every pipeline's figures since `since` (24 h before now when `None`).
pub async fn run(db: &Path, since: Option<When>, json: bool) -> Result<String, CliError> {
    let store = open::read_only(db).await?;
    let now = store.now();
    let start = since
        .unwrap_or(When::Ago(chrono::Duration::hours(24)))
        .resolve(now)
        .min(now);
    let report = store.pipeline_report(start).await;
    store.close().await;
    let report = report?;
    if json {
        let rows: Vec<serde_json::Value> = report
            .pipelines
            .iter()
            .map(|p| {
                json!({
                    "pipeline_id": p.pipeline_id,
                    "runs": p.runs,
                    "statuses": p.statuses,
                    "finished": p.finished,
                    "failed": p.failed,
                    "failure_rate": p.failure_rate,
                    "avg_ms": p.avg_ms,
                    "p50_ms": p.time.p50,
                    "p95_ms": p.time.p95,
                    "p99_ms": p.time.p99,
                    "timed": p.time.count,
                    "avg_memory_mb": p.avg_memory_mb,
                    "max_memory_mb": p.max_memory_mb,
                    "memory_runs": p.memory_runs,
                    "last_run": p.last_run.as_ref().map(|(id, at)| json!({"run_id": id, "created_at": json_time(at)})),
                })
            })
            .collect();
        return Ok(json_doc(&json!({
            "since": json_time(&Some(report.since)),
            "relative_error": report.relative_error,
            "pipelines": rows,
        })));
    }
    let ms = |v: Option<f64>| super::output::duration_ms(v.map(|v| v.round() as i64));
    let mb = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1} MB"));
    let mut table = Table::new(&[
        "PIPELINE",
        ">RUNS",
        ">FAILED",
        ">FAILED/FINISHED",
        ">MEAN",
        ">P50",
        ">P95",
        ">P99",
        ">MEAN MEM",
        ">MAX MEM",
        "NEWEST RUN",
    ]);
    for p in &report.pipelines {
        table.row(vec![
            truncate(&one_line(&safe_text(&p.pipeline_id)), 40),
            p.runs.to_string(),
            p.failed.to_string(),
            p.failure_rate
                .map_or("-".into(), |r| format!("{:.1}%", r * 100.0)),
            ms(p.avg_ms),
            ms(p.time.p50),
            ms(p.time.p95),
            ms(p.time.p99),
            mb(p.avg_memory_mb),
            mb(p.max_memory_mb),
            p.last_run
                .as_ref()
                .map_or("-".into(), |(id, _)| truncate(&one_line(&safe_text(id)), 40)),
        ]);
    }
    let mut out = format!(
        "runs last updated since {} (UTC, from the start of that hour); the failure rate counts finished runs \
         only; percentiles and max memory within {:.1} %\n\n",
        report.since.format("%Y-%m-%d %H:%M"),
        report.relative_error * 100.0
    );
    if report.pipelines.is_empty() {
        out.push_str("no run was updated in the window\n");
    } else {
        out.push_str(&table.render());
    }
    Ok(out)
}
