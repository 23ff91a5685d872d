//! `flowstate_failure` (PostgreSQL schema version 3): the failed runs, kept by triggers whoever writes
//! `workflow_state`, read by the failure groups.
//!
//! - plain SQL writes of every kind (inserts, `INSERT ... ON CONFLICT`, status changes both ways, a renamed run,
//!   multi-row deletes, `TRUNCATE`) keep it equal to the failed rows, the error message's head bounded;
//! - a tampered table is reported by `verify_counters` and repaired by `rebuild_counters`;
//! - the failure groups read from it equal those read from `workflow_state` itself (a read-only store on a
//!   database without it), for every failure and for a scope (a pipeline, a version, both: schema version 6
//!   keeps each failure's version); a database at schema 5 gets the versions in place.
//!
//! flujo 0.6.11's own writes are in pg_flujo.rs (its figures check compares this table with the failed rows).
//! Runs when `FLOWSTATE_TEST_PG` names a PostgreSQL server, and prints `SKIPPED` without.

use chrono::{DateTime, Duration, Utc};
use flowstate_store::{FailureScope, Status, Store, StoreOptions, WorkflowState};
use flowstate_testkit::pg;
use sqlx::PgConnection;

/// Run id, pipeline, last update (as text: `infinity` too), error head, version.
type Failure = (String, String, String, Option<String>, Option<String>);

/// The table's rows and the failed rows as it should hold them, by run id.
async fn kept_and_failed(conn: &mut PgConnection) -> (Vec<Failure>, Vec<Failure>) {
    let kept = sqlx::query_as(
        "SELECT run_id, pipeline_id, updated_at::text, error_head, pipeline_version FROM flowstate_failure \
         ORDER BY run_id COLLATE \"C\"",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let failed = sqlx::query_as(
        "SELECT run_id, pipeline_id, updated_at::text, substr(error_message, 1, 1000), pipeline_version \
         FROM workflow_state WHERE status = 'failed' ORDER BY run_id COLLATE \"C\"",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    (kept, failed)
}

#[track_caller]
fn ids(rows: &[Failure]) -> Vec<&str> {
    rows.iter().map(|r| r.0.as_str()).collect()
}

async fn exec(conn: &mut PgConnection, sql: &str) {
    sqlx::raw_sql(sql)
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

const INSERT: &str = "INSERT INTO workflow_state (run_id, pipeline_id, pipeline_name, pipeline_version, \
    current_step_index, status, created_at, updated_at, error_message) VALUES ";

#[tokio::test]
async fn plain_sql_writes_of_every_kind_keep_the_failure_table_equal_to_the_failed_rows() {
    let Some(url) = pg::fresh_database_or_skip("pg_failures_writes").await else {
        return;
    };
    let store = Store::open(&url).await.unwrap();
    let mut conn = pg::connect(&url).await.unwrap();

    // Inserts: a failure, a live run, a failure with 3 MB of multi-byte characters, a failure without a message.
    exec(
        &mut conn,
        &format!(
            "{INSERT} ('f1', 'p', 'p', '1', 0, 'failed', now(), now(), 'TimeoutError: 30s'), \
             ('r1', 'p', 'p', '1', 0, 'running', now(), now(), NULL), \
             ('big', 'q', 'q', '1', 0, 'failed', now(), now(), repeat('ж', 3000000)), \
             ('nomsg', 'q', 'q', '1', 0, 'failed', now(), now(), NULL)"
        ),
    )
    .await;
    let (kept, failed) = kept_and_failed(&mut conn).await;
    assert_eq!(kept, failed, "inserts");
    assert_eq!(ids(&kept), ["big", "f1", "nomsg"]);
    let head = kept[0].3.as_deref().unwrap();
    assert_eq!(
        head.chars().count(),
        1000,
        "the head of a 3 MB message is bounded"
    );
    assert_eq!(kept[2].3, None);

    // flujo's upsert: a live run fails, a failure is saved again with a new message and time, a new failure.
    let upsert = |id: &str, status: &str, message: &str| {
        format!(
            "{INSERT} ('{id}', 'p', 'p', '1', 1, '{status}', now(), clock_timestamp(), '{message}') \
             ON CONFLICT (run_id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at, \
             error_message = excluded.error_message, current_step_index = excluded.current_step_index"
        )
    };
    for sql in [
        upsert("r1", "failed", "ValueError: x"),
        upsert("f1", "failed", "TimeoutError: 45s"),
        upsert("f2", "failed", "KeyError: ''k''"),
        upsert("r2", "running", ""),
    ] {
        exec(&mut conn, &sql).await;
    }
    let (kept, failed) = kept_and_failed(&mut conn).await;
    assert_eq!(kept, failed, "upserts");
    assert_eq!(ids(&kept), ["big", "f1", "f2", "nomsg", "r1"]);
    assert_eq!(kept[1].3.as_deref(), Some("TimeoutError: 45s"));

    // A failure retried (failed -> running) leaves the table; a progress save of a failure (its step only) keeps
    // it; a failed run renamed; the store's own save of a failure and of a retry.
    exec(
        &mut conn,
        "UPDATE workflow_state SET status = 'running' WHERE run_id = 'r1'",
    )
    .await;
    exec(
        &mut conn,
        "UPDATE workflow_state SET current_step_index = 9 WHERE run_id = 'f2'",
    )
    .await;
    exec(
        &mut conn,
        "UPDATE workflow_state SET run_id = 'f2-renamed' WHERE run_id = 'f2'",
    )
    .await;
    // A failed run's version changed (schema 6 keeps it: the failure groups of one version read it).
    exec(
        &mut conn,
        "UPDATE workflow_state SET pipeline_version = '2' WHERE run_id = 'f2-renamed'",
    )
    .await;
    let mut ours = WorkflowState::new("ours", "p");
    ours.status = Status::Failed;
    ours.error_message = Some("ours failed".into());
    store.save_state(&ours).await.unwrap();
    let mut retried = store.load_state("f1").await.unwrap().unwrap();
    retried.status = Status::Running;
    store.save_state(&retried).await.unwrap();
    let (kept, failed) = kept_and_failed(&mut conn).await;
    assert_eq!(kept, failed, "status changes");
    assert_eq!(ids(&kept), ["big", "f2-renamed", "nomsg", "ours"]);
    assert_eq!(kept[1].4.as_deref(), Some("2"), "the version kept");

    // Deletes of several rows at once (failed and not), through the store and in plain SQL.
    exec(
        &mut conn,
        "DELETE FROM workflow_state WHERE run_id IN ('big', 'r1', 'r2', 'missing')",
    )
    .await;
    assert!(store.delete_state("ours").await.unwrap());
    let (kept, failed) = kept_and_failed(&mut conn).await;
    assert_eq!(kept, failed, "deletes");
    assert_eq!(ids(&kept), ["f2-renamed", "nomsg"]);
    assert!(store.verify_counters().await.unwrap().is_exact());

    exec(&mut conn, "TRUNCATE workflow_state").await;
    let (kept, failed) = kept_and_failed(&mut conn).await;
    assert!(kept.is_empty() && failed.is_empty(), "{kept:?}");
    assert!(store.verify_counters().await.unwrap().is_exact());
    store.close().await;
    pg::drop_database(&url).await.unwrap();
}

#[tokio::test]
async fn a_tampered_failure_table_is_reported_and_rebuilt() {
    let Some(url) = pg::fresh_database_or_skip("pg_failures_tampered").await else {
        return;
    };
    let store = Store::open(&url).await.unwrap();
    for i in 0..6 {
        let mut r = WorkflowState::new(format!("t{i}"), "p");
        r.status = if i % 2 == 0 {
            Status::Failed
        } else {
            Status::Completed
        };
        r.error_message = Some(format!("boom {i}"));
        store.save_state(&r).await.unwrap();
    }
    assert!(store.verify_counters().await.unwrap().is_exact());
    let mut conn = pg::connect(&url).await.unwrap();
    // One row missing, one that is no failure, one whose message changed behind the triggers' back.
    exec(
        &mut conn,
        "DELETE FROM flowstate_failure WHERE run_id = 't0'; \
         INSERT INTO flowstate_failure VALUES ('t1', 'p', now(), 'not failed'); \
         UPDATE flowstate_failure SET error_head = 'changed' WHERE run_id = 't2'; \
         UPDATE flowstate_failure SET pipeline_version = 'other' WHERE run_id = 't4'",
    )
    .await;
    let check = store.verify_counters().await.unwrap();
    let mut found: Vec<(String, bool, bool)> = check
        .differences
        .iter()
        .filter(|d| d.table == "flowstate_failure")
        .map(|d| (d.key.clone(), d.stored.is_some(), d.recounted.is_some()))
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            ("'t0'".to_string(), false, true),
            ("'t1'".to_string(), true, false),
            ("'t2'".to_string(), true, true),
            ("'t4'".to_string(), true, true),
        ],
        "{:?}",
        check.differences
    );
    let before = store.rebuild_counters().await.unwrap();
    assert_eq!(before.differences.len(), 4);
    assert!(store.verify_counters().await.unwrap().is_exact());
    let (kept, failed) = kept_and_failed(&mut conn).await;
    assert_eq!(kept, failed);
    assert_eq!(ids(&kept), ["t0", "t2", "t4"]);
    store.close().await;
    pg::drop_database(&url).await.unwrap();
}

type Scoped = Vec<(
    flowstate_store::FailureReport,
    Option<flowstate_store::FailureGroup>,
)>;

/// Each window's report of each scope, and the first group's page.
async fn scoped(store: &Store, windows: &[DateTime<Utc>], scopes: &[FailureScope]) -> Scoped {
    let mut out = Vec::new();
    for since in windows {
        for scope in scopes {
            let report = store.failure_groups_in(*since, scope).await.unwrap();
            let group = match report.groups.first() {
                Some(g) => store.failure_group_in(*since, &g.key, 40, scope).await.unwrap(),
                None => None,
            };
            out.push((report, group));
        }
    }
    out
}

#[tokio::test]
async fn failure_groups_from_the_table_equal_those_read_from_the_rows() {
    let Some(url) = pg::fresh_database_or_skip("pg_failures_same").await else {
        return;
    };
    let store = Store::open(&url).await.unwrap();
    let now = Utc::now();
    let messages = [
        "TimeoutError: agent call exceeded 30s",
        "TimeoutError: agent call exceeded 5s",
        "UsageLimitExceededError: Cost limit of $0.50 exceeded",
        "",
        "ValidationError: field \"total\" expected number\nsecond line 42",
    ];
    let mut runs = Vec::new();
    for i in 0..300i64 {
        let mut r = WorkflowState::new(format!("g{i:03}"), ["a", "b", "c"][(i % 3) as usize]);
        // Versions "1", "2", "3" (of every pipeline: a version across pipelines).
        r.pipeline_version = ["1", "2", "3", "2"][(i % 4) as usize].to_string();
        r.status = if i % 7 == 0 {
            Status::Completed
        } else {
            Status::Failed
        };
        r.error_message = match i % 11 {
            0 => None,
            1 => Some(format!("{} {}", "x".repeat(1200), i)),
            k => Some(messages[(k as usize) % messages.len()].to_string()),
        };
        // Several runs share each instant: the order within one is by run id.
        let at = now - Duration::minutes(i / 3 * 17);
        r.created_at = Some(at - Duration::minutes(5));
        r.updated_at = Some(at);
        runs.push(r);
    }
    store.save_many(&runs).await.unwrap();
    // A failure whose last update is `infinity`: in every window, counted by no hour of the counters.
    let mut conn = pg::connect(&url).await.unwrap();
    exec(
        &mut conn,
        &format!(
            "{INSERT} ('inf', 'a', 'a', '1', 0, 'failed', now(), 'infinity', 'TimeoutError: agent call exceeded 9s')"
        ),
    )
    .await;
    let windows = [
        now - Duration::hours(1),
        now - Duration::hours(24),
        now - Duration::days(30),
    ];
    let mut from_table = Vec::new();
    for since in windows {
        let report = store.failure_groups(since).await.unwrap();
        let key = report.groups[0].key.clone();
        let group = store.failure_group(since, &key, 40).await.unwrap();
        from_table.push((report, group));
    }
    assert!(from_table[2].0.groups.len() >= 4, "{:?}", from_table[2].0.groups);
    // The scopes (schema 6: one range of the table's pipeline or version index).
    let scope = |pipeline: Option<&str>, version: Option<&str>| FailureScope {
        pipeline: pipeline.map(String::from),
        version: version.map(String::from),
    };
    let scopes = [
        scope(Some("a"), None),
        scope(None, Some("2")),
        scope(Some("a"), Some("2")),
        scope(Some("c"), Some("1")),
        scope(Some("nope"), None),
    ];
    let scoped_from_table = scoped(&store, &windows, &scopes).await;
    // Each scope's failures are exactly the rows of its pipeline and version.
    let failed_rows = |p: Option<&str>, v: Option<&str>| {
        runs.iter()
            .filter(|r| r.status == Status::Failed && r.updated_at.unwrap() >= windows[2])
            .filter(|r| p.is_none_or(|p| r.pipeline_id == p))
            .filter(|r| v.is_none_or(|v| r.pipeline_version == v))
            .count() as i64
    };
    for (i, (p, v)) in [
        (Some("a"), None),
        (None, Some("2")),
        (Some("a"), Some("2")),
        (Some("c"), Some("1")),
    ]
    .into_iter()
    .enumerate()
    {
        let report = &scoped_from_table[2 * scopes.len() + i].0;
        // The `infinity` failure (pipeline "a", version "1") is read but not counted, as the counters count.
        assert_eq!(report.total_failed, failed_rows(p, v), "{p:?} {v:?}");
        assert!(report.total_failed > 0, "{p:?} {v:?}");
    }
    assert!(scoped_from_table[4].0.groups.is_empty());

    // A database at schema 5 (the table without versions): read from the rows by a read-only store, then
    // upgraded in place by a writable one, the versions filled from the failed rows.
    exec(
        &mut conn,
        "DROP INDEX idx_flowstate_failure_pipeline; DROP INDEX idx_flowstate_failure_version; \
         ALTER TABLE flowstate_failure DROP COLUMN pipeline_version; \
         UPDATE flowstate_meta SET value = '5' WHERE key = 'schema_version'",
    )
    .await;
    let read_only = StoreOptions {
        read_only: true,
        ..Default::default()
    };
    let ro = Store::open_with(&url, read_only.clone()).await.unwrap();
    assert_eq!(
        scoped(&ro, &windows, &scopes).await,
        scoped_from_table,
        "a schema 5 database, read-only"
    );
    ro.close().await;
    let upgraded = Store::open(&url).await.unwrap();
    let m = upgraded.migration().clone();
    assert_eq!(m.from, flowstate_store::SchemaKind::Flowstate { version: 5 });
    assert!(
        m.changes
            .iter()
            .any(|c| c.starts_with("added each failure's pipeline version")),
        "{:#?}",
        m.changes
    );
    let (kept, failed) = kept_and_failed(&mut conn).await;
    assert_eq!(kept, failed, "filled on upgrade");
    // Its old rows, all dead after the refill, were vacuumed after the commit.
    let vacuumed: bool = sqlx::query_scalar(
        "SELECT last_vacuum IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'flowstate_failure'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(vacuumed, "flowstate_failure vacuumed after its refill");
    assert!(kept.iter().any(|k| k.4.as_deref() == Some("2")));
    assert!(upgraded.verify_counters().await.unwrap().is_exact());
    assert_eq!(
        scoped(&upgraded, &windows, &scopes).await,
        scoped_from_table,
        "upgraded from schema 5"
    );
    upgraded.close().await;

    // Without the table (triggers and table gone), a read-only store reads the rows themselves.
    exec(
        &mut conn,
        "DROP TRIGGER flowstate_failure_ins ON workflow_state; DROP TRIGGER flowstate_failure_upd ON workflow_state; \
         DROP TRIGGER flowstate_failure_del ON workflow_state; DROP TRIGGER flowstate_failure_trunc ON workflow_state; \
         DROP TABLE flowstate_failure",
    )
    .await;
    let ro = Store::open_with(&url, read_only.clone()).await.unwrap();
    for (since, (report, group)) in windows.into_iter().zip(&from_table) {
        assert_eq!(&ro.failure_groups(since).await.unwrap(), report, "since {since}");
        let key = &report.groups[0].key;
        assert_eq!(
            &ro.failure_group(since, key, 40).await.unwrap(),
            group,
            "since {since}"
        );
    }
    ro.close().await;
    let ro = Store::open_with(&url, read_only).await.unwrap();
    assert_eq!(
        scoped(&ro, &windows, &scopes).await,
        scoped_from_table,
        "read from the rows"
    );
    ro.close().await;
    pg::drop_database(&url).await.unwrap();
}
