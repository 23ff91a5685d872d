//! Recorded changes (issue 15, schema 4): a recorded cleanup and a recorded single-run delete write their audit
//! entry and the run ids they deleted (`flowstate_audit_run`) in the transaction of each delete, on both backends;
//! the ids read back by keyset pages; entries say exactly what was deleted.

mod common;

use std::collections::BTreeSet;

use chrono::Duration;
use common::*;
use flowstate_store::{CleanupPolicy, Status, WorkflowState};
use serde_json::json;

both_backends! {
    async fn a_recorded_cleanup_writes_its_entry_and_every_run_id_it_deleted(db) {
        let now = at("2026-05-01T12:00:00Z");
        let (store, _clock) = db.open_at(now).await;
        let mut runs = Vec::new();
        // 1,234 old terminal runs (several batches), 20 recent ones, 30 old running ones (not matched).
        for i in 0..1_234 {
            let mut r = WorkflowState::new(format!("old-{i:05}"), format!("p{}", i % 3));
            r.status = [Status::Completed, Status::Failed, Status::Cancelled][i % 3].clone();
            r.updated_at = Some(now - Duration::days(60) + Duration::seconds(i as i64));
            r.created_at = r.updated_at;
            runs.push(r);
        }
        for i in 0..20 {
            let mut r = WorkflowState::new(format!("new-{i:02}"), "p0");
            r.status = Status::Completed;
            r.updated_at = Some(now - Duration::days(1));
            runs.push(r);
        }
        for i in 0..30 {
            let mut r = WorkflowState::new(format!("live-{i:02}"), "p1");
            r.status = Status::Running;
            r.updated_at = Some(now - Duration::days(90));
            runs.push(r);
        }
        for chunk in runs.chunks(500) {
            store.save_many(chunk).await.unwrap();
        }
        let policy = CleanupPolicy::older_than_days(30);
        let preview = store.preview_cleanup(&policy).await.unwrap();
        assert_eq!(preview.matched, 1_234);
        let detail = json!({"older_than_days": 30, "who": "test"});
        let done = store
            .cleanup_recorded(&policy, "tester", &detail, Some(preview.matched))
            .await
            .unwrap();
        assert_eq!(done.deleted, 1_234);

        let log = store.audit_log(10).await.unwrap();
        let entry = log.iter().find(|e| e.id == done.audit_id).expect("the entry is in the log");
        assert_eq!(entry.actor, "tester");
        assert_eq!(entry.action, "cleanup");
        assert_eq!(entry.detail["older_than_days"], 30);
        assert_eq!(entry.detail["who"], "test");
        assert_eq!(entry.detail["space"]["bytes_freed"], done.bytes_freed, "and what it freed");
        assert_eq!(entry.matched, Some(1_234));
        assert_eq!(entry.affected, 1_234, "affected is what the batches deleted");

        // Every deleted id, by keyset pages of 100, in order, none twice.
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = store.audit_run_ids(done.audit_id, after.as_deref(), 100).await.unwrap();
            assert!(page.len() <= 100);
            if page.is_empty() {
                break;
            }
            after = page.last().cloned();
            seen.extend(page);
        }
        let expected: Vec<String> = (0..1_234).map(|i| format!("old-{i:05}")).collect();
        assert_eq!(seen, expected, "exactly the deleted runs, in run-id order");
        for id in ["new-00", "live-00"] {
            assert!(store.load_state(id).await.unwrap().is_some(), "{id} kept");
        }
        assert!(store.audit_run_ids(done.audit_id, None, 0).await.is_err(), "a limit of 0 is refused");
        assert!(store.audit_run_ids(done.audit_id + 1000, None, 10).await.unwrap().is_empty());

        // A second cleanup matching nothing still writes its entry, with 0 deleted and no ids.
        let again = store.cleanup_recorded(&policy, "tester", &detail, Some(0)).await.unwrap();
        assert_eq!(again.deleted, 0);
        assert_ne!(again.audit_id, done.audit_id);
        assert!(store.audit_run_ids(again.audit_id, None, 10).await.unwrap().is_empty());
        let entry = store.audit_log(1).await.unwrap().remove(0);
        assert_eq!((entry.id, entry.affected), (again.audit_id, 0));
        store.close().await;
    }

    async fn a_recorded_delete_writes_its_entry_and_the_run_id_in_one_transaction(db) {
        let now = at("2026-05-01T12:00:00Z");
        let (store, _clock) = db.open_at(now).await;
        let mut r = WorkflowState::new("run 'x' 🚀", "p");
        r.status = Status::Failed;
        store.save_state(&r).await.unwrap();
        let detail = json!({"run_id": "run 'x' 🚀", "status": "failed"});
        let id = store
            .delete_run_recorded("run 'x' 🚀", "admin", "delete_run", &detail)
            .await
            .unwrap()
            .expect("the run existed");
        assert!(store.load_state("run 'x' 🚀").await.unwrap().is_none());
        let entry = store.audit_log(1).await.unwrap().remove(0);
        assert_eq!(entry.id, id);
        assert_eq!((entry.action.as_str(), entry.matched, entry.affected), ("delete_run", Some(1), 1));
        assert_eq!(entry.detail, detail);
        assert_eq!(at_least_one(store.audit_run_ids(id, None, 10).await.unwrap()), vec!["run 'x' 🚀".to_string()]);
        // No such run: nothing deleted, nothing recorded.
        let before = store.audit_log(100).await.unwrap().len();
        assert_eq!(store.delete_run_recorded("nope", "admin", "delete_run", &detail).await.unwrap(), None);
        assert_eq!(store.audit_log(100).await.unwrap().len(), before);
        assert!(store.delete_run_recorded("", "admin", "delete_run", &detail).await.is_err());
        store.close().await;

        // Read-only: refused, and the ids still read.
        let ro = db
            .open_with(flowstate_store::StoreOptions { read_only: true, ..Default::default() })
            .await;
        assert!(ro.delete_run_recorded("x", "a", "delete_run", &detail).await.is_err());
        assert!(ro
            .cleanup_recorded(&CleanupPolicy::older_than_days(1), "a", &detail, None)
            .await
            .is_err());
        assert_eq!(ro.audit_run_ids(id, None, 10).await.unwrap().len(), 1);
        let ids: BTreeSet<String> = ro.audit_run_ids(id, None, 10).await.unwrap().into_iter().collect();
        assert!(ids.contains("run 'x' 🚀"));
        ro.close().await;
    }

    async fn a_schema_3_database_is_upgraded_to_4_in_place_once(db) {
        let now = at("2026-05-01T12:00:00Z");
        let (store, _clock) = db.open_at(now).await;
        let mut r = WorkflowState::new("kept", "p");
        r.status = Status::Completed;
        store.save_state(&r).await.unwrap();
        let old = store.record_audit("admin", "cleanup", &json!({"older_than_days": 3}), Some(5), 5).await.unwrap();
        store.close().await;
        // As schema 3 left it: no flowstate_audit_run, version 3.
        exec_raw(&db, "DROP TABLE flowstate_audit_run; UPDATE flowstate_meta SET value = '3' WHERE key = 'schema_version'").await;

        // Read-only, schema 3 reads as it is: no ids recorded.
        let ro = db
            .open_with(flowstate_store::StoreOptions { read_only: true, ..Default::default() })
            .await;
        assert!(ro.audit_run_ids(old, None, 10).await.unwrap().is_empty());
        assert_eq!(ro.audit_log(10).await.unwrap().len(), 1);
        ro.close().await;

        let (store, _clock) = db.open_at(now).await;
        let report = store.migration().clone();
        assert_eq!(report.to_version, flowstate_store::SCHEMA_VERSION);
        assert!(
            report.changes.iter().any(|c| c.contains("flowstate_audit_run")),
            "{:?}",
            report.changes
        );
        assert!(
            report.changes.iter().all(|c| !c.contains("counters from the rows")),
            "the counters are kept: {:?}",
            report.changes
        );
        assert!(store.load_state("kept").await.unwrap().is_some());
        assert_eq!(store.audit_log(10).await.unwrap()[0].id, old, "old entries kept");
        let id = store.delete_run_recorded("kept", "admin", "delete_run", &json!({})).await.unwrap().unwrap();
        assert_eq!(store.audit_run_ids(id, None, 10).await.unwrap(), vec!["kept".to_string()]);
        store.close().await;

        let (again, _clock) = db.open_at(now).await;
        assert!(again.migration().changes.is_empty(), "{:?}", again.migration().changes);
        again.close().await;
    }
}

fn at_least_one(v: Vec<String>) -> Vec<String> {
    assert!(!v.is_empty());
    v
}

/// Runs `sql` on the test database directly (as an older flowstate left it).
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
