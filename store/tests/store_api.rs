//! The store's API on real databases: every method, every filter, validation, and time windows by the real instant
//! with an injected clock. The tests in `both_backends!` run on a SQLite file and on a PostgreSQL database; the
//! others are about SQLite files (text spellings of time, WAL, query plans).

mod common;

use chrono::{Duration, Utc};
use common::backends::OtherRow;
use common::*;
use flowstate_store::{
    CleanupPolicy, ListQuery, RunExtras, Status, Store, StoreError, TextColumn, WorkflowState, CLEANUP_BATCH,
    MAX_JSON_BYTES,
};
use serde_json::json;
use sqlx::Connection;

/// Inserts a row as another writer (flujo) would, with timestamps spelled exactly as given.
async fn raw_insert(
    path: &std::path::Path,
    run_id: &str,
    pipeline: &str,
    status: &str,
    created: &str,
    updated: &str,
    error: Option<&str>,
) {
    let mut conn = raw(path).await;
    sqlx::query(
        "INSERT OR REPLACE INTO workflow_state (run_id, pipeline_id, pipeline_name, pipeline_version, \
         current_step_index, pipeline_context, last_step_output, status, created_at, updated_at, total_steps, \
         error_message, execution_time_ms, memory_usage_mb, step_history) \
         VALUES (?1, ?2, ?2, '1.0', 1, '{\"k\": 1}', NULL, ?3, ?4, ?5, 3, ?6, 100, 1.5, '[]')",
    )
    .bind(run_id)
    .bind(pipeline)
    .bind(status)
    .bind(created)
    .bind(updated)
    .bind(error)
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
}

fn run(id: &str, pipeline: &str, status: Status, created: &str) -> WorkflowState {
    let mut s = WorkflowState::new(id, pipeline);
    s.status = status;
    s.created_at = Some(at(created));
    s.updated_at = Some(at(created));
    s
}

#[track_caller]
fn assert_invalid(result: Result<impl std::fmt::Debug, StoreError>, field: &str) {
    match result {
        Err(StoreError::InvalidInput { field: f, .. }) if f == field => {}
        other => panic!("expected InvalidInput on {field}, got {other:?}"),
    }
}

#[tokio::test]
async fn fresh_file_has_wal_flujo_table_and_the_seed_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("new.db");
    let store = Store::open(&db).await.unwrap();
    assert!(db.exists());
    store.close().await;
    let mut conn = raw(&db).await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'workflow_state'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    for name in [
        "idx_workflow_state_status",
        "idx_workflow_state_pipeline_id",
        "idx_workflow_state_created_at",
        "idx_workflow_state_updated_at",
        "idx_workflow_state_status_updated",
        "idx_workflow_state_pipeline_status",
    ] {
        assert!(indexes.iter().any(|i| i == name), "missing {name}: {indexes:?}");
    }
    // The CHECK constraint is flujo's: a sixth status is refused by SQLite itself.
    let bad = sqlx::query(
        "INSERT INTO workflow_state (run_id, pipeline_id, pipeline_name, pipeline_version, pipeline_context, \
         status, created_at, updated_at) VALUES ('x', 'p', 'p', '1', '{}', 'pending', 'a', 'b')",
    )
    .execute(&mut conn)
    .await;
    assert!(bad.is_err());
}

#[tokio::test]
async fn time_windows_count_by_the_real_instant_whatever_the_spelling() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let now = at("2026-01-02T12:00:00Z");
    let (store, clock) = open_at(&db, now).await;
    // (run id, created/updated text, inside the 24 h window?)
    let rows = [
        ("in_naive_23h", "2026-01-01T13:00:00", true),
        ("out_naive_25h_same_day", "2026-01-01T11:00:00", false), // flujo counts this one: same calendar day
        ("in_offset_minus7", "2026-01-01T06:30:00-07:00", true),  // 13:30Z
        ("out_offset_plus2", "2026-01-01T13:30:00+02:00", false), // 11:30Z, though its text looks later
        ("edge_exact_24h", "2026-01-01T12:00:00+00:00", true),    // >= cutoff
        ("out_by_1us", "2026-01-01T11:59:59.999999", false),
        ("in_by_1us", "2026-01-01T12:00:00.000001", true),
        ("in_space_sqlite", "2026-01-02 01:00:00", true),
        ("in_z", "2026-01-02T11:59:59.5Z", true),
        ("old_week", "2025-12-26T12:00:00.123456", false),
    ];
    for (id, t, _) in rows {
        raw_insert(&db, id, "p", "failed", t, t, Some("boom")).await;
    }
    let want: Vec<&str> = rows.iter().filter(|r| r.2).map(|r| r.0).collect();

    let stats = store.get_workflow_stats().await.unwrap();
    assert_eq!(stats.recent_workflows_24h as usize, want.len());
    let failed = store.get_failed_workflows(24, 100).await.unwrap();
    let mut got: Vec<&str> = failed.iter().map(|r| r.run_id.as_str()).collect();
    got.sort();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(got, want_sorted);
    // Newest update first, by instant: the -07:00 row (13:30Z) comes after 'in_z' and 'in_space_sqlite'.
    let order: Vec<&str> = failed.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(
        order,
        vec![
            "in_z",
            "in_space_sqlite",
            "in_offset_minus7",
            "in_naive_23h",
            "in_by_1us",
            "edge_exact_24h"
        ]
    );

    let listed = store
        .list_workflows(&ListQuery {
            created_after: Some(now - Duration::hours(24)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.runs.len(), want.len());

    // Cleanup by last activity: older than 1 day means updated before 2026-01-01T12:00Z.
    let preview = store
        .preview_cleanup(&CleanupPolicy::older_than_days(1))
        .await
        .unwrap();
    assert_eq!(preview.matched, 4);
    assert_eq!(preview.oldest_updated_at, Some(at("2025-12-26T12:00:00.123456Z")));
    assert_eq!(preview.newest_updated_at, Some(at("2026-01-01T11:59:59.999999Z")));

    // The clock is the store's: a day later, the 24 h window is empty.
    clock.advance(Duration::days(2));
    assert_eq!(store.get_workflow_stats().await.unwrap().recent_workflows_24h, 0);
    assert!(store.get_failed_workflows(24, 100).await.unwrap().is_empty());
}

#[tokio::test]
async fn list_and_window_queries_use_the_instant_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("plan.db");
    let store = Store::open(&db).await.unwrap();
    store.close().await;
    let mut conn = raw(&db).await;
    let created = flowstate_store::time::instant_sql("created_at");
    let updated = flowstate_store::time::instant_sql("updated_at");
    for (sql, index) in [
        (
            format!("SELECT run_id FROM workflow_state WHERE status IN ('failed') ORDER BY {created} DESC, run_id DESC LIMIT 50"),
            "idx_flowstate_status_created",
        ),
        (
            format!("SELECT run_id FROM workflow_state ORDER BY {created} DESC, run_id DESC LIMIT 50"),
            "idx_flowstate_created",
        ),
        (
            format!("SELECT run_id FROM workflow_state WHERE status = 'failed' AND {updated} >= 0 ORDER BY {updated} DESC, run_id DESC LIMIT 50"),
            "idx_flowstate_status_activity",
        ),
        // Slowest first (schema version 6): runs sharing a time in run-id order from the index, on the first page
        // and on a keyset page either way (a run page's neighbours), without reading the rows to sort them.
        (
            "SELECT run_id FROM workflow_state WHERE typeof(execution_time_ms) IN ('integer', 'real') \
                     ORDER BY execution_time_ms DESC, run_id DESC LIMIT 50".to_string(),
            "idx_flowstate_timed",
        ),
        (
            "SELECT run_id FROM workflow_state WHERE typeof(execution_time_ms) IN ('integer', 'real') \
                     AND execution_time_ms <= 5.0 AND (execution_time_ms < 5.0 OR run_id < 'r5') \
                     ORDER BY execution_time_ms DESC, run_id DESC LIMIT 2".to_string(),
            "idx_flowstate_timed",
        ),
        (
            "SELECT run_id FROM workflow_state WHERE typeof(execution_time_ms) IN ('integer', 'real') \
                     AND execution_time_ms >= 5.0 AND (execution_time_ms > 5.0 OR run_id > 'r5') \
                     ORDER BY execution_time_ms ASC, run_id ASC LIMIT 2".to_string(),
            "idx_flowstate_timed",
        ),
        (
            "SELECT run_id FROM workflow_state WHERE pipeline_id = 'p' AND typeof(execution_time_ms) IN \
                     ('integer', 'real') ORDER BY execution_time_ms DESC, run_id DESC LIMIT 50".to_string(),
            "idx_flowstate_pipeline_timed",
        ),
    ] {
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
            .fetch_all(&mut conn)
            .await
            .unwrap();
        let text: Vec<&str> = plan.iter().map(|p| p.3.as_str()).collect();
        assert!(text.iter().any(|t| t.contains(index)), "{index} not used: {text:?}");
        assert!(!text.iter().any(|t| t.contains("TEMP B-TREE")), "sorts instead of reading in order: {text:?}");
    }
}

#[tokio::test]
async fn normal_durability_and_read_only_mode() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("d.db");
    let store = Store::open_with(
        &db,
        flowstate_store::StoreOptions {
            durability: flowstate_store::Durability::Normal,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    store.save_state(&WorkflowState::new("x", "p")).await.unwrap();
    store.close().await;

    let ro = Store::open_with(
        &db,
        flowstate_store::StoreOptions {
            read_only: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(ro.is_read_only());
    assert_eq!(ro.get_workflow_stats().await.unwrap().total_workflows, 1);
    assert!(matches!(
        ro.save_state(&WorkflowState::new("y", "p")).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(ro.delete_state("x").await, Err(StoreError::Conflict(_))));
    let _ = Utc::now();
}

/// A run with every column of [`RunExtras`] set (flujo's PostgreSQL-only columns).
fn background_task(run_id: &str, parent: &str, created: &str) -> WorkflowState {
    let mut s = WorkflowState::new(run_id, "p");
    s.created_at = Some(at(created));
    s.extras = RunExtras {
        metadata: Some(json!({"tags": ["é", 1, null], "nested": {"deep": [true, {"x": 2.5}]}})),
        is_background_task: true,
        parent_run_id: Some(parent.to_string()),
        task_id: Some(format!("task-{run_id}")),
        background_error: Some("TimeoutError: <b>30 s</b>\nline 2".into()),
    };
    s
}

const EXTRA_COLUMNS: [&str; 5] = [
    "metadata",
    "is_background_task",
    "parent_run_id",
    "task_id",
    "background_error",
];

#[tokio::test]
async fn parent_and_background_filters_seek_their_partial_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("plan.db");
    Store::open(&db).await.unwrap().close().await;
    let mut conn = raw(&db).await;
    let created = flowstate_store::time::instant_sql("created_at");
    // No scan of every run, no sort.
    for (filter, index) in [
        ("parent_run_id = 'parent-a'", "idx_flowstate_parent_created"),
        ("is_background_task = 1", "idx_flowstate_background_created"),
    ] {
        let sql = format!(
            "EXPLAIN QUERY PLAN SELECT run_id FROM workflow_state WHERE {filter} \
             ORDER BY {created} DESC, run_id DESC LIMIT 50"
        );
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(&sql).fetch_all(&mut conn).await.unwrap();
        let text: Vec<&str> = plan.iter().map(|p| p.3.as_str()).collect();
        assert!(
            text.iter().any(|t| t.contains(index)),
            "{index} not used: {text:?}"
        );
        assert!(!text.iter().any(|t| t.contains("TEMP B-TREE")), "{text:?}");
    }
}

// Every test below runs on both backends (SQLite, PostgreSQL).
both_backends! {
    async fn save_load_round_trip_and_timestamp_defaults(db) {
        let (store, clock) = db.open_at(at("2026-03-01T10:00:00Z")).await;

        let mut s = WorkflowState::new("run_a", "invoice-extraction");
        s.pipeline_name = "Invoice Extraction".into();
        s.pipeline_version = "2.1.0".into();
        s.current_step_index = 2;
        s.total_steps = 5;
        s.pipeline_context =
            json!({"initial_prompt": "请总结 🚀 naïve", "n": [1, 2.5, null], "nested": {"a": true}});
        s.last_step_output = Some(serde_json::Value::Null);
        s.step_history = json!([{"name": "plan", "success": true}]);
        s.status = Status::Failed;
        s.error_message = Some("TimeoutError: agent call exceeded 30s".into());
        s.execution_time_ms = Some(1234);
        s.memory_usage_mb = Some(45.25);
        store.save_state(&s).await.unwrap();

        let loaded = store.load_state("run_a").await.unwrap().unwrap();
        assert_eq!(
            loaded.created_at,
            Some(at("2026-03-01T10:00:00Z")),
            "new run: created now"
        );
        assert_eq!(loaded.updated_at, Some(at("2026-03-01T10:00:00Z")), "updated now");
        let mut expected = s.clone();
        expected.created_at = loaded.created_at;
        expected.updated_at = loaded.updated_at;
        assert_eq!(loaded, expected);
        assert_eq!(
            loaded.last_step_output,
            Some(serde_json::Value::Null),
            "JSON null is not SQL NULL"
        );

        // Saved again later without timestamps: creation kept, update moves.
        clock.advance(Duration::minutes(5));
        s.status = Status::Completed;
        s.last_step_output = None;
        store.save_state(&s).await.unwrap();
        let loaded = store.load_state("run_a").await.unwrap().unwrap();
        assert_eq!(loaded.created_at, Some(at("2026-03-01T10:00:00Z")));
        assert_eq!(loaded.updated_at, Some(at("2026-03-01T10:05:00Z")));
        assert_eq!(loaded.status, Status::Completed);
        assert_eq!(loaded.last_step_output, None);

        if !db.is_postgres() {
            // On SQLite, the stored spelling is the canonical one Python's fromisoformat reads.
            let file = std::path::Path::new(&db.location);
            let rows = raw_rows(file, &["created_at", "updated_at", "last_step_output"]).await;
            assert_eq!(
                rows[0],
                vec![
                    "'2026-03-01T10:00:00.000000+00:00'".to_string(),
                    "'2026-03-01T10:05:00.000000+00:00'".to_string(),
                    "NULL".to_string()
                ]
            );
        }

        assert!(store.load_state("missing").await.unwrap().is_none());
        assert!(store.delete_state("run_a").await.unwrap());
        assert!(!store.delete_state("run_a").await.unwrap());
        assert!(store.load_state("run_a").await.unwrap().is_none());
    }

    async fn invalid_input_is_a_typed_error_naming_the_field_and_writes_nothing(db) {
        let (store, _) = db.open_at(Utc::now()).await;
        let ok = WorkflowState::new("ok", "p");

        let mut s = ok.clone();
        s.run_id = String::new();
        assert_invalid(store.save_state(&s).await, "run_id");
        s.run_id = "x".repeat(600);
        assert_invalid(store.save_state(&s).await, "run_id");
        s.run_id = "a\0b".into();
        assert_invalid(store.save_state(&s).await, "run_id");

        let mut s = ok.clone();
        s.status = Status::Other(Some("pending".into()));
        assert_invalid(store.save_state(&s).await, "status");
        let mut s = ok.clone();
        s.current_step_index = -1;
        assert_invalid(store.save_state(&s).await, "current_step_index");
        let mut s = ok.clone();
        s.total_steps = -3;
        assert_invalid(store.save_state(&s).await, "total_steps");
        let mut s = ok.clone();
        s.execution_time_ms = Some(-5);
        assert_invalid(store.save_state(&s).await, "execution_time_ms");
        let mut s = ok.clone();
        s.memory_usage_mb = Some(f64::NAN);
        assert_invalid(store.save_state(&s).await, "memory_usage_mb");
        let mut s = ok.clone();
        s.pipeline_id = String::new();
        assert_invalid(store.save_state(&s).await, "pipeline_id");
        let mut s = ok.clone();
        s.pipeline_context = json!({"blob": "x".repeat(MAX_JSON_BYTES)});
        assert_invalid(store.save_state(&s).await, "pipeline_context");
        let mut s = ok.clone();
        s.created_at = Some(at("0001-01-01T00:00:00Z") - Duration::days(1));
        assert_invalid(store.save_state(&s).await, "created_at");

        // save_many validates everything before writing anything.
        let mut bad = ok.clone();
        bad.run_id = String::new();
        assert_invalid(store.save_many(&[ok.clone(), bad]).await, "run_id");

        assert_invalid(store.load_state("").await, "run_id");
        assert_invalid(store.delete_state("").await, "run_id");
        assert_invalid(
            store
                .list_workflows(&ListQuery {
                    limit: Some(0),
                    ..Default::default()
                })
                .await,
            "limit",
        );
        assert_invalid(
            store
                .list_workflows(&ListQuery {
                    limit: Some(1001),
                    ..Default::default()
                })
                .await,
            "limit",
        );
        assert_invalid(
            store
                .list_workflows(&ListQuery {
                    cursor: Some("not-a-cursor!".into()),
                    ..Default::default()
                })
                .await,
            "cursor",
        );
        assert_invalid(store.get_failed_workflows(0, 10).await, "hours_back");
        assert_invalid(store.get_failed_workflows(24, 0).await, "limit");
        assert_invalid(
            store.preview_cleanup(&CleanupPolicy::older_than_days(0)).await,
            "older_than_days",
        );
        let mut policy = CleanupPolicy::older_than_days(3);
        policy.statuses = vec![Status::Other(Some("pending".into()))];
        assert_invalid(store.cleanup_old_workflows(&policy).await, "statuses");
        // The status parser lives in flowstate-model (no store error there); its error becomes the store's.
        assert!(matches!(
            Status::parse("done").map_err(StoreError::from),
            Err(StoreError::InvalidInput { field: "status", .. })
        ));

        assert_eq!(
            store.get_workflow_stats().await.unwrap().total_workflows,
            0,
            "nothing was written"
        );
    }

    async fn list_filters_order_and_keyset_pages(db) {
        let (store, _) = db.open_at(at("2026-05-10T12:00:00Z")).await;
        let mut runs = Vec::new();
        for i in 0..120 {
            let status = Status::KNOWN[i % 5].clone();
            let pipeline = if i % 3 == 0 { "alpha" } else { "beta" };
            let mut s = run(
                &format!("run_{i:03}"),
                pipeline,
                status.clone(),
                &format!("2026-05-0{}T{:02}:00:00Z", 1 + i % 9, i % 24),
            );
            if status == Status::Failed {
                s.error_message = Some(format!("TimeoutError: call {i} exceeded 30s"));
            }
            runs.push(s);
        }
        // Two runs created at the same instant: run id breaks the tie, descending.
        runs.push(run("tie_a", "alpha", Status::Running, "2026-05-09T23:30:00Z"));
        runs.push(run("tie_b", "alpha", Status::Running, "2026-05-09T23:30:00Z"));
        store.save_many(&runs).await.unwrap();

        // Keyset pages: every run exactly once, newest first, ties by run id.
        let mut seen = Vec::new();
        let mut q = ListQuery {
            limit: Some(7),
            ..Default::default()
        };
        loop {
            let page = store.list_workflows(&q).await.unwrap();
            assert!(page.runs.len() <= 7);
            seen.extend(page.runs);
            match page.next_cursor {
                Some(c) => q.cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen.len(), 122);
        for w in seen.windows(2) {
            assert!(
                (w[0].created_at, &w[0].run_id) > (w[1].created_at, &w[1].run_id),
                "{} then {}",
                w[0].run_id,
                w[1].run_id
            );
        }
        assert_eq!(seen[0].run_id, "tie_b");
        // Walking forward then back with prev_cursor gives the same pages; the first page has no prev_cursor.
        let mut pages: Vec<(Vec<String>, Option<String>)> = Vec::new();
        let mut q = ListQuery {
            limit: Some(25),
            ..Default::default()
        };
        loop {
            let page = store.list_workflows(&q).await.unwrap();
            pages.push((
                page.runs.iter().map(|r| r.run_id.clone()).collect(),
                page.prev_cursor.clone(),
            ));
            match page.next_cursor {
                Some(c) => q.cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(pages.len(), 5);
        assert!(pages[0].1.is_none(), "first page has no previous");
        for i in (1..pages.len()).rev() {
            let prev = store
                .list_workflows(&ListQuery {
                    limit: Some(25),
                    cursor: pages[i].1.clone(),
                    ..Default::default()
                })
                .await
                .unwrap();
            let ids: Vec<String> = prev.runs.iter().map(|r| r.run_id.clone()).collect();
            assert_eq!(ids, pages[i - 1].0, "page {} back", i);
            assert_eq!(prev.prev_cursor.is_some(), i - 1 > 0);
            assert!(prev.next_cursor.is_some());
        }

        assert_eq!(seen[1].run_id, "tie_a");

        // Offset skips within the order.
        let page = store
            .list_workflows(&ListQuery {
                offset: Some(5),
                limit: Some(3),
                ..Default::default()
            })
            .await
            .unwrap();
        let ids: Vec<_> = page.runs.iter().map(|r| r.run_id.clone()).collect();
        let want: Vec<_> = seen[5..8].iter().map(|r| r.run_id.clone()).collect();
        assert_eq!(ids, want);

        let count = |q: ListQuery| {
            let store = store.clone();
            async move {
                let page = store
                    .list_workflows(&ListQuery {
                        limit: Some(1000),
                        ..q
                    })
                    .await
                    .unwrap();
                page.runs
            }
        };
        let failed_or_paused = count(ListQuery {
            statuses: vec![Status::Failed, Status::Paused],
            ..Default::default()
        })
        .await;
        assert_eq!(failed_or_paused.len(), 48);
        assert!(failed_or_paused
            .iter()
            .all(|r| matches!(r.status, Status::Failed | Status::Paused)));

        let alpha_running = count(ListQuery {
            statuses: vec![Status::Running],
            pipeline_id: Some("alpha".into()),
            ..Default::default()
        })
        .await;
        let want = runs
            .iter()
            .filter(|r| r.pipeline_id == "alpha" && r.status == Status::Running)
            .count();
        assert_eq!(alpha_running.len(), want);

        let window = count(ListQuery {
            created_after: Some(at("2026-05-03T00:00:00Z")),
            created_before: Some(at("2026-05-05T00:00:00Z")),
            ..Default::default()
        })
        .await;
        let want = runs
            .iter()
            .filter(|r| {
                let c = r.created_at.unwrap();
                c >= at("2026-05-03T00:00:00Z") && c < at("2026-05-05T00:00:00Z")
            })
            .count();
        assert_eq!(window.len(), want);
        assert!(want > 0);

        let updated = count(ListQuery {
            updated_after: Some(at("2026-05-09T00:00:00Z")),
            ..Default::default()
        })
        .await;
        assert_eq!(
            updated.len(),
            runs.iter()
                .filter(|r| r.updated_at.unwrap() >= at("2026-05-09T00:00:00Z"))
                .count()
        );

        let prefixed = count(ListQuery {
            run_id_prefix: Some("run_01".into()),
            ..Default::default()
        })
        .await;
        assert_eq!(prefixed.len(), 10);
        assert!(prefixed.iter().all(|r| r.run_id.starts_with("run_01")));

        let errors = count(ListQuery {
            error_contains: Some("timeouterror: CALL 1".into()),
            ..Default::default()
        })
        .await;
        let want = runs
            .iter()
            .filter(|r| {
                r.error_message
                    .as_deref()
                    .is_some_and(|e| e.to_lowercase().contains("timeouterror: call 1"))
            })
            .count();
        assert_eq!(errors.len(), want);
        assert!(want > 1);

        // Filter values are bound, never spliced: an injection string matches nothing.
        let none = count(ListQuery {
            pipeline_id: Some("alpha' OR '1'='1".into()),
            ..Default::default()
        })
        .await;
        assert!(none.is_empty());
    }

    async fn stats_are_the_seeds_four_figures_and_keep_unknown_statuses(db) {
        let (store, _) = db.open_at(at("2026-02-01T00:00:00Z")).await;
        let empty = store.get_workflow_stats().await.unwrap();
        assert_eq!(empty.total_workflows, 0);
        assert_eq!(empty.average_execution_time_ms, 0.0);
        assert!(empty.status_counts.is_empty());

        let mut a = run("a", "p", Status::Completed, "2026-01-31T12:00:00Z");
        a.execution_time_ms = Some(100);
        let mut b = run("b", "p", Status::Failed, "2026-01-20T12:00:00Z");
        b.execution_time_ms = Some(301);
        let c = run("c", "p", Status::Running, "2026-01-31T23:00:00Z"); // no execution time: not in the mean
        store.save_many(&[a, b, c]).await.unwrap();
        let stats = store.get_workflow_stats().await.unwrap();
        assert_eq!(stats.total_workflows, 3);
        assert_eq!(stats.recent_workflows_24h, 2);
        assert_eq!(stats.average_execution_time_ms, 200.5);
        assert_eq!(stats.status_counts.get("completed"), Some(&1));
        assert_eq!(stats.status_counts.get("failed"), Some(&1));
        assert_eq!(stats.status_counts.get("running"), Some(&1));
        assert_eq!(
            stats.status_counts.get("paused"),
            None,
            "only statuses present, like flujo"
        );
    }

    async fn insert_or_replace_by_another_process_is_reflected_by_the_next_stats(db) {
        let (store, _) = db.open_at(at("2026-02-01T00:00:00Z")).await;
        store
            .save_many(&[
                run("r1", "p", Status::Running, "2026-01-31T12:00:00Z"),
                run("r2", "p", Status::Running, "2026-01-31T12:00:00Z"),
            ])
            .await
            .unwrap();
        assert_eq!(
            store
                .get_workflow_stats()
                .await
                .unwrap()
                .status_counts
                .get("running"),
            Some(&2)
        );
        // flujo's save_state (INSERT OR REPLACE on SQLite, INSERT ... ON CONFLICT on PostgreSQL) of the whole row,
        // on its own connection.
        let other = |run_id, status, created_at, updated_at, error_message| OtherRow {
            run_id,
            pipeline_id: "p",
            status,
            created_at,
            updated_at,
            error_message,
            execution_time_ms: Some(100),
        };
        db.other_writer_save(&other(
            "r1",
            "failed",
            "2026-01-31T12:00:00+00:00",
            "2026-01-31T13:00:00+00:00",
            Some("x"),
        ))
        .await;
        db.other_writer_save(&other(
            "r3",
            "completed",
            "2026-01-01T12:00:00+00:00",
            "2026-01-01T13:00:00+00:00",
            None,
        ))
        .await;
        let stats = store.get_workflow_stats().await.unwrap();
        assert_eq!(stats.total_workflows, 3);
        assert_eq!(stats.status_counts.get("running"), Some(&1));
        assert_eq!(stats.status_counts.get("failed"), Some(&1));
        assert_eq!(stats.status_counts.get("completed"), Some(&1));
        assert_eq!(stats.recent_workflows_24h, 2);
    }

    async fn cleanup_measures_last_activity_spares_live_runs_and_deletes_exactly_the_preview(db) {
        let now = at("2026-06-30T00:00:00Z");
        let (store, _) = db.open_at(now).await;
        let old = "2026-04-01T00:00:00Z";
        let mut states = Vec::new();
        // 1,300 old completed runs: more than two batches.
        for i in 0..1300 {
            states.push(run(
                &format!("done_{i:04}"),
                if i % 2 == 0 { "a" } else { "b" },
                Status::Completed,
                old,
            ));
        }
        states.push(run("old_failed", "a", Status::Failed, old));
        states.push(run("old_cancelled", "b", Status::Cancelled, old));
        states.push(run("old_running", "a", Status::Running, old));
        states.push(run("old_paused", "a", Status::Paused, old));
        // Created long ago, failed yesterday: last activity is recent, so it is not old.
        let mut recent = run("created_old_failed_yesterday", "a", Status::Failed, old);
        recent.updated_at = Some(now - Duration::days(1));
        states.push(recent);
        states.push(run(
            "new_completed",
            "a",
            Status::Completed,
            "2026-06-29T00:00:00Z",
        ));
        store.save_many(&states).await.unwrap();
        // On SQLite, rows whose last activity cannot be read are never treated as old (PostgreSQL's timestamps are
        // always readable: that run is made recent there).
        let unreadable = if db.is_postgres() { "2026-06-29T00:00:00+00:00" } else { "garbage" };
        db.other_writer_save(&OtherRow {
            run_id: "unreadable_time",
            pipeline_id: "a",
            status: "completed",
            created_at: unreadable,
            updated_at: unreadable,
            error_message: None,
            execution_time_ms: None,
        })
        .await;

        let policy = CleanupPolicy::older_than_days(30);
        let preview = store.preview_cleanup(&policy).await.unwrap();
        assert_eq!(preview.cutoff, now - Duration::days(30));
        assert_eq!(preview.matched, 1302);
        assert_eq!(preview.by_status.get("completed"), Some(&1300));
        assert_eq!(preview.by_status.get("failed"), Some(&1));
        assert_eq!(preview.by_status.get("cancelled"), Some(&1));
        assert!(!preview.by_status.contains_key("running"));
        assert_eq!(preview.by_pipeline.get("a"), Some(&651));
        assert_eq!(preview.by_pipeline.get("b"), Some(&651));
        assert_eq!(preview.oldest_updated_at, Some(at(old)));

        let only_b = CleanupPolicy {
            pipeline_id: Some("b".into()),
            ..policy.clone()
        };
        assert_eq!(store.preview_cleanup(&only_b).await.unwrap().matched, 651);

        let deleted = store.cleanup_old_workflows(&policy).await.unwrap();
        assert_eq!(deleted as i64, preview.matched);
        assert!(deleted > 2 * CLEANUP_BATCH as u64);
        for kept in [
            "old_running",
            "old_paused",
            "created_old_failed_yesterday",
            "new_completed",
            "unreadable_time",
        ] {
            assert!(
                store.load_state(kept).await.unwrap().is_some(),
                "{kept} must survive"
            );
        }
        assert_eq!(store.get_workflow_stats().await.unwrap().total_workflows, 5);
        assert_eq!(
            store.cleanup_old_workflows(&policy).await.unwrap(),
            0,
            "nothing left to match"
        );

        // Running runs go only when named.
        let live = CleanupPolicy {
            statuses: vec![Status::Running],
            ..CleanupPolicy::older_than_days(30)
        };
        assert_eq!(store.preview_cleanup(&live).await.unwrap().matched, 1);
        assert_eq!(store.cleanup_old_workflows(&live).await.unwrap(), 1);
        assert!(store.load_state("old_running").await.unwrap().is_none());
        assert!(store.load_state("old_paused").await.unwrap().is_some());
    }

    /// A store opened read-only reads everything and refuses every change with a conflict, writing nothing.
    async fn read_only_stores_read_and_refuse_changes(db) {
        let (store, _) = db.open_at(at("2026-02-01T00:00:00Z")).await;
        store.save_state(&run("x", "p", Status::Failed, "2026-01-31T12:00:00Z")).await.unwrap();
        store.close().await;

        let ro = db
            .open_with(flowstate_store::StoreOptions {
                read_only: true,
                ..Default::default()
            })
            .await;
        assert!(ro.is_read_only());
        assert!(ro.migration().is_noop());
        assert_eq!(ro.get_workflow_stats().await.unwrap().total_workflows, 1);
        assert_eq!(ro.load_state("x").await.unwrap().unwrap().status, Status::Failed);
        for refused in [
            ro.save_state(&WorkflowState::new("y", "p")).await.err(),
            ro.delete_state("x").await.map(|_| ()).err(),
            ro.cleanup_old_workflows(&CleanupPolicy::older_than_days(1)).await.map(|_| ()).err(),
            ro.record_audit("t", "a", &json!({}), None, 0).await.map(|_| ()).err(),
        ] {
            assert!(matches!(refused, Some(StoreError::Conflict(_))), "{refused:?}");
        }
        assert!(ro.load_state("y").await.unwrap().is_none());
        assert!(ro.load_state("x").await.unwrap().is_some());
    }

    async fn extras_round_trip_through_every_read_and_a_save_replaces_them(db) {
        let (store, _) = db.open_at(Utc::now()).await;
        let child = background_task("child", "parent", "2026-03-01T10:00:00Z");
        let mut many = background_task("many", "parent", "2026-03-01T10:01:00Z");
        many.extras.metadata = Some(json!(null));
        many.extras.background_error = None;
        let plain = WorkflowState::new("plain", "p");
        store.save_state(&child).await.unwrap();
        store.save_many(&[many.clone(), plain.clone()]).await.unwrap();

        // Every way a whole row is read: the lookups, a copy's export.
        assert_eq!(store.load_state("child").await.unwrap().unwrap().extras, child.extras);
        assert_eq!(store.load_state("many").await.unwrap().unwrap().extras, many.extras);
        assert!(store.load_state("plain").await.unwrap().unwrap().extras.is_empty());
        let exported = store.export_runs(None, 10).await.unwrap();
        let ids: Vec<&str> = exported.iter().map(|s| s.run_id.as_str()).collect();
        assert_eq!(ids, ["child", "many", "plain"]);
        assert_eq!(exported[0].extras, child.extras);
        assert_eq!(exported[1].extras, many.extras);
        assert!(exported[2].extras.is_empty());

        if !db.is_postgres() {
            // On SQLite, as SQL values: JSON text, 0/1, text; JSON null is the text 'null', not SQL NULL.
            let rows = raw_rows(std::path::Path::new(&db.location), &EXTRA_COLUMNS).await;
            let metadata: serde_json::Value = serde_json::from_str(rows[0][0].trim_matches('\'')).unwrap();
            assert_eq!(Some(metadata), child.extras.metadata);
            assert_eq!(rows[0][1..], ["1", "'parent'", "'task-child'", "'TimeoutError: <b>30 s</b>\nline 2'"]);
            assert_eq!(rows[1][0], "'null'");
            assert_eq!(rows[1][4], "NULL");
            assert_eq!(rows[2], ["NULL", "0", "NULL", "NULL", "NULL"]);
        }

        // The run's page: bounded heads of the two large columns, the three small ones whole.
        let view = store.load_run_view("child", 10).await.unwrap().unwrap();
        assert!(view.is_background_task);
        assert_eq!(view.parent_run_id.as_deref(), Some("parent"));
        assert_eq!(view.task_id.as_deref(), Some("task-child"));
        let error = view.background_error.unwrap();
        assert_eq!(error.head, "TimeoutErr");
        assert_eq!(error.total_bytes, "TimeoutError: <b>30 s</b>\nline 2".len() as u64);
        let head = view.metadata.unwrap();
        assert_eq!(head.head.chars().count(), 10);
        assert!(!head.is_whole());
        let plain_view = store.load_run_view("plain", 10).await.unwrap().unwrap();
        assert!(!plain_view.is_background_task);
        assert_eq!(
            (plain_view.metadata, plain_view.background_error, plain_view.parent_run_id, plain_view.task_id),
            (None, None, None, None)
        );
        let whole = store.load_text_column("child", TextColumn::Metadata).await.unwrap().unwrap().unwrap();
        assert_eq!(serde_json::from_str::<serde_json::Value>(&whole).unwrap(), child.extras.metadata.unwrap());
        assert_eq!(
            store.load_text_column("child", TextColumn::BackgroundError).await.unwrap(),
            Some(Some("TimeoutError: <b>30 s</b>\nline 2".to_string()))
        );
        assert_eq!(store.load_text_column("plain", TextColumn::Metadata).await.unwrap(), Some(None));

        // A save replaces every extra column (the UPSERT names them), back to NULL and false too.
        let mut cleared = store.load_state("child").await.unwrap().unwrap();
        cleared.extras = RunExtras::default();
        store.save_state(&cleared).await.unwrap();
        assert!(store.load_state("child").await.unwrap().unwrap().extras.is_empty());
        if !db.is_postgres() {
            let file = std::path::Path::new(&db.location);
            assert_eq!(raw_rows(file, &EXTRA_COLUMNS).await[0], ["NULL", "0", "NULL", "NULL", "NULL"]);
        }
        let mut set = cleared.clone();
        set.extras = background_task("child", "other", "2026-03-01T10:00:00Z").extras;
        store.save_many(&[set.clone()]).await.unwrap();
        assert_eq!(store.load_state("child").await.unwrap().unwrap().extras, set.extras);

        // The same bounds on both backends (PostgreSQL's text holds no NUL).
        let mut bad = plain.clone();
        bad.extras.parent_run_id = Some("a\0b".into());
        assert_invalid(store.save_state(&bad).await, "parent_run_id");
        let mut bad = plain.clone();
        bad.extras.task_id = Some("t".repeat(flowstate_store::MAX_NAME_BYTES + 1));
        assert_invalid(store.save_state(&bad).await, "task_id");
        let mut bad = plain.clone();
        bad.extras.metadata = Some(json!({"nul": "a\u{0}b"}));
        assert_invalid(store.save_state(&bad).await, "metadata");
        let mut bad = plain;
        bad.extras.background_error = Some("e".repeat(flowstate_store::MAX_ERROR_BYTES + 1));
        assert_invalid(store.save_state(&bad).await, "background_error");
        store.close().await;
    }

    async fn a_nul_in_an_id_or_a_filter_names_no_run(db) {
        let (store, clock) = db.open_at(at("2026-03-10T00:00:00Z")).await;
        let mut old = WorkflowState::new("a", "p");
        old.status = Status::Completed;
        old.execution_time_ms = Some(5);
        old.created_at = Some(at("2026-03-01T00:00:00Z"));
        old.updated_at = Some(at("2026-03-01T00:00:00Z"));
        store.save_state(&old).await.unwrap();
        clock.set(at("2026-03-10T00:00:00Z"));
        // No saved run holds a NUL (PostgreSQL's text cannot): such an id or filter matches nothing on both
        // backends, never an error with the database's wording.
        assert!(store.load_state("a\0").await.unwrap().is_none());
        assert!(!store.delete_state("a\0").await.unwrap());
        for query in [
            ListQuery { pipeline_id: Some("p\0".into()), ..ListQuery::default() },
            ListQuery { run_id_prefix: Some("a\0".into()), ..ListQuery::default() },
            ListQuery { error_contains: Some("x\0".into()), ..ListQuery::default() },
            ListQuery { parent_run_id: Some("\0".into()), ..ListQuery::default() },
        ] {
            assert!(store.list_workflows(&query).await.unwrap().runs.is_empty(), "{query:?}");
        }
        let nul = CleanupPolicy { pipeline_id: Some("p\0".into()), ..CleanupPolicy::older_than_days(1) };
        assert_eq!(store.preview_cleanup(&nul).await.unwrap().matched, 0);
        assert_eq!(store.cleanup_old_workflows(&nul).await.unwrap(), 0);
        assert_eq!(store.execution_percentiles(Some("p\0")).await.unwrap().count, 0);
        // The same policy without the NUL matches the run: the filter, not the data, made the difference.
        let plain = CleanupPolicy { pipeline_id: Some("p".into()), ..CleanupPolicy::older_than_days(1) };
        assert_eq!(store.preview_cleanup(&plain).await.unwrap().matched, 1);
        assert!(store.load_state("a").await.unwrap().is_some(), "nothing was deleted");
        store.close().await;
    }

    async fn parent_and_background_filters_page_newest_first(db) {
        let (store, _) = db.open_at(Utc::now()).await;
        let mut runs = Vec::new();
        for i in 0..30 {
            let created = format!("2026-03-01T10:{i:02}:00Z");
            runs.push(match i % 3 {
                0 => background_task(&format!("a{i:02}"), "parent-a", &created),
                1 => background_task(&format!("b{i:02}"), "parent-b", &created),
                _ => {
                    let mut s = WorkflowState::new(format!("r{i:02}"), "p");
                    s.created_at = Some(at(&created));
                    s
                }
            });
        }
        // A background task without a parent, and a run that names a parent without being a background task.
        let mut orphan = WorkflowState::new("orphan", "p");
        orphan.created_at = Some(at("2026-03-01T09:00:00Z"));
        orphan.extras.is_background_task = true;
        let mut named = WorkflowState::new("named", "p");
        named.created_at = Some(at("2026-03-01T09:01:00Z"));
        named.extras.parent_run_id = Some("parent-a".into());
        runs.extend([orphan, named]);
        store.save_many(&runs).await.unwrap();

        let all = |query: ListQuery| {
            let store = &store;
            async move {
                let mut ids = Vec::new();
                let mut query = ListQuery { limit: Some(4), ..query };
                loop {
                    let page = store.list_workflows(&query).await.unwrap();
                    ids.extend(page.runs.into_iter().map(|r| r.run_id));
                    match page.next_cursor {
                        Some(c) => query.cursor = Some(c),
                        None => return ids,
                    }
                }
            }
        };
        let parent_a = all(ListQuery { parent_run_id: Some("parent-a".into()), ..Default::default() }).await;
        let mut want: Vec<String> = (0..30).rev().filter(|i| i % 3 == 0).map(|i| format!("a{i:02}")).collect();
        want.push("named".into());
        assert_eq!(parent_a, want, "newest first, every page");
        let background = all(ListQuery { background: Some(true), ..Default::default() }).await;
        assert_eq!(background.len(), 21);
        assert!(background.contains(&"orphan".to_string()) && !background.contains(&"named".to_string()));
        let foreground = all(ListQuery { background: Some(false), ..Default::default() }).await;
        assert_eq!(foreground.len(), 11);
        assert!(foreground.iter().all(|id| id.starts_with('r') || id == "named"));
        let both = all(ListQuery {
            parent_run_id: Some("parent-b".into()),
            background: Some(false),
            ..Default::default()
        })
        .await;
        assert!(both.is_empty(), "{both:?}");
        assert!(all(ListQuery { parent_run_id: Some("nobody".into()), ..Default::default() }).await.is_empty());
        assert_invalid(
            store
                .list_workflows(&ListQuery { parent_run_id: Some(String::new()), ..Default::default() })
                .await,
            "parent_run_id",
        );
        store.close().await;
    }
}
