//! Cleanups and the unfiltered list's index on PostgreSQL: a cleanup deletes exactly what its preview counts (never
//! a run last active at `-infinity`), it goes on past rows a writer holds (`SKIP LOCKED` makes a batch short, not
//! the last), and lists without a filter read flujo's `idx_workflow_state_created_at` (created by the migration where
//! it is missing) with an incremental sort.
//!
//! Each test runs when `FLOWSTATE_TEST_PG` names a PostgreSQL server (a superuser's URL), and prints `SKIPPED`
//! without.

use flowstate_store::{CleanupPolicy, Store};
use flowstate_testkit::pg;
use sqlx::Connection;

/// Inserts `n` completed runs `prefix0..prefixN` last active `updated_at` (SQL), created 100 days ago.
async fn insert_runs(conn: &mut sqlx::PgConnection, prefix: &str, n: i64, updated_at: &str) {
    sqlx::query(&format!(
        "INSERT INTO workflow_state (run_id, pipeline_id, pipeline_name, pipeline_version, current_step_index, \
         status, created_at, updated_at) SELECT $1 || g, 'p', 'p', '1', 0, 'completed', \
         now() - interval '100 days', {updated_at} FROM generate_series(1, $2) AS g"
    ))
    .bind(prefix)
    .bind(n)
    .execute(&mut *conn)
    .await
    .unwrap();
}

async fn count(conn: &mut sqlx::PgConnection, filter: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM workflow_state WHERE {filter}"))
        .fetch_one(&mut *conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_cleanup_deletes_what_its_preview_counts_and_never_a_run_active_at_minus_infinity() {
    let Some(url) = pg::fresh_database_or_skip("pg_cleanup_infinity").await else {
        return;
    };
    let store = Store::open(&url).await.unwrap();
    let mut conn = pg::connect(&url).await.unwrap();
    insert_runs(&mut conn, "old", 150, "now() - interval '40 days'").await;
    insert_runs(&mut conn, "never", 3, "'-infinity'").await;
    insert_runs(&mut conn, "recent", 7, "now() - interval '1 day'").await;
    let policy = CleanupPolicy::older_than_days(30);
    let preview = store.preview_cleanup(&policy).await.unwrap();
    assert_eq!(preview.matched, 150);
    assert_eq!(store.cleanup_old_workflows(&policy).await.unwrap(), 150);
    assert_eq!(count(&mut conn, "run_id LIKE 'old%'").await, 0);
    assert_eq!(count(&mut conn, "updated_at = '-infinity'").await, 3);
    assert_eq!(count(&mut conn, "run_id LIKE 'recent%'").await, 7);
    assert_eq!(store.preview_cleanup(&policy).await.unwrap().matched, 0);
    assert!(store.verify_counters().await.unwrap().is_exact());
    store.close().await;
    pg::drop_database(&url).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cleanup_goes_on_past_rows_a_writer_holds() {
    let Some(url) = pg::fresh_database_or_skip("pg_cleanup_locked").await else {
        return;
    };
    let store = Store::open(&url).await.unwrap();
    let mut conn = pg::connect(&url).await.unwrap();
    insert_runs(&mut conn, "old", 600, "now() - interval '40 days'").await;
    // A writer holds every fifth run (its transaction open): each batch skips some and comes back short.
    let mut writer = pg::connect(&url).await.unwrap();
    let mut tx = writer.begin().await.unwrap();
    let held: Vec<String> = sqlx::query_scalar(
        "SELECT run_id FROM workflow_state WHERE substr(run_id, 4)::int % 5 = 0 ORDER BY run_id FOR UPDATE",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    assert_eq!(held.len(), 120);
    let policy = CleanupPolicy::older_than_days(30);
    let deleted = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        store.cleanup_old_workflows(&policy),
    )
    .await
    .expect("a cleanup never waits for rows a writer holds")
    .unwrap();
    assert_eq!(deleted, 480, "every run no writer held is deleted");
    assert_eq!(count(&mut conn, "true").await, 120);
    // Once the writer commits, the next cleanup deletes the rest.
    tx.commit().await.unwrap();
    assert_eq!(store.cleanup_old_workflows(&policy).await.unwrap(), 120);
    assert_eq!(count(&mut conn, "true").await, 0);
    assert!(store.verify_counters().await.unwrap().is_exact());
    store.close().await;
    pg::drop_database(&url).await.unwrap();
}

async fn index_exists(conn: &mut sqlx::PgConnection, name: &str) -> bool {
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(name)
        .fetch_one(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn lists_without_a_filter_read_flujos_creation_index_which_a_migration_creates_when_missing() {
    let Some(url) = pg::fresh_database_or_skip("pg_created_index").await else {
        return;
    };
    let store = Store::open(&url).await.unwrap();
    store.close().await;
    let mut conn = pg::connect(&url).await.unwrap();
    assert!(index_exists(&mut conn, "idx_workflow_state_created_at").await);
    assert!(
        !index_exists(&mut conn, "idx_flowstate_created").await,
        "schema version 3 has no index of its own for it"
    );
    // A database whose flujo lacks the index (an older flujo, or dropped by hand).
    sqlx::raw_sql("DROP INDEX idx_workflow_state_created_at")
        .execute(&mut conn)
        .await
        .unwrap();
    // Runs created one second apart, as flujo's are (each its own `now()`).
    sqlx::raw_sql(
        "INSERT INTO workflow_state (run_id, pipeline_id, pipeline_name, pipeline_version, current_step_index, \
         status, created_at, updated_at) SELECT 'r' || g, 'p', 'p', '1', 0, 'completed', \
         now() - g * interval '1 second', now() FROM generate_series(1, 5000) AS g",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let store = Store::open(&url).await.unwrap();
    let changes = &store.migration().changes;
    assert!(
        changes
            .iter()
            .any(|c| c.contains("idx_workflow_state_created_at")),
        "{changes:?}"
    );
    assert!(index_exists(&mut conn, "idx_workflow_state_created_at").await);
    // The unfiltered list's order is read from it: only the runs sharing an instant are sorted (an incremental
    // sort), never the table.
    sqlx::raw_sql("ANALYZE workflow_state")
        .execute(&mut conn)
        .await
        .unwrap();
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN SELECT run_id FROM workflow_state ORDER BY created_at DESC, run_id COLLATE \"C\" DESC LIMIT 50",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let plan = plan.join("\n");
    assert!(
        plan.contains("idx_workflow_state_created_at") && plan.contains("Incremental Sort"),
        "{plan}"
    );
    assert!(
        !plan
            .lines()
            .any(|l| l.trim_start_matches([' ', '-', '>']).starts_with("Sort  (")),
        "{plan}"
    );
    assert!(store.verify_counters().await.unwrap().is_exact());
    // And the next open finds nothing to do.
    store.close().await;
    let store = Store::open(&url).await.unwrap();
    assert!(store.migration().is_noop(), "{:?}", store.migration().changes);
    store.close().await;
    pg::drop_database(&url).await.unwrap();
}
