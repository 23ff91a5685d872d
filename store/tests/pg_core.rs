//! The PostgreSQL backend's core: opening, flujo's table exactly, the migration (racing too), the counters kept by
//! triggers whoever writes, saves of all 20 columns, cleanups, read-only roles, unreachable servers.
//!
//! Each test makes a database of its own on the server `FLOWSTATE_TEST_PG` names, and prints `SKIPPED` without it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use flowstate_store::{
    CleanupPolicy, RunExtras, SchemaKind, Status, Store, StoreError, StoreOptions, WorkflowState,
};
use flowstate_testkit::pg::{self, FLUJO_DDL, FLUJO_UPSERT};
use serde_json::json;
use sqlx::{PgConnection, Row};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn open(url: &str) -> Store {
    Store::open(url)
        .await
        .unwrap_or_else(|e| panic!("open {url}: {e}"))
}

async fn read_only(url: &str) -> Result<Store, StoreError> {
    Store::open_with(
        url,
        StoreOptions {
            read_only: true,
            ..Default::default()
        },
    )
    .await
}

/// `(name, data_type, is_nullable, column_default)` of workflow_state's columns, in order.
async fn columns(conn: &mut PgConnection) -> Vec<(String, String, String, Option<String>)> {
    sqlx::query_as(
        "SELECT column_name::text, data_type::text, is_nullable::text, column_default::text \
         FROM information_schema.columns WHERE table_name = 'workflow_state' ORDER BY ordinal_position",
    )
    .fetch_all(conn)
    .await
    .unwrap()
}

async fn indexes(conn: &mut PgConnection) -> BTreeMap<String, String> {
    sqlx::query_as("SELECT indexname::text, indexdef FROM pg_indexes WHERE tablename = 'workflow_state'")
        .fetch_all(conn)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

async fn assert_exact(store: &Store) {
    let check = store.verify_counters().await.unwrap();
    assert!(
        check.is_exact(),
        "counters differ from a recount: {:#?}",
        check.differences
    );
}

/// What `count(*)` says, per status, and the average execution time.
async fn counted(conn: &mut PgConnection) -> (i64, BTreeMap<String, i64>, f64) {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM workflow_state GROUP BY status")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    let avg: Option<f64> = sqlx::query_scalar("SELECT avg(execution_time_ms)::float8 FROM workflow_state")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let total = rows.iter().map(|r| r.1).sum();
    (total, rows.into_iter().collect(), avg.unwrap_or(0.0))
}

async fn assert_stats_match_rows(store: &Store, conn: &mut PgConnection) {
    let stats = store.get_workflow_stats().await.unwrap();
    let (total, per_status, avg) = counted(conn).await;
    assert_eq!(stats.total_workflows, total);
    assert_eq!(stats.status_counts, per_status);
    assert!(
        (stats.average_execution_time_ms - avg).abs() < 1e-9 * avg.max(1.0),
        "{} vs {avg}",
        stats.average_execution_time_ms
    );
}

#[tokio::test]
async fn a_fresh_database_gets_flujos_table_exactly() {
    let Some(url) = pg::fresh_database_or_skip("pg_fresh_exact").await else {
        return;
    };
    let store = open(&url).await;
    assert_eq!(store.migration().from, SchemaKind::Empty);
    assert!(store.has_counters());
    assert!(!store.path().to_string_lossy().is_empty());

    // The same table flujo's DDL makes, in another database.
    let flujo_url = pg::fresh_database("pg_fresh_ref").await.unwrap();
    let mut reference = pg::connect(&flujo_url).await.unwrap();
    sqlx::raw_sql(FLUJO_DDL).execute(&mut reference).await.unwrap();
    let mut conn = pg::connect(&url).await.unwrap();
    assert_eq!(columns(&mut conn).await, columns(&mut reference).await);
    assert_eq!(columns(&mut conn).await.len(), 20);

    let ours = indexes(&mut conn).await;
    let flujos = indexes(&mut reference).await;
    for (name, def) in &flujos {
        if name == "idx_workflow_state_metadata_gin" {
            // Added by a later flujo migration, not by its table's DDL: flujo adds it itself when it starts.
            assert!(!ours.contains_key(name));
            continue;
        }
        assert_eq!(ours.get(name), Some(def), "index {name}");
    }
    // Everything else is flowstate's own, by name.
    for name in ours.keys() {
        assert!(
            flujos.contains_key(name) || name.starts_with("idx_flowstate_"),
            "unexpected index {name}"
        );
    }
    // flujo's other tables are never created (nor touched).
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    for t in &tables {
        assert!(
            t == "workflow_state" || t.starts_with("flowstate_"),
            "unexpected table {t}"
        );
    }
    store.close().await;

    // Opening again changes nothing.
    let again = open(&url).await;
    assert!(again.migration().is_noop(), "{:?}", again.migration());
    assert_eq!(
        again.migration().from,
        SchemaKind::Flowstate {
            version: flowstate_store::postgres::PG_SCHEMA_VERSION
        }
    );
    again.close().await;
    pg::drop_database(&url).await.unwrap();
    pg::drop_database(&flujo_url).await.unwrap();
}

#[tokio::test]
async fn a_flujo_database_with_rows_opens_keeps_them_and_gets_exact_counters() {
    let Some(url) = pg::fresh_database_or_skip("pg_flujo_rows").await else {
        return;
    };
    let mut conn = pg::connect(&url).await.unwrap();
    sqlx::raw_sql(FLUJO_DDL).execute(&mut conn).await.unwrap();
    sqlx::raw_sql("CREATE TABLE runs (run_id TEXT PRIMARY KEY, x INT); INSERT INTO runs VALUES ('r', 1)")
        .execute(&mut conn)
        .await
        .unwrap();
    let t0 = at("2026-01-02T03:04:05.123456Z");
    for i in 0..300 {
        let status = ["running", "completed", "failed", "paused", "cancelled"][i % 5];
        sqlx::query(FLUJO_UPSERT)
            .bind(format!("run-{i}"))
            .bind(format!("pipe-{}", i % 7))
            .bind(status)
            .bind(t0 + chrono::Duration::minutes(i as i64 * 13))
            .bind(t0 + chrono::Duration::minutes(i as i64 * 17))
            .bind((status == "failed").then_some("boom"))
            .bind((i % 3 != 0).then_some(i as i32 * 1000 + 7))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let before: Vec<(String, String)> =
        sqlx::query_as("SELECT run_id, row_to_json(w)::text FROM workflow_state w ORDER BY run_id")
            .fetch_all(&mut conn)
            .await
            .unwrap();

    // Read-only first: nothing is written, stats count the rows.
    let ro = read_only(&url).await.unwrap();
    assert!(!ro.has_counters());
    assert_eq!(ro.migration().from, SchemaKind::FlujoPostgres);
    assert_stats_match_rows(&ro, &mut conn).await;
    ro.close().await;
    let triggers: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(triggers, 0, "a read-only open changed the database");

    let store = open(&url).await;
    assert_eq!(store.migration().from, SchemaKind::FlujoPostgres);
    assert!(store
        .migration()
        .changes
        .iter()
        .any(|c| c.contains("filled the counters")));
    let after: Vec<(String, String)> =
        sqlx::query_as("SELECT run_id, row_to_json(w)::text FROM workflow_state w ORDER BY run_id")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(before, after, "the rows changed");
    let runs: i32 = sqlx::query_scalar("SELECT x FROM runs")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(runs, 1);
    assert_exact(&store).await;
    assert_stats_match_rows(&store, &mut conn).await;
    store.close().await;
    pg::drop_database(&url).await.unwrap();
}

#[tokio::test]
async fn counters_stay_exact_whoever_writes_the_table() {
    let Some(url) = pg::fresh_database_or_skip("pg_counters_raw").await else {
        return;
    };
    let store = open(&url).await;
    let mut conn = pg::connect(&url).await.unwrap();
    let t0 = at("2026-03-01T10:59:59.999999Z");
    let upsert =
        |id: String, pipe: &str, status: &'static str, c: DateTime<Utc>, u: DateTime<Utc>, e: Option<i32>| {
            sqlx::query(FLUJO_UPSERT)
                .bind(id)
                .bind(pipe.to_string())
                .bind(status)
                .bind(c)
                .bind(u)
                .bind(None::<String>)
                .bind(e)
        };
    // flujo's inserts, then its updates of the same runs (status changes, new times, other pipelines).
    for i in 0..200 {
        upsert(format!("r{i}"), "a", "running", t0, t0, None)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    assert_exact(&store).await;
    for i in 0..200 {
        let status = if i % 2 == 0 { "completed" } else { "failed" };
        let e = (i % 4 != 0).then_some(i * 37 + 1);
        upsert(
            format!("r{i}"),
            if i % 3 == 0 { "b" } else { "a" },
            status,
            t0,
            t0 + chrono::Duration::hours(i as i64),
            e,
        )
        .execute(&mut conn)
        .await
        .unwrap();
    }
    assert_exact(&store).await;
    // A save that changes nothing counted (progress within the hour) appends no delta.
    let rows_before: i64 = sqlx::query_scalar("SELECT count(*) FROM flowstate_delta")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    upsert(
        "r1".into(),
        "a",
        "failed",
        t0,
        t0 + chrono::Duration::hours(1),
        Some(38),
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let rows_after: i64 = sqlx::query_scalar("SELECT count(*) FROM flowstate_delta")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows_before, rows_after);
    // Plain SQL: multi-row UPDATE, UPDATE of the run id, DELETE, a statement inserting and updating at once,
    // odd values (infinite instants, a status flujo never writes, huge and negative times).
    for sql in [
        "UPDATE workflow_state SET status = 'paused' WHERE run_id LIKE 'r1%'",
        "UPDATE workflow_state SET execution_time_ms = 2147483647 WHERE run_id IN ('r2', 'r3')",
        "UPDATE workflow_state SET execution_time_ms = -5 WHERE run_id = 'r4'",
        "UPDATE workflow_state SET run_id = 'moved' WHERE run_id = 'r5'",
        "UPDATE workflow_state SET created_at = 'infinity', updated_at = '-infinity' WHERE run_id = 'r6'",
        "UPDATE workflow_state SET status = 'weird' WHERE run_id = 'r7'",
        "DELETE FROM workflow_state WHERE run_id IN ('r8', 'r9', 'r10')",
        "INSERT INTO workflow_state (run_id, pipeline_id, pipeline_name, pipeline_version, current_step_index, \
         status, created_at, updated_at) SELECT 'r' || g, 'c', 'c', '1', 0, 'running', now(), now() \
         FROM generate_series(150, 260) g ON CONFLICT (run_id) DO UPDATE SET status = 'cancelled'",
        "WITH d AS (DELETE FROM workflow_state WHERE run_id = 'r11' RETURNING *) \
         INSERT INTO workflow_state SELECT 'r11-again', pipeline_id, pipeline_name, pipeline_version, \
         current_step_index, pipeline_context, last_step_output, step_history, 'failed', created_at, updated_at, \
         total_steps, error_message, execution_time_ms, memory_usage_mb FROM d",
    ] {
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        assert_exact(&store).await;
    }
    // One transaction with several statements, rolled back: nothing counted.
    sqlx::raw_sql("BEGIN; DELETE FROM workflow_state WHERE run_id = 'r20'; UPDATE workflow_state SET status = 'x'; ROLLBACK")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_exact(&store).await;
    assert_stats_match_rows(&store, &mut conn).await;
    // TRUNCATE empties the counters too.
    sqlx::raw_sql("TRUNCATE workflow_state")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_exact(&store).await;
    assert_eq!(store.get_workflow_stats().await.unwrap().total_workflows, 0);
    store.close().await;
    pg::drop_database(&url).await.unwrap();
}

#[tokio::test]
async fn racing_migrations_all_succeed_and_migrate_once() {
    let Some(url) = pg::fresh_database_or_skip("pg_race").await else {
        return;
    };
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move { Store::open(&url).await }));
    }
    let mut changed = 0;
    for t in tasks {
        let store = t
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("a racing open failed: {e}"));
        if !store.migration().is_noop() {
            changed += 1;
        }
        store.close().await;
    }
    assert_eq!(changed, 1, "the schema was made more than once");
    let mut conn = pg::connect(&url).await.unwrap();
    let triggers: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(triggers, 8, "the counters' 4 and flowstate_failure's 4");

    // Processes too: the test binary is not a flowstate, so several connections racing on a flujo database
    // with rows stand for them (each its own connection and transaction).
    let url2 = pg::fresh_database("pg_race_flujo").await.unwrap();
    let mut c2 = pg::connect(&url2).await.unwrap();
    sqlx::raw_sql(FLUJO_DDL).execute(&mut c2).await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO workflow_state (run_id, pipeline_id, pipeline_name, pipeline_version, current_step_index, \
         status, created_at, updated_at, execution_time_ms) SELECT 'r' || g, 'p' || (g % 5), 'p', '1', 0, \
         (ARRAY['running','completed','failed'])[1 + g % 3], now() - g * interval '1 minute', now(), g \
         FROM generate_series(1, 5000) g",
    )
    .execute(&mut c2)
    .await
    .unwrap();
    let opens: Vec<_> = (0..6)
        .map(|_| {
            let url = url2.clone();
            tokio::spawn(async move { Store::open(&url).await })
        })
        .collect();
    let mut stores = Vec::new();
    for t in opens {
        stores.push(
            t.await
                .unwrap()
                .expect("a racing open of a flujo database failed"),
        );
    }
    assert_eq!(stores.iter().filter(|s| !s.migration().is_noop()).count(), 1);
    assert_exact(&stores[0]).await;
    assert_eq!(
        stores[0].get_workflow_stats().await.unwrap().total_workflows,
        5000
    );
    for s in stores {
        s.close().await;
    }
    pg::drop_database(&url).await.unwrap();
    pg::drop_database(&url2).await.unwrap();
}

fn full_state(id: &str) -> WorkflowState {
    let mut s = WorkflowState::new(id, "pipe-1");
    s.pipeline_name = "Pipe One".into();
    s.pipeline_version = "2.1".into();
    s.current_step_index = 3;
    s.pipeline_context = json!({"a": 1, "nested": {"b": [1, 2.5, "x"]}, "u": "é\u{1F600}"});
    s.last_step_output = Some(json!("out"));
    s.step_history = json!([{"step": 1}, {"step": 2}]);
    s.status = Status::Failed;
    s.created_at = Some(at("2026-02-03T04:05:06.789012Z"));
    s.updated_at = Some(at("2026-02-03T05:06:07.000001Z"));
    s.total_steps = 7;
    s.error_message = Some("ValueError: bad\nsecond line".into());
    s.execution_time_ms = Some(2_147_483_647);
    s.memory_usage_mb = Some(12.5);
    s.extras = RunExtras {
        metadata: Some(json!({"team": "x", "n": null})),
        is_background_task: true,
        parent_run_id: Some("parent-1".into()),
        task_id: Some("task-9".into()),
        background_error: Some("bg failed".into()),
    };
    s
}

#[tokio::test]
async fn saves_write_all_twenty_columns_and_keep_the_creation_time() {
    let Some(url) = pg::fresh_database_or_skip("pg_save").await else {
        return;
    };
    let store = open(&url).await;
    let mut conn = pg::connect(&url).await.unwrap();
    let s = full_state("full");
    store.save_state(&s).await.unwrap();
    let row = sqlx::query(
        "SELECT pipeline_id, pipeline_name, pipeline_version, current_step_index, pipeline_context::text, \
         last_step_output::text, step_history::text, status, created_at, updated_at, total_steps, error_message, \
         execution_time_ms, memory_usage_mb::float8, metadata::text, is_background_task, parent_run_id, task_id, \
         background_error FROM workflow_state WHERE run_id = 'full'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let json_of = |i: usize| serde_json::from_str::<serde_json::Value>(&row.get::<String, _>(i)).unwrap();
    assert_eq!(row.get::<String, _>(0), "pipe-1");
    assert_eq!(row.get::<String, _>(1), "Pipe One");
    assert_eq!(row.get::<String, _>(2), "2.1");
    assert_eq!(row.get::<i32, _>(3), 3);
    assert_eq!(json_of(4), s.pipeline_context);
    assert_eq!(json_of(5), json!("out"));
    assert_eq!(json_of(6), s.step_history);
    assert_eq!(row.get::<String, _>(7), "failed");
    assert_eq!(row.get::<DateTime<Utc>, _>(8), s.created_at.unwrap());
    assert_eq!(row.get::<DateTime<Utc>, _>(9), s.updated_at.unwrap());
    assert_eq!(row.get::<i32, _>(10), 7);
    assert_eq!(row.get::<String, _>(11), "ValueError: bad\nsecond line");
    assert_eq!(row.get::<i32, _>(12), i32::MAX);
    assert_eq!(row.get::<f64, _>(13), 12.5);
    assert_eq!(json_of(14), json!({"team": "x", "n": null}));
    assert!(row.get::<bool, _>(15));
    assert_eq!(row.get::<String, _>(16), "parent-1");
    assert_eq!(row.get::<String, _>(17), "task-9");
    assert_eq!(row.get::<String, _>(18), "bg failed");

    // No creation time given: an existing run keeps its own; a new one gets now.
    let mut again = s.clone();
    again.created_at = None;
    again.status = Status::Completed;
    again.extras = RunExtras::default();
    again.last_step_output = None;
    again.step_history = serde_json::Value::Null;
    store.save_state(&again).await.unwrap();
    let (created, status, meta, history, bg): (DateTime<Utc>, String, Option<String>, Option<String>, Option<bool>) =
        sqlx::query_as(
            "SELECT created_at, status, metadata::text, step_history::text, is_background_task FROM workflow_state \
             WHERE run_id = 'full'",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(created, s.created_at.unwrap());
    assert_eq!(status, "completed");
    assert_eq!((meta, history, bg), (None, None, Some(false)));
    let mut given = again.clone();
    given.created_at = Some(at("2020-01-01T00:00:00Z"));
    store.save_state(&given).await.unwrap();
    let created: DateTime<Utc> =
        sqlx::query_scalar("SELECT created_at FROM workflow_state WHERE run_id = 'full'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(created, at("2020-01-01T00:00:00Z"));

    // Many at once, one run twice (the later wins), some with and some without a creation time.
    let mut many: Vec<WorkflowState> = (0..50).map(|i| full_state(&format!("m{i}"))).collect();
    for (i, m) in many.iter_mut().enumerate() {
        if i % 2 == 0 {
            m.created_at = None;
        }
        m.current_step_index = i as i64;
    }
    let mut twice = full_state("m3");
    twice.status = Status::Running;
    many.push(twice);
    store.save_many(&many).await.unwrap();
    let (n, m3): (i64, String) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM workflow_state WHERE run_id LIKE 'm%'), \
         (SELECT status FROM workflow_state WHERE run_id = 'm3')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!((n, m3.as_str()), (50, "running"));
    let idx: i32 = sqlx::query_scalar("SELECT current_step_index FROM workflow_state WHERE run_id = 'm17'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(idx, 17);
    // A bad row fails the whole save_many: nothing of it is written.
    let mut bad = vec![full_state("n1"), full_state("n2")];
    bad[1].pipeline_id = String::new();
    assert!(matches!(
        store.save_many(&bad).await,
        Err(StoreError::InvalidInput { .. })
    ));
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM workflow_state WHERE run_id LIKE 'n%'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 0);

    assert!(store.delete_state("m1").await.unwrap());
    assert!(!store.delete_state("m1").await.unwrap());
    assert_exact(&store).await;
    assert_stats_match_rows(&store, &mut conn).await;
    let id = store
        .record_audit("tester", "delete", &json!({"run_id": "m1"}), Some(1), 1)
        .await
        .unwrap();
    let (actor, detail): (String, String) =
        sqlx::query_as("SELECT actor, detail::text FROM flowstate_audit WHERE id = $1")
            .bind(id)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        (actor.as_str(), detail.as_str()),
        ("tester", r#"{"run_id": "m1"}"#)
    );
    store.close().await;
    pg::drop_database(&url).await.unwrap();
}

#[tokio::test]
async fn stats_count_the_last_24_hours_by_the_stores_clock() {
    let Some(url) = pg::fresh_database_or_skip("pg_stats").await else {
        return;
    };
    let now = at("2026-05-05T12:20:00Z");
    let clock = std::sync::Arc::new(flowstate_store::FixedClock::new(now));
    let store = Store::open_with(
        &url,
        StoreOptions {
            clock: clock.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut runs = Vec::new();
    // One run per 7 minutes over two days back, and a few exactly on the window's edge.
    for i in 0..(48 * 60 / 7) {
        let mut s = WorkflowState::new(format!("s{i}"), "p");
        s.created_at = Some(now - chrono::Duration::minutes(7 * i));
        s.execution_time_ms = Some(i * 3);
        runs.push(s);
    }
    for (k, off) in [0i64, 1, -1].iter().enumerate() {
        let mut s = WorkflowState::new(format!("edge{k}"), "p");
        s.created_at = Some(now - chrono::Duration::hours(24) + chrono::Duration::microseconds(*off));
        runs.push(s);
    }
    store.save_many(&runs).await.unwrap();
    let mut conn = pg::connect(&url).await.unwrap();
    for minute in [0i64, 5, 29, 30, 31, 59, 60, 61, 600] {
        let t = now + chrono::Duration::minutes(minute) + chrono::Duration::microseconds(minute * 7);
        clock.set(t);
        let want: i64 = sqlx::query_scalar("SELECT count(*) FROM workflow_state WHERE created_at >= $1")
            .bind(t - chrono::Duration::hours(24))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(
            store.get_workflow_stats().await.unwrap().recent_workflows_24h,
            want,
            "at +{minute} min"
        );
    }
    assert_stats_match_rows(&store, &mut conn).await;
    store.close().await;
    pg::drop_database(&url).await.unwrap();
}

#[tokio::test]
async fn cleanup_deletes_in_batches_what_the_policy_matches() {
    let Some(url) = pg::fresh_database_or_skip("pg_cleanup").await else {
        return;
    };
    let now = Utc.with_ymd_and_hms(2026, 6, 1, 0, 0, 0).unwrap();
    let store = Store::open_with(
        &url,
        StoreOptions {
            clock: std::sync::Arc::new(flowstate_store::FixedClock::new(now)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let old = now - chrono::Duration::days(40);
    let mut runs = Vec::new();
    for i in 0..2600 {
        let mut s = WorkflowState::new(format!("c{i}"), if i % 2 == 0 { "a" } else { "b" });
        s.status = [
            Status::Completed,
            Status::Failed,
            Status::Running,
            Status::Cancelled,
        ][i % 4]
            .clone();
        s.created_at = Some(old);
        s.updated_at = Some(if i % 10 == 0 { now } else { old });
        runs.push(s);
    }
    for chunk in runs.chunks(1000) {
        store.save_many(chunk).await.unwrap();
    }
    let mut conn = pg::connect(&url).await.unwrap();
    let want: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM workflow_state WHERE status IN ('completed', 'failed', 'cancelled') AND updated_at < $1",
    )
    .bind(now - chrono::Duration::days(30))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let only_a = store
        .cleanup_old_workflows(&CleanupPolicy {
            pipeline_id: Some("a".into()),
            ..CleanupPolicy::older_than_days(30)
        })
        .await
        .unwrap();
    let rest = store
        .cleanup_old_workflows(&CleanupPolicy::older_than_days(30))
        .await
        .unwrap();
    assert_eq!(only_a as i64 + rest as i64, want);
    assert!(only_a > 0 && rest > 0);
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM workflow_state WHERE status <> 'running' AND updated_at < $1",
    )
    .bind(now - chrono::Duration::days(30))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(left, 0);
    let running: i64 = sqlx::query_scalar("SELECT count(*) FROM workflow_state WHERE status = 'running'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(running, 650);
    assert_exact(&store).await;
    store.close().await;
    pg::drop_database(&url).await.unwrap();
}

#[tokio::test]
async fn a_read_only_role_reads_and_every_write_is_refused() {
    let Some(url) = pg::fresh_database_or_skip("pg_ro_role").await else {
        return;
    };
    let store = open(&url).await;
    store.save_state(&full_state("x")).await.unwrap();
    store.close().await;
    let role = format!("fs_ro_{}", std::process::id());
    let db = url::Url::parse(&url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_string();
    let mut conn = pg::connect(&url).await.unwrap();
    sqlx::raw_sql(&format!(
        "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN; GRANT CONNECT ON DATABASE \"{db}\" TO {role}; \
         GRANT USAGE ON SCHEMA public TO {role}; GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}; \
         REVOKE CREATE ON SCHEMA public FROM PUBLIC"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let mut ro_url = url::Url::parse(&url).unwrap();
    ro_url.set_username(&role).unwrap();
    let ro_url = ro_url.to_string();

    let ro = read_only(&ro_url)
        .await
        .expect("a read-only open by a SELECT-only role");
    assert!(ro.has_counters());
    assert_eq!(ro.get_workflow_stats().await.unwrap().total_workflows, 1);
    assert_exact(&ro).await;
    assert!(matches!(
        ro.save_state(&full_state("y")).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(ro.delete_state("x").await, Err(StoreError::Conflict(_))));
    assert!(matches!(
        ro.rebuild_counters().await,
        Err(StoreError::Conflict(_))
    ));
    ro.close().await;

    // Opened writable, the same role (it may not write) gets Conflict from the server's refusal, not a 500.
    let rw = open(&ro_url).await;
    assert!(matches!(
        rw.save_state(&full_state("y")).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(rw.delete_state("x").await, Err(StoreError::Conflict(_))));
    rw.close().await;

    // A database the role would have to migrate: refused at open with what to do.
    let fresh = pg::fresh_database("pg_ro_fresh").await.unwrap();
    let fresh_db = url::Url::parse(&fresh)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_string();
    let mut fc = pg::connect(&fresh).await.unwrap();
    sqlx::raw_sql(FLUJO_DDL).execute(&mut fc).await.unwrap();
    sqlx::raw_sql(&format!(
        "GRANT CONNECT ON DATABASE \"{fresh_db}\" TO {role}; REVOKE CREATE ON SCHEMA public FROM PUBLIC; \
         GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"
    ))
    .execute(&mut fc)
    .await
    .unwrap();
    let mut fresh_ro = url::Url::parse(&fresh).unwrap();
    fresh_ro.set_username(&role).unwrap();
    match Store::open(fresh_ro.as_str()).await {
        Err(StoreError::CannotOpen { reason, .. }) => assert!(reason.contains("read-only"), "{reason}"),
        other => panic!(
            "expected CannotOpen, got {:?}",
            other.map(|s| s.migration().clone())
        ),
    }
    let ro = read_only(fresh_ro.as_str()).await.unwrap();
    assert!(!ro.has_counters());
    assert_eq!(ro.get_workflow_stats().await.unwrap().total_workflows, 0);
    ro.close().await;
    pg::drop_database(&url).await.unwrap();
    pg::drop_database(&fresh).await.unwrap();
    sqlx::raw_sql(&format!("DROP ROLE IF EXISTS {role}"))
        .execute(&mut conn)
        .await
        .ok();
}

#[tokio::test]
async fn flujo_writing_as_a_role_without_rights_on_flowstates_tables_keeps_the_counters_exact() {
    let Some(url) = pg::fresh_database_or_skip("pg_writer_role").await else {
        return;
    };
    let store = open(&url).await;
    let role = format!("fs_writer_{}", std::process::id());
    let db = url::Url::parse(&url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_string();
    let mut conn = pg::connect(&url).await.unwrap();
    sqlx::raw_sql(&format!(
        "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN; GRANT CONNECT ON DATABASE \"{db}\" TO {role}; \
         GRANT USAGE ON SCHEMA public TO {role}; \
         GRANT SELECT, INSERT, UPDATE, DELETE ON workflow_state TO {role}"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let mut writer_url = url::Url::parse(&url).unwrap();
    writer_url.set_username(&role).unwrap();
    let mut writer = pg::connect(writer_url.as_str()).await.unwrap();
    // It may not touch flowstate's tables itself...
    assert!(sqlx::query("DELETE FROM flowstate_delta")
        .execute(&mut writer)
        .await
        .is_err());
    // ...but its saves and deletes go through, and are counted.
    let t = at("2026-04-01T12:00:00Z");
    for i in 0..40 {
        sqlx::query(FLUJO_UPSERT)
            .bind(format!("w{}", i % 25))
            .bind("p")
            .bind(if i < 25 { "running" } else { "completed" })
            .bind(t)
            .bind(t + chrono::Duration::minutes(i))
            .bind(None::<String>)
            .bind(Some(i as i32))
            .execute(&mut writer)
            .await
            .unwrap();
    }
    sqlx::query("DELETE FROM workflow_state WHERE run_id IN ('w1', 'w2')")
        .execute(&mut writer)
        .await
        .unwrap();
    assert_exact(&store).await;
    assert_stats_match_rows(&store, &mut conn).await;
    let stats = store.get_workflow_stats().await.unwrap();
    assert_eq!(stats.total_workflows, 23);
    assert_eq!(stats.status_counts.get("completed"), Some(&13));
    drop(writer);
    store.close().await;
    pg::drop_database(&url).await.unwrap();
    sqlx::raw_sql(&format!("DROP ROLE IF EXISTS {role}"))
        .execute(&mut conn)
        .await
        .ok();
}

#[tokio::test]
async fn an_unreachable_server_is_cannot_open_at_once_with_what_to_do() {
    // No server needed: nothing listens on port 1.
    let began = Instant::now();
    match Store::open("postgres://someone:hunter2@127.0.0.1:1/db").await {
        Err(StoreError::CannotOpen { path, reason }) => {
            assert!(!path.to_string_lossy().contains("hunter2"), "{}", path.display());
            assert!(reason.contains("start the server"), "{reason}");
        }
        other => panic!(
            "expected CannotOpen, got {:?}",
            other.map(|s| s.migration().clone())
        ),
    }
    assert!(began.elapsed() < Duration::from_secs(2), "{:?}", began.elapsed());
    // A database that does not exist, on a server that does.
    if let Some(server) = pg::shared_url() {
        match Store::open(&pg::with_database(&server, "fs_no_such_database").unwrap()).await {
            Err(StoreError::CannotOpen { reason, .. }) => assert!(reason.contains("createdb"), "{reason}"),
            other => panic!(
                "expected CannotOpen, got {:?}",
                other.map(|s| s.migration().clone())
            ),
        }
    }
}

#[tokio::test]
async fn killed_connections_are_replaced_by_themselves() {
    let Some(url) = pg::fresh_database_or_skip("pg_killed").await else {
        return;
    };
    let store = open(&url).await;
    store.save_state(&full_state("k")).await.unwrap();
    let mut conn = pg::connect(&url).await.unwrap();
    for round in 0..3 {
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = 'flowstate' AND datname = current_database()",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        assert!(!killed.is_empty() || round > 0);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut s = full_state("k");
        s.current_step_index = round;
        store
            .save_state(&s)
            .await
            .expect("a save after the connections were killed");
        assert_eq!(store.get_workflow_stats().await.unwrap().total_workflows, 1);
    }
    store.close().await;
    pg::drop_database(&url).await.unwrap();
}
