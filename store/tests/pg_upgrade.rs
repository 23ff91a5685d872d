//! PostgreSQL schema upgrades in place. 1 → current: a database whose counters were kept by version 1's statement
//! triggers on inserts and updates gets version 2's row triggers (an update that changes no counted value calls
//! nothing), keeps its counts without a recount, stays exact for the store's and plain SQL writes afterwards, and
//! the next open finds nothing to do. 2 → 3: version 3's indexes (the execution-time index partial,
//! `idx_flowstate_created` dropped) and `flowstate_failure` (the failed runs, kept by triggers, filled from the
//! failed rows), the counts kept.
//!
//! Runs when `FLOWSTATE_TEST_PG` names a PostgreSQL server (a superuser's URL), and prints `SKIPPED` without.

use flowstate_store::postgres::PG_SCHEMA_VERSION;
use flowstate_store::{SchemaKind, Status, Store, WorkflowState};
use flowstate_testkit::pg;

/// Version 1's insert and update triggers, as its migration created them (statement triggers over transition
/// tables appending to the log), replacing the current build's; the schema version set back to 1.
const VERSION_1: &str = r#"
DROP TRIGGER flowstate_failure_ins ON workflow_state;
DROP TRIGGER flowstate_failure_upd ON workflow_state;
DROP TRIGGER flowstate_failure_del ON workflow_state;
DROP TRIGGER flowstate_failure_trunc ON workflow_state;
DROP TABLE flowstate_failure;
DROP TRIGGER flowstate_counters_ins ON workflow_state;
DROP TRIGGER flowstate_counters_upd ON workflow_state;
CREATE OR REPLACE FUNCTION flowstate_counters_ins() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
n int8;
BEGIN
INSERT INTO public.flowstate_delta (sk, pk, ch, uh, e, b, d) SELECT COALESCE('=' || r.status, '') AS sk,
  COALESCE('=' || r.pipeline_id, '') AS pk, public.flowstate_hour(r.created_at) AS ch,
  public.flowstate_hour(r.updated_at) AS uh, r.execution_time_ms::int8 AS e,
  public.flowstate_bucket(r.execution_time_ms::int8) AS b, 1 FROM new_rows AS r;
GET DIAGNOSTICS n = ROW_COUNT;
IF n > 1000 OR (n > 0 AND random() < 1.0 / 256) THEN PERFORM public.flowstate_fold(); END IF;
RETURN NULL;
END
$f$;
CREATE OR REPLACE FUNCTION flowstate_counters_upd() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
n int8;
BEGIN
INSERT INTO public.flowstate_delta (sk, pk, ch, uh, e, b, d) SELECT sk, pk, ch, uh, e, b, sum(d) FROM (
  SELECT COALESCE('=' || r.status, ''), COALESCE('=' || r.pipeline_id, ''), public.flowstate_hour(r.created_at),
    public.flowstate_hour(r.updated_at), r.execution_time_ms::int8, public.flowstate_bucket(r.execution_time_ms::int8), 1
  FROM new_rows AS r
  UNION ALL
  SELECT COALESCE('=' || r.status, ''), COALESCE('=' || r.pipeline_id, ''), public.flowstate_hour(r.created_at),
    public.flowstate_hour(r.updated_at), r.execution_time_ms::int8, public.flowstate_bucket(r.execution_time_ms::int8), -1
  FROM old_rows AS r) AS x (sk, pk, ch, uh, e, b, d)
  GROUP BY sk, pk, ch, uh, e, b HAVING sum(d) <> 0;
GET DIAGNOSTICS n = ROW_COUNT;
IF n > 1000 OR (n > 0 AND random() < 1.0 / 256) THEN PERFORM public.flowstate_fold(); END IF;
RETURN NULL;
END
$f$;
CREATE TRIGGER flowstate_counters_ins AFTER INSERT ON workflow_state REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION flowstate_counters_ins();
CREATE TRIGGER flowstate_counters_upd AFTER UPDATE ON workflow_state REFERENCING OLD TABLE AS old_rows
  NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION flowstate_counters_upd();
UPDATE flowstate_meta SET value = '1' WHERE key = 'schema_version';
"#;

fn run(id: &str, pipeline: &str, status: Status, ms: Option<i64>) -> WorkflowState {
    let mut s = WorkflowState::new(id, pipeline);
    s.status = status;
    s.execution_time_ms = ms;
    s
}

/// The insert and update triggers' levels: `(name, for each row)`.
async fn trigger_levels(conn: &mut sqlx::PgConnection) -> Vec<(String, bool)> {
    sqlx::query_as(
        "SELECT tgname::text, (tgtype & 1) = 1 FROM pg_trigger WHERE tgrelid = 'workflow_state'::regclass \
         AND NOT tgisinternal ORDER BY tgname",
    )
    .fetch_all(conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_version_1_database_gets_row_triggers_in_place_and_keeps_its_counts() {
    let Some(url) = pg::fresh_database_or_skip("pg_upgrade_v1").await else {
        return;
    };
    let store = Store::open(&url).await.unwrap();
    for i in 0..40 {
        store
            .save_state(&run(&format!("a{i}"), "p", Status::Running, None))
            .await
            .unwrap();
    }
    store.close().await;
    let mut conn = pg::connect(&url).await.unwrap();
    sqlx::raw_sql(VERSION_1).execute(&mut conn).await.unwrap();
    assert_eq!(
        trigger_levels(&mut conn).await,
        vec![
            ("flowstate_counters_del".into(), false),
            ("flowstate_counters_ins".into(), false),
            ("flowstate_counters_trunc".into(), false),
            ("flowstate_counters_upd".into(), false),
        ]
    );
    // Version 1's triggers count flujo's writes meanwhile (inserts, updates, a delete).
    sqlx::raw_sql(
        "INSERT INTO workflow_state (run_id, pipeline_id, pipeline_name, pipeline_version, current_step_index, \
         status, created_at, updated_at) SELECT 'v1-' || g, 'q', 'q', '1', 0, 'running', now(), now() \
         FROM generate_series(1, 30) g; \
         UPDATE workflow_state SET status = 'completed', execution_time_ms = 77 WHERE run_id LIKE 'v1-1%'; \
         DELETE FROM workflow_state WHERE run_id IN ('a1', 'a2')",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    // The counts as version 1 left them, pending deltas folded or not; a recount would not change them, and the
    // upgrade must not recount (a marker row in a base table survives it).
    sqlx::raw_sql(
        "INSERT INTO flowstate_counts_base (status_key, pipeline_key, slot, runs, timed, time_sum) \
         VALUES ('=marker', '=kept', 7, 0, 0, 0)",
    )
    .execute(&mut conn)
    .await
    .unwrap();

    let store = Store::open(&url).await.unwrap();
    assert_eq!(store.migration().from, SchemaKind::Flowstate { version: 1 });
    let changes = &store.migration().changes;
    assert!(changes.iter().any(|c| c.contains("row triggers")), "{changes:?}");
    assert!(
        !changes.iter().any(|c| c.contains("filled the counters")),
        "no recount: {changes:?}"
    );
    assert!(
        changes.iter().any(|c| c.contains("flowstate_failure")),
        "{changes:?}"
    );
    let marker: i64 =
        sqlx::query_scalar("SELECT count(*) FROM flowstate_counts_base WHERE status_key = '=marker'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(marker, 1, "the upgrade kept the base counts as they were");
    assert_eq!(
        trigger_levels(&mut conn).await,
        vec![
            ("flowstate_counters_del".into(), false),
            ("flowstate_counters_ins".into(), true),
            ("flowstate_counters_trunc".into(), false),
            ("flowstate_counters_upd".into(), true),
            ("flowstate_failure_del".into(), false),
            ("flowstate_failure_ins".into(), true),
            ("flowstate_failure_trunc".into(), false),
            ("flowstate_failure_upd".into(), true),
        ]
    );
    let version: String = sqlx::query_scalar("SELECT value FROM flowstate_meta WHERE key = 'schema_version'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(version, PG_SCHEMA_VERSION.to_string());
    assert!(store.verify_counters().await.unwrap().is_exact());
    assert_eq!(store.get_workflow_stats().await.unwrap().total_workflows, 68);

    // Exact afterwards, for the store's saves and flujo's SQL; a progress save appends nothing.
    for i in 0..40 {
        let status = if i % 3 == 0 {
            Status::Failed
        } else {
            Status::Completed
        };
        store
            .save_state(&run(&format!("a{i}"), "p", status, Some(i * 11)))
            .await
            .unwrap();
    }
    let before = pending(&mut conn).await;
    sqlx::raw_sql(
        "UPDATE workflow_state SET current_step_index = current_step_index + 1 WHERE run_id = 'a5'",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        pending(&mut conn).await,
        before,
        "a save changing no counted value"
    );
    sqlx::raw_sql(
        "UPDATE workflow_state SET pipeline_id = 'r' WHERE run_id LIKE 'v1-2%'; \
         DELETE FROM workflow_state WHERE run_id LIKE 'v1-3%'",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    assert!(store.verify_counters().await.unwrap().is_exact());
    store.close().await;

    // Idempotent: the next open changes nothing.
    let store = Store::open(&url).await.unwrap();
    assert!(store.migration().is_noop(), "{:?}", store.migration().changes);
    assert_eq!(
        store.migration().from,
        SchemaKind::Flowstate {
            version: PG_SCHEMA_VERSION
        }
    );
    store.close().await;
    pg::drop_database(&url).await.unwrap();
}

/// Version 2's indexes, replacing version 3's; the schema version set back to 2 (its counters and triggers are
/// version 3's; its failure table too: [`VERSION_2_FAILURES`] takes back the other half of version 3).
const VERSION_2_INDEXES: &str = r#"
DROP INDEX idx_flowstate_pipeline_timed;
CREATE INDEX idx_flowstate_created ON workflow_state (created_at, run_id COLLATE "C");
CREATE INDEX idx_flowstate_pipeline_exec ON workflow_state (pipeline_id, execution_time_ms);
UPDATE flowstate_meta SET value = '2' WHERE key = 'schema_version';
"#;

async fn index_def(conn: &mut sqlx::PgConnection, name: &str) -> Option<String> {
    sqlx::query_scalar("SELECT pg_get_indexdef(to_regclass($1))")
        .bind(name)
        .fetch_one(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_version_2_database_gets_version_3s_indexes_in_place_and_keeps_its_counts() {
    let Some(url) = pg::fresh_database_or_skip("pg_upgrade_v2").await else {
        return;
    };
    let store = Store::open(&url).await.unwrap();
    for i in 0..30 {
        let ms = (i % 3 != 0).then_some(i * 10);
        let status = if ms.is_some() {
            Status::Completed
        } else {
            Status::Running
        };
        store
            .save_state(&run(
                &format!("b{i}"),
                if i % 2 == 0 { "p" } else { "q" },
                status,
                ms,
            ))
            .await
            .unwrap();
    }
    store.close().await;
    let mut conn = pg::connect(&url).await.unwrap();
    sqlx::raw_sql(VERSION_2_INDEXES).execute(&mut conn).await.unwrap();
    // Runs written by flujo's SQL at version 2 (its triggers count them), and a marker a recount would remove.
    sqlx::raw_sql(
        "INSERT INTO workflow_state (run_id, pipeline_id, pipeline_name, pipeline_version, current_step_index, \
         status, created_at, updated_at, execution_time_ms) SELECT 'v2-' || g, 'p', 'p', '1', 0, \
         CASE WHEN g % 4 = 0 THEN 'running' ELSE 'completed' END, now(), now(), \
         CASE WHEN g % 4 = 0 THEN NULL ELSE g END FROM generate_series(1, 4000) g; \
         INSERT INTO flowstate_counts_base (status_key, pipeline_key, slot, runs, timed, time_sum) \
         VALUES ('=marker', '=kept', 7, 0, 0, 0)",
    )
    .execute(&mut conn)
    .await
    .unwrap();

    let store = Store::open(&url).await.unwrap();
    assert_eq!(store.migration().from, SchemaKind::Flowstate { version: 2 });
    let changes = &store.migration().changes;
    for expected in [
        "dropped index idx_flowstate_created",
        "dropped index idx_flowstate_pipeline_exec",
        "created index idx_flowstate_pipeline_timed",
        "recorded schema version 4",
    ] {
        assert!(
            changes.iter().any(|c| c.contains(expected)),
            "{expected}: {changes:?}"
        );
    }
    assert!(
        !changes
            .iter()
            .any(|c| c.contains("counters") || c.contains("triggers")),
        "the counters and triggers are kept: {changes:?}"
    );
    let marker: i64 =
        sqlx::query_scalar("SELECT count(*) FROM flowstate_counts_base WHERE status_key = '=marker'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(marker, 1, "no recount");
    assert_eq!(index_def(&mut conn, "idx_flowstate_created").await, None);
    assert_eq!(index_def(&mut conn, "idx_flowstate_pipeline_exec").await, None);
    let timed = index_def(&mut conn, "idx_flowstate_pipeline_timed")
        .await
        .expect("the partial index");
    assert!(
        timed.contains("(pipeline_id, execution_time_ms) WHERE (execution_time_ms IS NOT NULL)"),
        "{timed}"
    );
    // The longest time of a pipeline is read from the partial index (max() implies IS NOT NULL).
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN SELECT max(execution_time_ms) FROM workflow_state WHERE pipeline_id = 'p'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let plan = plan.join("\n");
    assert!(plan.contains("idx_flowstate_pipeline_timed"), "{plan}");
    let p = store.execution_percentiles(Some("p")).await.unwrap();
    assert_eq!(p.max, Some(3999.0));
    assert_eq!(p.count, 3000 + 10);
    let all = store.execution_percentiles(None).await.unwrap();
    assert_eq!(all.max, Some(3999.0));
    assert!(store.verify_counters().await.unwrap().is_exact());
    assert_eq!(store.get_workflow_stats().await.unwrap().total_workflows, 4030);
    // Exact afterwards for flujo's SQL too, and the next open finds nothing to do.
    sqlx::raw_sql(
        "UPDATE workflow_state SET status = 'failed', execution_time_ms = 5000 WHERE run_id LIKE 'v2-1%'; \
         DELETE FROM workflow_state WHERE run_id LIKE 'v2-2%'",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    assert!(store.verify_counters().await.unwrap().is_exact());
    assert_eq!(
        store.execution_percentiles(Some("p")).await.unwrap().max,
        Some(5000.0)
    );
    store.close().await;
    let store = Store::open(&url).await.unwrap();
    assert!(store.migration().is_noop(), "{:?}", store.migration().changes);
    store.close().await;
    pg::drop_database(&url).await.unwrap();
}

async fn pending(conn: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM flowstate_delta")
        .fetch_one(conn)
        .await
        .unwrap()
}

/// Version 3's failure table and its triggers removed, the schema version set back to 2 (its indexes stay version
/// 3's: [`VERSION_2_INDEXES`] takes back that half).
const VERSION_2_FAILURES: &str = r#"
DROP TRIGGER flowstate_failure_ins ON workflow_state;
DROP TRIGGER flowstate_failure_upd ON workflow_state;
DROP TRIGGER flowstate_failure_del ON workflow_state;
DROP TRIGGER flowstate_failure_trunc ON workflow_state;
DROP FUNCTION flowstate_failure_ins();
DROP FUNCTION flowstate_failure_upd();
DROP FUNCTION flowstate_failure_del();
DROP FUNCTION flowstate_failure_trunc();
DROP TABLE flowstate_failure;
UPDATE flowstate_meta SET value = '2' WHERE key = 'schema_version';
"#;

/// `flowstate_failure` as stored, and the failed rows as it should hold them, both by run id.
async fn failure_table_and_failed_rows(
    conn: &mut sqlx::PgConnection,
) -> (
    Vec<(String, String, Option<String>)>,
    Vec<(String, String, Option<String>)>,
) {
    let kept = sqlx::query_as(
        "SELECT run_id, pipeline_id, error_head FROM flowstate_failure ORDER BY run_id COLLATE \"C\"",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let failed = sqlx::query_as(
        "SELECT run_id, pipeline_id, substr(error_message, 1, 1000) FROM workflow_state WHERE status = 'failed' \
         ORDER BY run_id COLLATE \"C\"",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    (kept, failed)
}

#[tokio::test]
async fn a_version_2_database_gets_the_failure_table_filled_from_its_failed_rows_and_keeps_its_counts() {
    let Some(url) = pg::fresh_database_or_skip("pg_upgrade_v2").await else {
        return;
    };
    let store = Store::open(&url).await.unwrap();
    for i in 0..30 {
        let status = match i % 3 {
            0 => Status::Failed,
            1 => Status::Running,
            _ => Status::Completed,
        };
        let failed = status == Status::Failed;
        let mut r = run(&format!("b{i:02}"), "p", status, Some(i));
        r.error_message = failed.then(|| format!("TimeoutError: call {i} exceeded 30s"));
        store.save_state(&r).await.unwrap();
    }
    let before = store
        .failure_groups(chrono::Utc::now() - chrono::Duration::days(1))
        .await
        .unwrap();
    store.close().await;
    let mut conn = pg::connect(&url).await.unwrap();
    sqlx::raw_sql(VERSION_2_FAILURES)
        .execute(&mut conn)
        .await
        .unwrap();
    // Version 2 kept no failure table: plain SQL writes meanwhile (a new failure with a message of 3 MB of
    // multi-byte characters, a failure retried, a failure deleted).
    sqlx::raw_sql(
        "INSERT INTO workflow_state (run_id, pipeline_id, pipeline_name, pipeline_version, current_step_index, \
         status, created_at, updated_at, error_message) VALUES ('big', 'q', 'q', '1', 0, 'failed', now(), now(), \
         repeat('é', 3000000)); \
         UPDATE workflow_state SET status = 'running' WHERE run_id = 'b03'; \
         DELETE FROM workflow_state WHERE run_id = 'b06'",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::raw_sql(
        "INSERT INTO flowstate_counts_base (status_key, pipeline_key, slot, runs, timed, time_sum) \
         VALUES ('=marker', '=kept', 7, 0, 0, 0)",
    )
    .execute(&mut conn)
    .await
    .unwrap();

    let store = Store::open(&url).await.unwrap();
    assert_eq!(store.migration().from, SchemaKind::Flowstate { version: 2 });
    let changes = &store.migration().changes;
    assert!(
        changes.iter().any(|c| c.contains("flowstate_failure")),
        "{changes:?}"
    );
    assert!(
        !changes.iter().any(|c| c.contains("counters")),
        "the counters are left as they are: {changes:?}"
    );
    let marker: i64 =
        sqlx::query_scalar("SELECT count(*) FROM flowstate_counts_base WHERE status_key = '=marker'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(marker, 1, "no recount of the counters");
    let version: String = sqlx::query_scalar("SELECT value FROM flowstate_meta WHERE key = 'schema_version'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(version, "4");
    let (kept, failed) = failure_table_and_failed_rows(&mut conn).await;
    assert_eq!(kept, failed);
    assert_eq!(kept.len(), 10 - 2 + 1, "b03 retried, b06 deleted, big added");
    let big = kept.iter().find(|(id, _, _)| id == "big").unwrap();
    assert_eq!(
        big.2.as_deref().map(|h| h.chars().count()),
        Some(1000),
        "the head is bounded"
    );
    assert!(store.verify_counters().await.unwrap().is_exact());

    // The groups read the table now: the same signature, the counts as the rows say.
    let after = store
        .failure_groups(chrono::Utc::now() - chrono::Duration::days(1))
        .await
        .unwrap();
    assert_eq!(after.total_failed, before.total_failed - 2 + 1);
    let timeouts = after
        .groups
        .iter()
        .find(|g| g.signature == before.groups[0].signature)
        .unwrap();
    assert_eq!(timeouts.count, before.groups[0].count - 2);

    // Kept by the triggers afterwards: plain SQL's failed -> running, a new failure, a delete.
    sqlx::raw_sql(
        "UPDATE workflow_state SET status = 'running' WHERE run_id = 'b09'; \
         UPDATE workflow_state SET status = 'failed', error_message = 'late' WHERE run_id = 'b01'; \
         DELETE FROM workflow_state WHERE run_id = 'big'",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let (kept, failed) = failure_table_and_failed_rows(&mut conn).await;
    assert_eq!(kept, failed);
    assert!(store.verify_counters().await.unwrap().is_exact());
    store.close().await;

    // Idempotent: the next open changes nothing.
    let store = Store::open(&url).await.unwrap();
    assert!(store.migration().is_noop(), "{:?}", store.migration().changes);
    assert_eq!(store.migration().from, SchemaKind::Flowstate { version: 4 });
    store.close().await;
    pg::drop_database(&url).await.unwrap();
}
