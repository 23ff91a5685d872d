//! Files flowstate cannot use are refused with a clear error and left byte-for-byte as they were; a held lock
//! means waiting, then a clear "busy" error, never a fallback.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use flowstate_store::{Store, StoreError, StoreOptions};
use sqlx::Connection;

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[track_caller]
fn assert_unsupported(result: Result<Store, StoreError>, needle: &str) {
    match result {
        Err(e @ StoreError::UnsupportedFile { .. }) => {
            let text = e.to_string();
            assert!(
                text.contains(needle),
                "message {text:?} should mention {needle:?}"
            );
            assert!(text.contains("left unchanged"), "{text}");
        }
        other => panic!("expected UnsupportedFile, got {other:?}"),
    }
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused_and_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.db");
    std::fs::write(&path, b"these are my notes, not a database\n".repeat(300)).unwrap();
    let before = snapshot(dir.path());
    assert_unsupported(Store::open(&path).await, "not a SQLite database");
    assert_eq!(
        snapshot(dir.path()),
        before,
        "no byte changed, no file added or renamed"
    );
}

#[tokio::test]
async fn an_empty_file_is_refused_and_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.db");
    std::fs::write(&path, b"").unwrap();
    let before = snapshot(dir.path());
    assert_unsupported(Store::open(&path).await, "empty");
    assert_eq!(snapshot(dir.path()), before);
}

#[tokio::test]
async fn a_missing_folder_or_a_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-folder").join("state.db");
    match Store::open(&missing).await {
        Err(StoreError::CannotOpen { reason, .. }) => assert!(reason.contains("does not exist"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(
        !dir.path().join("no-such-folder").exists(),
        "no folder was created"
    );
    match Store::open(dir.path()).await {
        Err(StoreError::CannotOpen { reason, .. }) => assert!(reason.contains("directory"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // Read-only never creates a file.
    let ro = Store::open_with(
        dir.path().join("absent.db"),
        StoreOptions {
            read_only: true,
            ..Default::default()
        },
    )
    .await;
    assert!(matches!(ro, Err(StoreError::CannotOpen { .. })), "{ro:?}");
    assert!(!dir.path().join("absent.db").exists());
}

async fn make_db(path: &Path, sql: &[&str]) {
    use sqlx::ConnectOptions;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    for s in sql {
        sqlx::query(s).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();
}

#[tokio::test]
async fn databases_flowstate_cannot_migrate_are_refused_and_unchanged() {
    let cases: [(&str, &[&str], &str); 3] = [
        (
            "view.db",
            &["CREATE TABLE t (run_id TEXT)", "CREATE VIEW workflow_state AS SELECT run_id FROM t"],
            "is a view",
        ),
        (
            "no_run_id.db",
            &["CREATE TABLE workflow_state (id INTEGER PRIMARY KEY, payload TEXT)", "INSERT INTO workflow_state VALUES (1, 'x')"],
            "no run_id column",
        ),
        (
            "newer.db",
            &[
                "CREATE TABLE flowstate_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
                "INSERT INTO flowstate_meta VALUES ('schema_version', '99')",
                "CREATE TABLE workflow_state (run_id TEXT PRIMARY KEY, pipeline_id TEXT, pipeline_name TEXT, pipeline_version TEXT, current_step_index INTEGER, pipeline_context TEXT, last_step_output TEXT, step_history TEXT, status TEXT, created_at TEXT, updated_at TEXT, total_steps INTEGER, error_message TEXT, execution_time_ms INTEGER, memory_usage_mb REAL)",
            ],
            "newer flowstate",
        ),
    ];
    for (name, sql, needle) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        make_db(&path, sql).await;
        let before = snapshot(dir.path());
        assert_unsupported(Store::open(&path).await, needle);
        assert_eq!(snapshot(dir.path()), before, "{name} changed");
    }
}

#[tokio::test]
async fn a_writer_holding_the_lock_at_open_means_a_busy_error_after_waiting() {
    let dir = tempfile::tempdir().unwrap();
    // A flujo file that still needs flowstate's indexes, so opening must write.
    let path = copy_fixture("flujo-0.4.35-sample-300.db", dir.path());
    let mut holder = raw(&path).await;
    sqlx::query("BEGIN IMMEDIATE").execute(&mut holder).await.unwrap();
    sqlx::query("UPDATE workflow_state SET total_steps = total_steps WHERE 0")
        .execute(&mut holder)
        .await
        .unwrap();

    let started = std::time::Instant::now();
    let result = Store::open_with(
        &path,
        StoreOptions {
            busy_timeout: Duration::from_millis(300),
            ..Default::default()
        },
    )
    .await;
    let waited = started.elapsed();
    match result {
        Err(e @ StoreError::Busy { .. }) => assert!(e.to_string().contains("busy"), "{e}"),
        other => panic!("expected Busy, got {other:?}"),
    }
    assert!(
        waited >= Duration::from_millis(250),
        "it waited for the lock ({waited:?})"
    );
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    holder.close().await.unwrap();

    // Nothing was renamed aside, and once the lock is gone the same file opens and keeps its 300 runs.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains("corrupt")), "{names:?}");
    let store = Store::open(&path).await.unwrap();
    assert_eq!(store.get_workflow_stats().await.unwrap().total_workflows, 300);
}

#[tokio::test]
async fn sql_instant_agrees_with_rust_parsing_on_every_spelling() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.db");
    Store::open(&path).await.unwrap().close().await;
    let mut conn = raw(&path).await;
    let expr = flowstate_store::time::instant_sql("?1");
    let spellings = [
        "2025-07-19T12:34:56.789012",
        "2025-07-19T12:34:56",
        "2025-07-19T12:34:56.000005+00:00",
        "2025-07-19T12:34:56-07:00",
        "2025-07-19T12:34:56.999999+05:30",
        "2025-07-19 12:34:56",
        "2025-07-19 12:34:56.123456",
        "2025-07-19T12:34:56.5Z",
        "2025-07-19T12:34:56.123Z",
        "2025-12-31T23:59:59.999999",
        "1969-12-31T23:59:59.250000",
        "1901-03-04T05:06:07",
        "9999-12-31T23:59:59.999999+00:00",
        "2025-07-19T12:34:56.789012+00:00",
    ];
    for s in spellings {
        let sql_us: i64 = sqlx::query_scalar(&format!("SELECT {expr}"))
            .bind(s)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let rust_us = flowstate_store::time::parse_timestamp(s)
            .unwrap()
            .timestamp_micros();
        assert_eq!(sql_us, rust_us, "{s}");
    }
    for junk in ["", "garbage", "2025-13-45T99:00:00"] {
        let sql_us: i64 = sqlx::query_scalar(&format!("SELECT {expr}"))
            .bind(junk)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(sql_us, flowstate_store::time::UNKNOWN_INSTANT, "{junk:?}");
        assert_eq!(flowstate_store::time::parse_timestamp(junk), None);
    }
    let null_us: i64 = sqlx::query_scalar(&format!("SELECT {}", flowstate_store::time::instant_sql("NULL")))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(null_us, flowstate_store::time::UNKNOWN_INSTANT);
}
