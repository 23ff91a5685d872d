//! Schema version 5: the counter of runs per pipeline, hour of last update, version and status, behind
//! `Store::failures_by_version`. A database of version 4 gets it in place, filled from its rows, and keeps it exact
//! afterwards; on both backends ([`both_backends!`]).

mod common;

use chrono::Duration;
use common::*;
use flowstate_store::{Status, WorkflowState};

/// Runs the SQL on the test database through a connection of its own.
async fn exec_raw(db: &common::backends::TestDb, sql: &str) {
    use sqlx::Connection;
    if db.is_postgres() {
        let mut conn = sqlx::PgConnection::connect(&db.location).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    } else {
        let mut conn = raw(std::path::Path::new(&db.location)).await;
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    }
}

/// `(version, runs, finished, failed)` of pipeline "etl" since `since`, sorted by version.
async fn per_version(
    store: &flowstate_store::Store,
    since: chrono::DateTime<chrono::Utc>,
) -> Vec<(String, i64, i64, i64)> {
    let mut out: Vec<(String, i64, i64, i64)> = store
        .failures_by_version(since, "etl")
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.version, v.total, v.finished, v.failed))
        .collect();
    out.sort();
    out
}

both_backends! {
    async fn a_version_4_database_gets_the_version_counter_in_place(db) {
        let now = at("2026-05-01T12:00:00Z");
        let (store, _clock) = db.open_at(now).await;
        let mut runs = Vec::new();
        for i in 0..40i64 {
            let mut r = WorkflowState::new(format!("r{i}"), if i % 5 == 0 { "other" } else { "etl" });
            r.pipeline_version = if i < 25 { "1.0" } else { "2.0" }.into();
            r.status = if i % 3 == 0 { Status::Failed } else { Status::Completed };
            r.updated_at = Some(now - Duration::minutes(i * 13));
            runs.push(r);
        }
        store.save_many(&runs).await.unwrap();
        let since = now - Duration::hours(6);
        let before = per_version(&store, since).await;
        assert_eq!(before.iter().map(|v| v.1).sum::<i64>(), 22, "{before:?}");
        store.close().await;

        // As version 4 left it: no version counter (and, on PostgreSQL, no version column in the log), version 4
        // recorded; a marker in an older counter shows whether those were recounted.
        if db.is_postgres() {
            exec_raw(&db, "DROP VIEW flowstate_version_hourly; DROP TABLE flowstate_version_hourly_base; \
                ALTER TABLE flowstate_delta DROP COLUMN vk; \
                UPDATE flowstate_meta SET value = '4' WHERE key = 'schema_version'; \
                INSERT INTO flowstate_counts_base VALUES ('=marker', '=p', 0, 1, 0, 0)").await;
        } else {
            exec_raw(&db, "DROP TABLE flowstate_version_hourly; \
                UPDATE flowstate_meta SET value = '4' WHERE key = 'schema_version'").await;
        }
        // Read-only before the upgrade: the figures come from the rows, the same.
        let ro = db.open_with(flowstate_store::StoreOptions {
            read_only: true,
            clock: std::sync::Arc::new(flowstate_store::FixedClock::new(now)),
            ..Default::default()
        }).await;
        assert_eq!(per_version(&ro, since).await, before);
        ro.close().await;

        let (store, _clock) = db.open_at(now).await;
        let report = store.migration().clone();
        assert_eq!(report.from, flowstate_store::SchemaKind::Flowstate { version: 4 });
        let wanted = if db.is_postgres() {
            "created the counter of runs per pipeline, hour of last update, version and status"
        } else {
            "created table flowstate_version_hourly"
        };
        assert!(report.changes.iter().any(|c| c.starts_with(wanted)), "{wanted}: {:#?}", report.changes);
        assert_eq!(per_version(&store, since).await, before);
        if db.is_postgres() {
            // Only the new counter was filled: the marker in flowstate_counts survived; it goes now.
            exec_raw(&db, "DELETE FROM flowstate_counts_base WHERE status_key = '=marker'").await;
        }
        // Kept by the triggers afterwards: a version changes, a run goes.
        let mut moved = runs[1].clone();
        moved.pipeline_version = "2.0".into();
        moved.status = Status::Failed;
        store.save_state(&moved).await.unwrap();
        assert!(store.delete_state("r2").await.unwrap());
        let after = per_version(&store, since).await;
        let one = after.iter().find(|v| v.0 == "1.0").unwrap();
        let two = after.iter().find(|v| v.0 == "2.0").unwrap();
        let b1 = before.iter().find(|v| v.0 == "1.0").unwrap();
        let b2 = before.iter().find(|v| v.0 == "2.0").unwrap();
        assert_eq!((one.1, two.1), (b1.1 - 2, b2.1 + 1), "{before:?} -> {after:?}");
        assert_eq!(two.3, b2.3 + 1);
        let check = store.verify_counters().await.unwrap();
        assert!(check.is_exact(), "{:?}", check.differences);
        store.close().await;

        let (again, _clock) = db.open_at(now).await;
        assert!(again.migration().changes.is_empty(), "{:?}", again.migration().changes);
        again.close().await;
    }
}
