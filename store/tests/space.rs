//! Disk space (issue 15): what a cleanup would free (the preview's estimate), what it freed, and giving the space
//! back without blocking writers: a new SQLite file is incremental (`auto_vacuum` 2) and a cleanup gives its free
//! pages back in steps; a file with `auto_vacuum` NONE (flujo's) keeps them for reuse until converted once;
//! PostgreSQL reports the deleted rows' stored size and `VACUUM`s on request.

mod common;

use chrono::Duration;
use common::*;
use flowstate_store::{CleanupPolicy, Status, Store, WorkflowState};
use serde_json::json;

/// `old` old completed runs with contexts of about `kb` KiB (text that does not compress much) and 10 recent ones.
async fn fill(store: &Store, now: chrono::DateTime<chrono::Utc>, old: usize, kb: usize) {
    let mut runs = Vec::new();
    for i in 0..old {
        let mut r = WorkflowState::new(format!("old-{i:05}"), "p");
        r.status = Status::Completed;
        r.updated_at = Some(now - Duration::days(90));
        // xorshift64: hex that no compressor shrinks much.
        let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let text: String = (0..kb * 1024 / 16)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                format!("{x:016x}")
            })
            .collect();
        r.pipeline_context = json!({ "blob": text });
        runs.push(r);
    }
    for i in 0..10 {
        let mut r = WorkflowState::new(format!("new-{i}"), "p");
        r.status = Status::Completed;
        runs.push(r);
    }
    for chunk in runs.chunks(100) {
        store.save_many(chunk).await.unwrap();
    }
}

both_backends! {
    async fn a_cleanup_says_what_it_would_free_and_what_it_freed(db) {
        let now = at("2026-05-01T12:00:00Z");
        let (store, _clock) = db.open_at(now).await;
        fill(&store, now, 300, 16).await;
        let policy = CleanupPolicy::older_than_days(30);
        let preview = store.preview_cleanup(&policy).await.unwrap();
        assert_eq!(preview.matched, 300);
        let estimate = store.estimate_cleanup_bytes(&policy, preview.matched).await.unwrap();
        assert!(estimate.is_exact());
        assert_eq!(estimate.measured_runs, 300);
        // The contexts alone are 300 x 16 KiB of hex text (PostgreSQL may compress them a little).
        let contexts = 300 * 16 * 1024;
        assert!(
            estimate.bytes > contexts / 2 && estimate.bytes < contexts * 2,
            "estimate {} for {contexts} bytes of contexts",
            estimate.bytes
        );
        let before = store.space_use().await.unwrap();
        let done = store
            .cleanup_recorded(&policy, "t", &json!({"older_than_days": 30}), Some(300))
            .await
            .unwrap();
        assert_eq!(done.deleted, 300);
        if db.is_postgres() {
            assert_eq!(done.bytes_freed, estimate.bytes, "the same measure, taken as the rows were deleted");
            assert_eq!(done.bytes_returned, 0);
            assert_eq!(done.before.unwrap().free_bytes, None);
            let r = store.reclaim_space().await.unwrap();
            assert_eq!(r.method, "vacuum");
            assert!(r.after.bytes <= r.before.bytes, "{r:?}");
        } else {
            // A new file is incremental: its free pages went back to the file system.
            assert_eq!(before.incremental, Some(true));
            assert!(
                done.bytes_freed >= estimate.bytes / 2 && done.bytes_freed <= estimate.bytes * 3,
                "freed {} for an estimate of {}",
                done.bytes_freed,
                estimate.bytes
            );
            assert!(done.bytes_returned >= done.bytes_freed / 2, "{done:?}");
            let after = done.after.unwrap();
            assert!(after.bytes < before.bytes, "{before:?} -> {after:?}");
            assert_eq!(after.free_bytes, Some(0), "every free page given back");
            let file = std::fs::metadata(&db.location).unwrap().len() as i64;
            assert!(file <= before.bytes - done.bytes_returned / 2, "the file itself shrank: {file}");
        }
        // The entry carries the figures (the dashboard's result reads them there).
        let entry = store.audit_log(1).await.unwrap().remove(0);
        assert_eq!(entry.id, done.audit_id);
        assert_eq!(entry.detail["older_than_days"], 30);
        assert_eq!(entry.detail["space"]["bytes_freed"], done.bytes_freed);
        assert_eq!(entry.detail["space"]["bytes_returned"], done.bytes_returned);
        assert_eq!(store.load_state("new-3").await.unwrap().map(|r| r.run_id), Some("new-3".into()));
        store.close().await;
    }
}

/// A file as flujo creates it: `auto_vacuum` NONE (SQLite's default), flujo 0.4.35's table.
async fn flujo_style_file(path: &std::path::Path) {
    use sqlx::{ConnectOptions, Connection};
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .connect()
        .await
        .unwrap();
    let auto: i64 = sqlx::query_scalar("PRAGMA auto_vacuum")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(auto, 0);
    sqlx::raw_sql("CREATE TABLE t (x)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_with_auto_vacuum_none_keeps_its_free_pages_until_converted_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flujo.db");
    flujo_style_file(&path).await;
    let now = at("2026-05-01T12:00:00Z");
    let (store, _clock) = open_at(&path, now).await;
    assert_eq!(
        store.space_use().await.unwrap().incremental,
        Some(false),
        "opening never converts"
    );
    fill(&store, now, 200, 16).await;
    let policy = CleanupPolicy::older_than_days(30);
    let done = store
        .cleanup_recorded(&policy, "t", &json!({}), Some(200))
        .await
        .unwrap();
    assert_eq!(done.deleted, 200);
    assert!(done.bytes_freed > 200 * 16 * 1024 / 2, "{done:?}");
    assert_eq!(done.bytes_returned, 0, "auto_vacuum NONE: nothing given back");
    let after = done.after.unwrap();
    assert!(
        after.free_bytes.unwrap() >= done.bytes_freed / 2,
        "the freed pages are free pages now: {after:?}"
    );
    assert_eq!(after.bytes, done.before.unwrap().bytes, "the file did not shrink");
    let r = store.reclaim_space().await.unwrap();
    assert_eq!(r.method, "none");
    assert_eq!(r.bytes_returned(), 0);

    // The one blocking conversion: the file is rewritten, incremental, without its free pages.
    let c = store.convert_to_incremental().await.unwrap();
    assert_eq!(c.method, "vacuum_full_rewrite");
    assert_eq!(c.after.incremental, Some(true));
    assert_eq!(c.after.free_bytes, Some(0));
    assert!(c.after.bytes < c.before.bytes, "{c:?}");
    // Afterwards a cleanup gives its pages back by itself.
    fill(&store, now, 100, 16).await;
    let again = store
        .cleanup_recorded(&policy, "t", &json!({}), None)
        .await
        .unwrap();
    assert_eq!(again.deleted, 100);
    assert!(again.bytes_returned > 0, "{again:?}");
    assert_eq!(store.load_state("new-0").await.unwrap().unwrap().run_id, "new-0");
    store.close().await;
    // Read-only stores refuse both.
    let ro = Store::open_with(
        &path,
        flowstate_store::StoreOptions {
            read_only: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(ro.reclaim_space().await.is_err());
    assert!(ro.convert_to_incremental().await.is_err());
    assert!(ro.space_use().await.unwrap().bytes > 0);
    ro.close().await;
}
