//! Bulk loads ([`Store::begin_bulk_load`], [`Store::bulk_write`], [`Store::finish_bulk_load`]), each test on both
//! backends: the runs read back as saved, the counters are exact afterwards, nothing is left to migrate, and a
//! loader that dies half-way leaves a database whose next open finishes it, holding exactly the batches committed.

mod common;

use common::*;
use flowstate_store::{BulkBatch, BulkNote, ListQuery, Status, Store, WorkflowState};
use serde_json::json;

const NOW: &str = "2026-03-01T12:00:00Z";

/// `n` runs named `r00000`..., every status, some with the background-task columns, some with odd values.
fn runs(from: usize, n: usize) -> Vec<WorkflowState> {
    let statuses = [
        Status::Running,
        Status::Paused,
        Status::Completed,
        Status::Failed,
        Status::Cancelled,
    ];
    (from..from + n)
        .map(|i| {
            let mut s = WorkflowState::new(format!("r{i:05}"), format!("pipe_{}", i % 4));
            s.status = statuses[i % 5].clone();
            s.created_at = Some(at(NOW) - chrono::Duration::minutes(i as i64 * 7));
            s.updated_at = Some(at(NOW) - chrono::Duration::minutes(i as i64 * 3));
            s.execution_time_ms = (i % 3 != 0).then_some(i as i64 * 11);
            s.memory_usage_mb = Some(i as f64 / 3.0);
            s.pipeline_context =
                json!({"i": i, "text": "tab\there\nnewline \\ back", "nested": [1, {"a": null}]});
            s.last_step_output = (i % 2 == 0).then_some(serde_json::Value::Null);
            s.step_history = json!([{"step": i}]);
            if i % 5 == 3 {
                s.error_message = Some(format!("ValueError: bad input {}", i % 7));
            }
            if i % 9 == 0 {
                s.extras.is_background_task = true;
                s.extras.parent_run_id = Some("r00001".into());
                s.extras.metadata = Some(json!({"host": "w1"}));
            }
            s
        })
        .collect()
}

async fn audit_entry(store: &Store) -> i64 {
    store
        .record_audit("test", "copy", &json!({"state": "started"}), None, 0)
        .await
        .unwrap()
}

fn note(id: i64, copied: usize) -> BulkNote {
    BulkNote {
        id,
        detail: json!({"state": "copying", "copied": copied}),
        matched: None,
        affected: copied as i64,
    }
}

async fn assert_exact(store: &Store, expected: &[WorkflowState], pg: bool) {
    let check = store.verify_counters().await.unwrap();
    assert!(check.is_exact(), "{:?}", check.differences);
    let stats = store.get_workflow_stats().await.unwrap();
    assert_eq!(stats.total_workflows, expected.len() as i64);
    for run in expected {
        let mut got = store.load_state(&run.run_id).await.unwrap().expect("loaded");
        if pg {
            // flujo's REAL column keeps 32 bits.
            assert_eq!(
                got.memory_usage_mb.map(|m| m as f32),
                run.memory_usage_mb.map(|m| m as f32)
            );
            got.memory_usage_mb = run.memory_usage_mb;
        }
        assert_eq!(&got, run);
    }
    // Lists (through the rebuilt indexes) see every run.
    let page = store
        .list_workflows(&ListQuery {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.runs.len(), expected.len().min(1000));
}

both_backends! {
    /// A whole bulk load: the runs as saved, a refused run named and not written, the note in the audit log, the
    /// counters exact, and nothing left for the next open to migrate.
    async fn a_bulk_load_keeps_every_value_and_ends_with_exact_counters(db) {
        let (store, _) = db.open_at(at(NOW)).await;
        let entry = audit_entry(&store).await;
        store.begin_bulk_load().await.unwrap();
        let mut all = runs(0, 1200);
        let mut first = all[..700].to_vec();
        let mut bad = WorkflowState::new("bad_status", "p");
        bad.status = Status::from_stored(Some("exploded".into()));
        first.push(bad);
        let batch = BulkBatch::new(first);
        assert_eq!(batch.refused.len(), 1);
        assert_eq!(batch.refused[0].0, "bad_status");
        assert!(batch.refused[0].1.contains("exploded"), "{:?}", batch.refused);
        store.bulk_write(batch, Some(&note(entry, 701))).await.unwrap();
        store
            .bulk_write(BulkBatch::new(all[700..].to_vec()), Some(&note(entry, 1201)))
            .await
            .unwrap();
        let report = store.finish_bulk_load().await.unwrap();
        assert!(!report.is_noop(), "the migration rebuilt what the load dropped");
        let log = store.audit_log(10).await.unwrap();
        let e = log.iter().find(|e| e.id == entry).expect("the entry");
        assert_eq!(e.detail["copied"], 1201, "the last note is the entry's detail");
        assert_eq!(e.affected, 1201);
        assert_exact(&store, &all, db.is_postgres()).await;
        store.close().await;

        // Exactly the store's database: reopening finds nothing to do.
        let (again, _) = db.open_at(at(NOW)).await;
        assert!(again.migration().is_noop(), "{:?}", again.migration().changes);
        // And saves after it keep the counters exact.
        let mut more = runs(5000, 3);
        more[0].status = Status::Failed;
        again.save_many(&more).await.unwrap();
        all.extend(more);
        assert_exact(&again, &all, db.is_postgres()).await;
        again.close().await;
    }

    /// A loader that dies after some batches (closed without finishing): the next open migrates the database back
    /// to whole (indexes, triggers, counters recounted) with exactly the committed batches and their notes; a
    /// second bulk load then goes on from there.
    async fn a_bulk_load_that_dies_is_finished_by_the_next_open(db) {
        let (store, _) = db.open_at(at(NOW)).await;
        let entry = audit_entry(&store).await;
        store.begin_bulk_load().await.unwrap();
        let all = runs(0, 900);
        store.bulk_write(BulkBatch::new(all[..400].to_vec()), Some(&note(entry, 400))).await.unwrap();
        store.close().await; // killed here: no finish

        let (reopened, _) = db.open_at(at(NOW)).await;
        assert!(!reopened.migration().is_noop(), "the open finished the dropped indexes and counters");
        assert_exact(&reopened, &all[..400], db.is_postgres()).await;
        let log = reopened.audit_log(10).await.unwrap();
        assert_eq!(log.iter().find(|e| e.id == entry).unwrap().detail["copied"], 400);

        // Resumed: in bulk again, the rest, then finished.
        reopened.begin_bulk_load().await.unwrap();
        // A batch that repeats runs already in (a loader that lost its note) replaces them, never doubles them.
        reopened.bulk_write(BulkBatch::new(all[390..].to_vec()), Some(&note(entry, 900))).await.unwrap();
        reopened.finish_bulk_load().await.unwrap();
        assert_exact(&reopened, &all, db.is_postgres()).await;
        reopened.close().await;
        let (again, _) = db.open_at(at(NOW)).await;
        assert!(again.migration().is_noop(), "{:?}", again.migration().changes);
        again.close().await;
    }
}
