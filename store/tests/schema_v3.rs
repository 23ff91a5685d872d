//! Schema version 3: the five columns of flujo's PostgreSQL layout (`metadata`, `is_background_task`,
//! `parent_run_id`, `task_id`, `background_error`) on SQLite. A new file is flujo's table then those columns; a
//! version-2 file gains them in its one migration transaction, keeping every row and every value of the old
//! columns; a failed migration leaves the file as it was; a version-2 file opened read-only reads their defaults.

mod common;

use std::path::Path;

use common::*;
use flowstate_store::{
    ListQuery, RunExtras, SchemaKind, Status, Store, StoreOptions, TextColumn, WorkflowState, SCHEMA_VERSION,
};
use serde_json::json;
use sqlx::Connection;

/// flujo 0.4.35's columns, in its CREATE TABLE order.
const FLUJO_COLUMNS: [&str; 15] = [
    "run_id",
    "pipeline_id",
    "pipeline_name",
    "pipeline_version",
    "current_step_index",
    "pipeline_context",
    "last_step_output",
    "step_history",
    "status",
    "created_at",
    "updated_at",
    "total_steps",
    "error_message",
    "execution_time_ms",
    "memory_usage_mb",
];

const EXTRA_COLUMNS: [&str; 5] = [
    "metadata",
    "is_background_task",
    "parent_run_id",
    "task_id",
    "background_error",
];

const NOW: &str = "2026-03-01T12:00:00Z";

async fn table_info(db: &Path) -> Vec<(String, String, Option<String>)> {
    let mut conn = raw(db).await;
    let cols =
        sqlx::query_as("SELECT name, type, dflt_value FROM pragma_table_info('workflow_state') ORDER BY cid")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    conn.close().await.unwrap();
    cols
}

async fn schema_objects(db: &Path) -> Vec<(String, String, Option<String>)> {
    let mut conn = raw(db).await;
    let rows = sqlx::query_as("SELECT type, name, sql FROM sqlite_master ORDER BY type, name")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    rows
}

async fn exec(db: &Path, statements: &[&str]) {
    let mut conn = raw(db).await;
    for sql in statements {
        sqlx::query(sql)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    conn.close().await.unwrap();
}

/// A file as flowstate's schema version 2 left it: runs of every kind saved through the store, a few rows written
/// directly (as flujo does, odd spellings included), then the version-3 columns and indexes taken away again.
async fn schema_two_file(db: &Path) {
    let (store, _) = open_at(db, at(NOW)).await;
    let mut runs = Vec::new();
    for i in 0..120 {
        let mut s = WorkflowState::new(format!("run-{i:03}"), format!("pipeline-{}", i % 4));
        s.status = [Status::Completed, Status::Failed, Status::Running, Status::Paused][i % 4].clone();
        s.created_at = Some(at(NOW) - chrono::Duration::minutes(i as i64 * 7));
        s.updated_at = Some(at(NOW) - chrono::Duration::minutes(i as i64 * 3));
        s.pipeline_context = json!({"i": i, "text": "é 🚀", "nested": {"list": [1, 2.5, null]}});
        s.step_history = json!([{"name": "s1", "output": i}]);
        s.last_step_output = (i % 2 == 0).then(|| json!(format!("out {i}")));
        s.error_message = (i % 4 == 1).then(|| format!("ValueError: {i}\nline 2"));
        s.execution_time_ms = Some(i as i64 * 13);
        s.memory_usage_mb = (i % 3 == 0).then_some(i as f64 / 4.0);
        s.total_steps = 5;
        s.current_step_index = (i % 5) as i64;
        runs.push(s);
    }
    store.save_many(&runs).await.unwrap();
    store.close().await;
    exec(
        db,
        &[
            "INSERT INTO workflow_state (run_id, pipeline_id, pipeline_name, pipeline_version, pipeline_context, \
             status, created_at, updated_at, execution_time_ms, memory_usage_mb) VALUES \
             ('flujo-1', 'p', 'p', '1', '{}', 'completed', '2026-03-01 10:00:00', '2026-03-01T10:00:00.5', 12.5, 3), \
             ('flujo-2', 'p', 'p', '1', '{\"a\":1}', 'failed', '2026-02-28T10:00:00+02:00', \
              '2026-02-28T10:00:00.000001+00:00', NULL, NULL)",
            "DROP INDEX idx_flowstate_parent_created",
            "DROP INDEX idx_flowstate_background_created",
            "ALTER TABLE workflow_state DROP COLUMN metadata",
            "ALTER TABLE workflow_state DROP COLUMN is_background_task",
            "ALTER TABLE workflow_state DROP COLUMN parent_run_id",
            "ALTER TABLE workflow_state DROP COLUMN task_id",
            "ALTER TABLE workflow_state DROP COLUMN background_error",
            "UPDATE flowstate_meta SET value = '2' WHERE key = 'schema_version'",
        ],
    )
    .await;
    let names: Vec<String> = table_info(db).await.into_iter().map(|c| c.0).collect();
    assert_eq!(names, FLUJO_COLUMNS, "a version-2 table is flujo's");
}

fn read_only() -> StoreOptions {
    StoreOptions {
        read_only: true,
        clock: std::sync::Arc::new(flowstate_store::FixedClock::new(at(NOW))),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_new_file_is_flujos_table_then_the_five_columns() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("new.db");
    let store = Store::open(&db).await.unwrap();
    assert_eq!(store.migration().to_version, 4);
    assert_eq!(SCHEMA_VERSION, 4);
    store.close().await;
    let columns = table_info(&db).await;
    let names: Vec<&str> = columns.iter().map(|c| c.0.as_str()).collect();
    let want: Vec<&str> = FLUJO_COLUMNS
        .iter()
        .chain(EXTRA_COLUMNS.iter())
        .copied()
        .collect();
    assert_eq!(names, want);
    let extras: Vec<(&str, &str, Option<&str>)> = columns[15..]
        .iter()
        .map(|(n, t, d)| (n.as_str(), t.as_str(), d.as_deref()))
        .collect();
    assert_eq!(
        extras,
        [
            // Text columns without a declared type (see store/src/sqlite/schema.rs: the planner's row width).
            ("metadata", "", None),
            ("is_background_task", "INTEGER", Some("0")),
            ("parent_run_id", "", None),
            ("task_id", "", None),
            ("background_error", "", None),
        ]
    );
    // A writer that names only flujo's fifteen columns (flujo 0.4.35's INSERT OR REPLACE) gets the defaults.
    exec(
        &db,
        &["INSERT OR REPLACE INTO workflow_state (run_id, pipeline_id, pipeline_name, pipeline_version, \
           current_step_index, pipeline_context, last_step_output, status, created_at, updated_at, total_steps, \
           error_message, execution_time_ms, memory_usage_mb, step_history) VALUES ('f', 'p', 'p', '1', 0, '{}', \
           NULL, 'running', '2026-03-01T10:00:00', '2026-03-01T10:00:00', 0, NULL, NULL, NULL, '[]')"],
    )
    .await;
    assert_eq!(
        raw_rows(&db, &EXTRA_COLUMNS).await,
        [["NULL", "0", "NULL", "NULL", "NULL"]]
    );
    let store = Store::open(&db).await.unwrap();
    assert!(store.migration().is_noop(), "{:?}", store.migration());
    assert!(store.load_state("f").await.unwrap().unwrap().extras.is_empty());
    store.close().await;
}

#[tokio::test]
async fn schema_two_files_gain_the_columns_and_keep_every_row_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("v2.db");
    schema_two_file(&db).await;
    let before = raw_rows(&db, &FLUJO_COLUMNS).await;
    assert_eq!(before.len(), 122);
    let file_before = std::fs::read(&db).unwrap();

    // Read-only, before the migration: readable, the extras read as their defaults, the filters answer as on a
    // file where no run is a background task.
    let ro = Store::open_with(&db, read_only()).await.unwrap();
    assert_eq!(ro.migration().from, SchemaKind::Flowstate { version: 2 });
    let stats = ro.get_workflow_stats().await.unwrap();
    assert_eq!(stats.total_workflows, 122);
    let run = ro.load_state("run-001").await.unwrap().unwrap();
    assert!(run.extras.is_empty());
    assert_eq!(run.error_message.as_deref(), Some("ValueError: 1\nline 2"));
    assert_eq!(ro.export_runs(None, 500).await.unwrap().len(), 122);
    let view = ro.load_run_view("run-001", 100).await.unwrap().unwrap();
    assert!(!view.is_background_task && view.metadata.is_none() && view.parent_run_id.is_none());
    assert_eq!(
        ro.load_text_column("run-001", TextColumn::Metadata)
            .await
            .unwrap(),
        Some(None)
    );
    assert_eq!(
        ro.load_text_column("run-001", TextColumn::BackgroundError)
            .await
            .unwrap(),
        Some(None)
    );
    let listed = |background: Option<bool>, parent: Option<&str>| ListQuery {
        background,
        parent_run_id: parent.map(str::to_string),
        limit: Some(1000),
        ..Default::default()
    };
    assert!(ro
        .list_workflows(&listed(Some(true), None))
        .await
        .unwrap()
        .runs
        .is_empty());
    assert_eq!(
        ro.list_workflows(&listed(Some(false), None))
            .await
            .unwrap()
            .runs
            .len(),
        122
    );
    assert!(ro
        .list_workflows(&listed(None, Some("run-000")))
        .await
        .unwrap()
        .runs
        .is_empty());
    ro.close().await;
    assert_eq!(
        std::fs::read(&db).unwrap(),
        file_before,
        "a read-only open writes nothing"
    );

    // Writable: one migration adds the columns and the indexes, and records version 3; nothing else changes.
    let (store, _) = open_at(&db, at(NOW)).await;
    let report = store.migration().clone();
    assert_eq!(report.from, SchemaKind::Flowstate { version: 2 });
    assert_eq!(report.to_version, 4);
    for wanted in [
        "added column metadata (",
        "added column is_background_task INTEGER DEFAULT 0",
        "added column parent_run_id (",
        "added column task_id (",
        "added column background_error (",
        "created index idx_flowstate_parent_created",
        "created index idx_flowstate_background_created",
        "recorded schema version 4",
    ] {
        assert!(
            report.changes.iter().any(|c| c.starts_with(wanted)),
            "{wanted:?} not in {:#?}",
            report.changes
        );
    }
    assert_eq!(report.changes.len(), 8, "only those: {:#?}", report.changes);
    assert_eq!(
        raw_rows(&db, &FLUJO_COLUMNS).await,
        before,
        "every row and value kept"
    );
    assert!(raw_rows(&db, &EXTRA_COLUMNS)
        .await
        .iter()
        .all(|r| r == &["NULL", "0", "NULL", "NULL", "NULL"]));
    assert_eq!(store.get_workflow_stats().await.unwrap(), stats);
    assert!(store.verify_counters().await.unwrap().is_exact());

    // The new columns are written and read.
    let mut child = store.load_state("run-002").await.unwrap().unwrap();
    child.extras = RunExtras {
        metadata: Some(json!({"k": [1, "é"]})),
        is_background_task: true,
        parent_run_id: Some("run-000".into()),
        task_id: Some("t-2".into()),
        background_error: Some("boom".into()),
    };
    store.save_state(&child).await.unwrap();
    assert_eq!(store.load_state("run-002").await.unwrap().unwrap(), child);
    let children = store
        .list_workflows(&listed(None, Some("run-000")))
        .await
        .unwrap();
    assert_eq!(children.runs.len(), 1);
    store.close().await;

    // Idempotent; a read-only open now reads the columns.
    let (store, _) = open_at(&db, at(NOW)).await;
    assert!(store.migration().is_noop(), "{:?}", store.migration());
    store.close().await;
    let ro = Store::open_with(&db, read_only()).await.unwrap();
    assert_eq!(
        ro.load_state("run-002").await.unwrap().unwrap().extras,
        child.extras
    );
    assert_eq!(
        ro.list_workflows(&listed(Some(true), None))
            .await
            .unwrap()
            .runs
            .len(),
        1
    );
    ro.close().await;
}

#[tokio::test]
async fn a_schema_two_migration_that_fails_leaves_the_file_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("v2.db");
    schema_two_file(&db).await;
    // Recording the new version is the migration's last step: refusing it fails the migration after the columns
    // and indexes were added, inside the same transaction.
    exec(
        &db,
        &["CREATE TRIGGER refuse_version BEFORE UPDATE ON flowstate_meta \
           BEGIN SELECT RAISE(ABORT, 'schema version frozen'); END"],
    )
    .await;
    let rows = raw_rows(&db, &FLUJO_COLUMNS).await;
    let objects = schema_objects(&db).await;
    let file = std::fs::read(&db).unwrap();

    let failed = Store::open(&db).await;
    let err = failed.expect_err("the migration fails");
    assert!(err.to_string().contains("schema version frozen"), "{err}");
    assert_eq!(std::fs::read(&db).unwrap(), file, "no byte of the file changed");
    assert_eq!(schema_objects(&db).await, objects, "no column or index added");
    assert_eq!(raw_rows(&db, &FLUJO_COLUMNS).await, rows);

    exec(&db, &["DROP TRIGGER refuse_version"]).await;
    let store = Store::open(&db).await.unwrap();
    assert_eq!(store.migration().from, SchemaKind::Flowstate { version: 2 });
    assert_eq!(raw_rows(&db, &FLUJO_COLUMNS).await, rows);
    store.close().await;
}
