//! `flowstate pipelines`: the Pipelines page's table in a terminal and as JSON, equal to the store's figures.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use chrono::{Duration, DurationRound, Utc};
use flowstate_store::{Status, Store, WorkflowState};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_flowstate");

fn run(db: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .env_remove("FLOWSTATE_DB")
        .env_remove("FLOWSTATE_LOG")
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .expect("the flowstate binary runs")
}

#[tokio::test]
async fn pipelines_prints_each_pipelines_figures_as_the_store_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = support::db_location(dir.path(), "pipelines.db");
    let now = Utc::now();
    let store = Store::open(&db).await.unwrap();
    let mut runs = Vec::new();
    for i in 0..60i64 {
        let mut s = WorkflowState::new(
            format!("r{i}"),
            if i % 3 == 0 { "billing" } else { "search\u{1b}[2J" },
        );
        s.status = match i % 5 {
            0 => Status::Failed,
            1 => Status::Running,
            _ => Status::Completed,
        };
        s.updated_at = Some(now - Duration::minutes(i * 37));
        s.execution_time_ms = Some(100 * i);
        s.memory_usage_mb = Some(10.0 + i as f64);
        runs.push(s);
    }
    store.save_many(&runs).await.unwrap();
    let since = (now - Duration::hours(12))
        .duration_trunc(Duration::hours(1))
        .unwrap();
    let report = store.pipeline_report(since).await.unwrap();
    store.close().await;

    let at = since.to_rfc3339();
    let out = run(&db, &["pipelines", "--since", &at, "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = doc["pipelines"].as_array().unwrap();
    assert_eq!(rows.len(), report.pipelines.len());
    for (row, p) in rows.iter().zip(&report.pipelines) {
        assert_eq!(row["pipeline_id"], p.pipeline_id.as_str());
        assert_eq!(row["runs"], p.runs);
        assert_eq!(row["failed"], p.failed);
        assert_eq!(row["finished"], p.finished);
        assert_eq!(row["failure_rate"].as_f64(), p.failure_rate);
        assert_eq!(row["p95_ms"].as_f64(), p.time.p95);
    }
    assert!(
        report.pipelines.iter().any(|p| p.status("running") > 0),
        "running runs are counted"
    );

    let out = run(&db, &["pipelines", "--since", &at]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("billing"), "{text}");
    assert!(text.contains("FAILED/FINISHED"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "terminal escapes in a pipeline id are not printed: {text}"
    );

    let out = run(&db, &["pipelines", "--since", "yesterday-ish"]);
    assert_eq!(out.status.code(), Some(2), "a bad --since is a usage error");
}
