//! Cleanup racing writers (issue 4, part 8): a run made recent again by another connection while a cleanup is
//! deleting is not deleted, because every batch of the cleanup re-checks the policy; and the count the cleanup
//! returns is the number of rows really gone.
//!
//! Deterministic: the other connection waits until the cleanup has committed its first batch, then takes the
//! write lock (`BEGIN IMMEDIATE`) between two batches, so the cleanup's next batch waits for it; under that lock it makes a set of
//! old runs recent, keeping the list of those that still existed, holds the lock a moment, and commits. Each of
//! those runs must survive; every other old run must be gone.
//!
//! Quick (CI): 20,000 old runs (40 batches). Long (`FLOWSTATE_LONG_TESTS=1`): 100,000. See RELIABILITY.md.

mod support;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use flowstate_store::{time::format_timestamp, CleanupPolicy, Status, WorkflowState};
use sqlx::{ConnectOptions, Connection};
use support::*;

mod common;

fn now() -> DateTime<Utc> {
    common::at("2026-01-15T12:00:00Z")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_made_recent_during_a_cleanup_is_kept() {
    let old_runs: usize = scale(20_000, 100_000);
    let recent_runs = 100;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cleanup.db");
    let (store, _clock) = common::open_at(&path, now()).await;

    // Old terminal runs, idle for over a year (one second apart), and some recent ones.
    let mut all = Vec::with_capacity(old_runs + recent_runs);
    for i in 0..old_runs {
        let mut run = WorkflowState::new(format!("old-{i:06}"), format!("p{}", i % 3));
        run.status = [Status::Completed, Status::Failed, Status::Cancelled][i % 3].clone();
        let at = now() - chrono::Duration::days(400) + chrono::Duration::seconds(i as i64);
        run.created_at = Some(at);
        run.updated_at = Some(at);
        all.push(run);
    }
    for i in 0..recent_runs {
        let mut run = WorkflowState::new(format!("new-{i:03}"), "p0");
        run.status = Status::Completed;
        run.updated_at = Some(now() - chrono::Duration::days(1));
        all.push(run);
    }
    for chunk in all.chunks(2_000) {
        store.save_many(chunk).await.unwrap();
    }
    let total = (old_runs + recent_runs) as i64;
    // Targets spread over the whole range of old runs (every 97th).
    let targets: Vec<String> = (0..old_runs).step_by(97).map(|i| format!("old-{i:06}")).collect();

    let mut other = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .busy_timeout(Duration::from_secs(30))
        .connect()
        .await
        .unwrap();

    let policy = CleanupPolicy::older_than_days(30);
    let started = Instant::now();
    let cleanup = {
        let store = store.clone();
        let policy = policy.clone();
        tokio::spawn(async move { store.cleanup_old_workflows(&policy).await })
    };

    // Wait for the first batch to be committed.
    let seen_at_lock = loop {
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM workflow_state")
            .fetch_one(&mut other)
            .await
            .unwrap();
        if left < total {
            break left;
        }
        assert!(
            !cleanup.is_finished(),
            "the cleanup ended before its first batch was seen"
        );
        tokio::task::yield_now().await;
    };
    // Take the write lock: the cleanup's next batch then waits for us. Not through SQLite's busy handler, which
    // sleeps between tries and would let the cleanup win every time the lock comes free (it then could finish
    // first): try again at once until the lock is ours, which is between two of the cleanup's batches.
    sqlx::query("PRAGMA busy_timeout = 0")
        .execute(&mut other)
        .await
        .unwrap();
    let mut tries = 0u32;
    let mut tx = loop {
        tries += 1;
        match other.begin_with("BEGIN IMMEDIATE").await {
            Ok(tx) => break tx,
            Err(e) if e.to_string().contains("locked") || e.to_string().contains("busy") => {}
            Err(e) => panic!("BEGIN IMMEDIATE: {e}"),
        }
    };
    sqlx::query("PRAGMA busy_timeout = 30000")
        .execute(&mut *tx)
        .await
        .unwrap();
    let left_under_lock: i64 = sqlx::query_scalar("SELECT count(*) FROM workflow_state")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let recent = format_timestamp(&now());
    let mut made_recent = Vec::new();
    for id in &targets {
        let done =
            sqlx::query("UPDATE workflow_state SET updated_at = ?1, status = 'completed' WHERE run_id = ?2")
                .bind(&recent)
                .bind(id)
                .execute(&mut *tx)
                .await
                .unwrap();
        if done.rows_affected() == 1 {
            made_recent.push(id.clone());
        }
    }
    // Hold the lock a moment, so the cleanup is certainly waiting on it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    tx.commit().await.unwrap();

    let deleted = cleanup.await.unwrap().expect("the cleanup succeeds");
    let took = started.elapsed();

    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM workflow_state")
        .fetch_one(&mut other)
        .await
        .unwrap();
    assert_eq!(
        deleted as i64,
        total - left,
        "the count returned is the rows really gone"
    );
    // The race really happened in the middle of the cleanup.
    assert!(
        left_under_lock < total && left_under_lock > (recent_runs + made_recent.len()) as i64,
        "the lock was taken mid-cleanup: {left_under_lock} rows left of {total}"
    );
    assert!(
        !made_recent.is_empty(),
        "some targets still existed when made recent"
    );
    for id in &made_recent {
        assert!(
            store.load_state(id).await.unwrap().is_some(),
            "{id} was made recent during the cleanup but was deleted"
        );
    }
    // Everything else that was old is gone; the recent runs are untouched.
    assert_eq!(left as usize, recent_runs + made_recent.len());
    let kept_old: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM workflow_state WHERE run_id LIKE 'old-%' AND updated_at = ?1",
    )
    .bind(&recent)
    .fetch_one(&mut other)
    .await
    .unwrap();
    assert_eq!(kept_old as usize, made_recent.len());
    // And a second cleanup, with the same policy, finds nothing left to do.
    assert_eq!(store.cleanup_old_workflows(&policy).await.unwrap(), 0);
    other.close().await.unwrap();
    store.close().await;

    figure(
        "cleanup_race",
        format!(
            "{old_runs} old runs: first batch seen at {seen_at_lock} rows left, lock taken at {left_under_lock}; \
             ({tries} tries); {} of {} targets made recent under the lock and kept; {deleted} deleted in {:.2} s",
            made_recent.len(),
            targets.len(),
            took.as_secs_f64()
        ),
    );
}
