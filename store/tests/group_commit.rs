//! Group commit (issue 5): concurrent saves share one statement and one commit on the store's write connection,
//! and concurrent lookups share one statement on its read connections, without changing what any caller sees:
//! every save that returned `Ok` is there with its content, one bad row fails only its own caller, a held lock
//! still gives `Busy` after each caller's own timeout, and closing or dropping the store stops its tasks.
//!
//! Quick (CI): 16 tasks × 150 runs. Long (`FLOWSTATE_LONG_TESTS=1`): 32 tasks × 1,000 runs.

mod common;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flowstate_store::{Durability, Status, Store, StoreError, StoreOptions, WorkflowState};
use serde_json::json;
use sqlx::{Connection, Row, SqliteConnection};
use support::{long_mode, scale};

fn tasks() -> usize {
    scale(16, 32)
}

fn runs_per_task() -> usize {
    scale(150, 1_000)
}

fn run(id: &str, version: i64) -> WorkflowState {
    let mut s = WorkflowState::new(id, "group-commit");
    s.current_step_index = version;
    s.total_steps = 1_000;
    s.status = if version % 7 == 0 {
        Status::Failed
    } else {
        Status::Running
    };
    s.pipeline_context = json!({ "id": id, "version": version, "pad": "p".repeat(300) });
    s.step_history = json!([{ "step": version }]);
    s
}

/// Rows in the file, counted on a connection of its own (as another process would).
async fn count_rows(path: &Path) -> i64 {
    let mut conn = common::raw(path).await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM workflow_state")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    n
}

async fn integrity_ok(path: &Path) {
    let mut conn = common::raw(path).await;
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(check, "ok");
    conn.close().await.unwrap();
}

/// Takes the write lock on a connection of its own (`BEGIN IMMEDIATE` and a write), as another process would.
async fn hold_write_lock(path: &Path) -> SqliteConnection {
    let mut conn = common::raw(path).await;
    sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await.unwrap();
    sqlx::query("CREATE TABLE IF NOT EXISTS lock_holder (x)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}

async fn release(mut conn: SqliteConnection) {
    sqlx::query("ROLLBACK").execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
}

/// Many tasks save at once (new runs, updates of their own earlier runs, and one run they all update): every
/// save that returned is there with its last content, the counts are exact, and saves shared commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_saves_share_commits_and_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("group.db");
    let store = Store::open(&path).await.unwrap();
    let (tasks, per_task) = (tasks(), runs_per_task());
    let started = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..per_task {
                let id = format!("t{t:02}-{i:05}");
                store.save_state(&run(&id, 1)).await.unwrap();
                if i % 10 == 9 {
                    // An update of an earlier run of this task: its last version is 2.
                    let earlier = format!("t{t:02}-{:05}", i - 5);
                    store.save_state(&run(&earlier, 2)).await.unwrap();
                }
                if i % 25 == 0 {
                    // Everyone updates the same run; its creation time must be the first save's.
                    store
                        .save_state(&run("hot", (t * per_task + i) as i64))
                        .await
                        .unwrap();
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let elapsed = started.elapsed();
    let stats = store.write_stats();
    let expected = (tasks * per_task + 1) as i64;
    assert_eq!(count_rows(&path).await, expected, "one row per run");
    assert_eq!(
        store.get_workflow_stats().await.unwrap().total_workflows,
        expected
    );
    let saves = (tasks * (per_task + per_task / 10 + per_task.div_ceil(25))) as u64;
    assert_eq!(stats.saves, saves, "every save was counted once");
    assert!(
        stats.save_commits < stats.saves,
        "concurrent saves shared commits: {stats:?}"
    );
    assert_eq!(stats.groups_split, 0, "no group failed: {stats:?}");

    // Every run loads back (many lookups at once, so they share statements too) with its last version.
    let mut handles = Vec::new();
    for t in 0..tasks {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..per_task {
                let id = format!("t{t:02}-{i:05}");
                let got = store.load_state(&id).await.unwrap().expect("the run is there");
                let version = if i % 10 == 4 && i + 5 < per_task { 2 } else { 1 };
                assert_eq!(got.run_id, id);
                assert_eq!(got.current_step_index, version, "{id}");
                assert_eq!(got.pipeline_context, run(&id, version).pipeline_context, "{id}");
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let hot = store.load_state("hot").await.unwrap().unwrap();
    assert!(hot.created_at.unwrap() <= hot.updated_at.unwrap());
    integrity_ok(&path).await;
    store.close().await;
    support::figure(
        "group_commit",
        format!(
            "{tasks} tasks x {per_task} runs: {} saves in {:.2} s ({:.0}/s) with {} commits ({:.1} saves per \
             commit) at synchronous=FULL",
            stats.saves,
            elapsed.as_secs_f64(),
            stats.saves as f64 / elapsed.as_secs_f64(),
            stats.save_commits,
            stats.saves as f64 / stats.save_commits as f64
        ),
    );
}

/// A save that SQLite refuses (a trigger raises an error for its run, after the store's own checks passed) fails
/// alone: the other saves of its group are written, each caller gets its own result.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_row_fails_only_its_own_save() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("poison.db");
    let store = Store::open(&path).await.unwrap();
    // Another program's rule, in the file: runs called poison-* are refused by the database itself.
    let mut conn = common::raw(&path).await;
    sqlx::query(
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON workflow_state WHEN NEW.run_id LIKE 'poison-%' \
         BEGIN SELECT RAISE(ABORT, 'poisoned run refused'); END",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();

    // While another connection holds the lock, the first save waits in the writer and the others queue up
    // behind it; once the lock is released they are written as one group, which holds the two poisoned runs.
    let lock = hold_write_lock(&path).await;
    let ids: Vec<String> = (0..24)
        .map(|i| {
            if i == 7 || i == 16 {
                format!("poison-{i}")
            } else {
                format!("good-{i}")
            }
        })
        .collect();
    let mut handles = Vec::new();
    for id in &ids {
        let (store, id) = (store.clone(), id.clone());
        handles.push(tokio::spawn(async move {
            (id.clone(), store.save_state(&run(&id, 1)).await)
        }));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    release(lock).await;
    for h in handles {
        let (id, result) = h.await.unwrap();
        if id.starts_with("poison") {
            match result {
                Err(StoreError::Database(e)) => {
                    assert!(e.to_string().contains("poisoned run refused"), "{id}: {e}")
                }
                other => panic!("{id}: expected the database's refusal, got {other:?}"),
            }
            assert!(
                store.load_state(&id).await.unwrap().is_none(),
                "{id} was not written"
            );
        } else {
            result.unwrap_or_else(|e| panic!("{id} failed with its group: {e}"));
            assert_eq!(store.load_state(&id).await.unwrap().unwrap().run_id, id);
        }
    }
    assert_eq!(count_rows(&path).await, 22);
    assert_eq!(store.get_workflow_stats().await.unwrap().total_workflows, 22);
    let stats = store.write_stats();
    assert!(stats.groups_split >= 1, "the poisoned group was split: {stats:?}");
    assert_eq!(stats.saves, 22);

    // save_many stays all or none: one poisoned run fails the whole call, and nothing of it is written.
    let batch: Vec<WorkflowState> = ["many-1", "poison-many", "many-2"]
        .iter()
        .map(|id| run(id, 1))
        .collect();
    let result = store.save_many(&batch).await;
    assert!(matches!(result, Err(StoreError::Database(_))), "{result:?}");
    assert!(store.load_state("many-1").await.unwrap().is_none());
    assert_eq!(count_rows(&path).await, 22);
    integrity_ok(&path).await;
    store.close().await;
}

/// Two saves of the same new run waiting together: the second keeps the creation time of the first (as it would
/// one after the other), which a single multi-row statement would not see.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_saved_twice_in_one_group_keeps_its_first_creation_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("twice.db");
    let t1 = common::at("2025-03-01T10:00:00Z");
    let t2 = common::at("2025-03-01T10:00:05Z");
    let (store, clock) = common::open_at(&path, t1).await;
    let lock = hold_write_lock(&path).await;
    let first = {
        let store = store.clone();
        tokio::spawn(async move { store.save_state(&run("blocker", 1)).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Queued behind the blocked save: two saves of one new run (at t1, then at t2) between other runs.
    let mut handles = Vec::new();
    for (id, version, at) in [
        ("a", 1, t1),
        ("twice", 1, t1),
        ("b", 1, t1),
        ("twice", 2, t2),
        ("c", 1, t2),
    ] {
        clock.set(at);
        let store = store.clone();
        handles.push(tokio::spawn(
            async move { store.save_state(&run(id, version)).await },
        ));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    release(lock).await;
    first.await.unwrap().unwrap();
    for h in handles {
        h.await.unwrap().unwrap();
    }
    let twice = store.load_state("twice").await.unwrap().unwrap();
    assert_eq!(twice.current_step_index, 2, "the later save wins");
    assert_eq!(twice.created_at, Some(t1), "created when first saved");
    assert_eq!(twice.updated_at, Some(t2), "updated by the second save");
    assert_eq!(count_rows(&path).await, 5);
    store.close().await;
}

/// `close` while many saves are under way: it returns promptly, every save returns (none hangs), saves that
/// returned `Ok` are in the file when it is opened again, and saves after `close` fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn close_while_saves_are_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("close.db");
    let store = Store::open_with(
        &path,
        StoreOptions {
            durability: Durability::Normal,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let saved = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut handles = Vec::new();
    for t in 0..16 {
        let (store, saved) = (store.clone(), Arc::clone(&saved));
        handles.push(tokio::spawn(async move {
            let mut refused = 0;
            for i in 0.. {
                let id = format!("c{t:02}-{i:06}");
                match store.save_state(&run(&id, 1)).await {
                    Ok(()) => saved.lock().unwrap().push(id),
                    Err(StoreError::Database(sqlx::Error::PoolClosed)) => {
                        refused += 1;
                        break;
                    }
                    Err(e) => panic!("{id}: unexpected error {e}"),
                }
            }
            refused
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let closing = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), store.close())
        .await
        .expect("close returns while saves are in flight");
    let close_took = closing.elapsed();
    for h in handles {
        let refused = tokio::time::timeout(Duration::from_secs(10), h)
            .await
            .expect("every save returns after close")
            .unwrap();
        assert_eq!(refused, 1, "each task's next save after close was refused");
    }
    assert!(matches!(
        store.save_state(&run("late", 1)).await,
        Err(StoreError::Database(sqlx::Error::PoolClosed))
    ));
    assert!(matches!(
        store.load_state("late").await,
        Err(StoreError::Database(sqlx::Error::PoolClosed))
    ));
    drop(store);

    let saved = std::mem::take(&mut *saved.lock().unwrap());
    assert!(
        saved.len() > 16,
        "saves went through before the close ({})",
        saved.len()
    );
    let reopened = Store::open(&path).await.unwrap();
    let in_file: BTreeSet<String> = {
        let mut conn = common::raw(&path).await;
        let rows = sqlx::query("SELECT run_id FROM workflow_state")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        rows.iter().map(|r| r.get::<String, _>(0)).collect()
    };
    let missing: Vec<&String> = saved.iter().filter(|id| !in_file.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "saves that returned Ok are missing: {missing:?}"
    );
    integrity_ok(&path).await;
    reopened.close().await;
    eprintln!(
        "close with 16 saving tasks took {close_took:?}; {} saves returned Ok before it",
        saved.len()
    );
}

/// A lock held by another connection for longer than the busy timeout: every save (and `save_many`) gets
/// `Busy` once its own timeout is spent, counted from its call, even one that queued behind another waiting save;
/// nothing hangs, nothing is written, and saving works again once the lock is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn busy_is_reported_after_each_saves_own_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.db");
    let timeout = Duration::from_millis(1000);
    let store = Store::open_with(
        &path,
        StoreOptions {
            busy_timeout: timeout,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let lock = hold_write_lock(&path).await;
    let mut handles = Vec::new();
    // Two waves: the second arrives while the first is already waiting for the lock, so it waits in the queue
    // first; it must still give up one timeout after its own call, not one timeout after the first wave did.
    for wave in 0..2 {
        for i in 0..6 {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                let called = Instant::now();
                let id = format!("busy-{wave}-{i}");
                let result = if i == 5 {
                    store.save_many(&[run(&id, 1), run(&format!("{id}-b"), 1)]).await
                } else {
                    store.save_state(&run(&id, 1)).await
                };
                (id, called.elapsed(), result)
            }));
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    for h in handles {
        let (id, waited, result) = tokio::time::timeout(Duration::from_secs(10), h)
            .await
            .expect("a save under a held lock returns")
            .unwrap();
        match result {
            Err(StoreError::Busy { timeout_ms, .. }) => assert_eq!(timeout_ms, 1000),
            other => panic!("{id}: expected Busy, got {other:?}"),
        }
        assert!(
            waited >= timeout.mul_f32(0.9),
            "{id} waited its timeout before giving up ({waited:?})"
        );
        assert!(
            waited < timeout.mul_f32(1.5),
            "{id} gave up about its own timeout after its call, not after the queue's ({waited:?})"
        );
    }
    release(lock).await;
    assert_eq!(count_rows(&path).await, 0, "nothing was written under the lock");
    store.save_state(&run("after", 1)).await.unwrap();
    assert_eq!(count_rows(&path).await, 1);
    store.close().await;
}

/// Lookups made at once share statements: each caller gets exactly its own run (or none), whatever its id holds
/// (quotes, JSON and SQL metacharacters, NUL, non-ASCII), asked once or several times in the same batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_lookups_get_exactly_their_own_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lookups.db");
    let store = Store::open(&path).await.unwrap();
    let stored: Vec<String> = [
        "plain",
        "with \"quotes\" and \\backslash\\",
        "[\"json\", \"array\"]",
        "x' OR '1'='1",
        "émoji 🚀 and RTL \u{202e}txet",
        "prefix",
        "123",
        "1e3",
        " spaced ",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain((0..200).map(|i| format!("run-{i:04}")))
    .collect();
    store
        .save_many(&stored.iter().map(|id| run(id, 3)).collect::<Vec<_>>())
        .await
        .unwrap();
    let missing: Vec<String> = [
        "prefix\0tail",
        "PLAIN",
        "1000",
        "run-0200",
        "%",
        "run-000",
        "\u{0}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let asks: Vec<String> = stored.iter().chain(missing.iter()).cloned().collect();
    let asks = Arc::new(asks);
    let stored_set: Arc<BTreeSet<String>> = Arc::new(stored.iter().cloned().collect());
    let mut handles = Vec::new();
    for t in 0..24usize {
        let (store, asks, stored_set) = (store.clone(), Arc::clone(&asks), Arc::clone(&stored_set));
        handles.push(tokio::spawn(async move {
            let mut found = 0;
            for k in 0..asks.len() {
                // Tasks walk the ids in different orders, so batches mix them (and repeat some).
                let id = &asks[(k * 7 + t * 13) % asks.len()];
                let got = store.load_state(id).await.unwrap();
                if stored_set.contains(id) {
                    let got = got.unwrap_or_else(|| panic!("{id:?} not found"));
                    assert_eq!(&got.run_id, id);
                    assert_eq!(got.pipeline_context, run(id, 3).pipeline_context);
                    found += 1;
                } else {
                    assert!(got.is_none(), "{id:?} matched {:?}", got.map(|g| g.run_id));
                }
            }
            found
        }));
    }
    for h in handles {
        assert_eq!(h.await.unwrap(), stored.len());
    }
    store.close().await;
}

/// Dropping the last handle of a store (without `close`) stops its threads and closes every connection. Run in a
/// child process of its own, where every SQLite connection's worker thread (`sqlx-sqlite-worker-N`) and every
/// thread of the store's own (`flowstate-writer`, `flowstate-reader`) is this store's: there must be none left
/// soon after the drop.
#[test]
fn dropping_the_last_store_closes_its_connections() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dropped.db");
    let child = support::spawn_child("drop", &[("FS_DB", path.display().to_string())]);
    let output = child.wait_with_output().unwrap();
    let reports: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix(support::REPORT).map(str::to_string))
        .collect();
    assert!(output.status.success(), "the child failed: {reports:?}");
    let threads = reports
        .iter()
        .find_map(|r| r.strip_prefix("THREADS "))
        .unwrap_or_else(|| panic!("no report from the child: {reports:?}"));
    let (open, left) = threads.split_once(' ').unwrap();
    assert!(
        open.parse::<usize>().unwrap() >= 3,
        "writer, readers and pool had threads: {threads}"
    );
    assert_eq!(
        left, "0",
        "connection threads left after the last store was dropped"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(rt.block_on(count_rows(&path)), 2);
}

/// The child of [`dropping_the_last_store_closes_its_connections`].
async fn drop_main() {
    let path = support::child_arg("FS_DB");
    let workers = || {
        std::fs::read_dir("/proc/self/task")
            .map(|tasks| {
                tasks
                    .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                    .filter(|name| name.starts_with("sqlx-sqlite") || name.starts_with("flowstate-"))
                    .count()
            })
            .unwrap_or(0)
    };
    let store = Store::open(&path).await.unwrap();
    let other = store.clone();
    store.save_state(&run("one", 1)).await.unwrap();
    other.save_state(&run("two", 1)).await.unwrap();
    assert!(other.load_state("one").await.unwrap().is_some());
    let open = workers();
    drop(store);
    drop(other);
    let deadline = Instant::now() + Duration::from_secs(10);
    while workers() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    support::report(format!("THREADS {open} {}", workers()));
}

#[test]
#[ignore = "a helper: dropping_the_last_store_closes_its_connections runs it as a child process"]
fn child_process() {
    let Some(role) = support::child_role() else { return };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    match role.as_str() {
        "drop" => rt.block_on(drop_main()),
        other => panic!("unknown child role {other}"),
    }
}

/// The long version's figure for RELIABILITY-style reporting: saves per second and per commit with 1, 8 and 32
/// callers at both durabilities (debug build; the release figures are in BENCHMARKS.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn saves_per_commit_grow_with_callers() {
    let seconds = if long_mode() { 3.0 } else { 0.5 };
    let mut lines = Vec::new();
    for durability in [Durability::Full, Durability::Normal] {
        let mut per_commit: BTreeMap<usize, f64> = BTreeMap::new();
        for callers in [1usize, 8, 32] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("rate.db");
            let store = Store::open_with(
                &path,
                StoreOptions {
                    durability,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            let stop = Instant::now() + Duration::from_secs_f64(seconds);
            let mut handles = Vec::new();
            for c in 0..callers {
                let store = store.clone();
                handles.push(tokio::spawn(async move {
                    let mut i = 0;
                    while Instant::now() < stop {
                        store.save_state(&run(&format!("r{c}-{i}"), 1)).await.unwrap();
                        i += 1;
                    }
                }));
            }
            for h in handles {
                h.await.unwrap();
            }
            let stats = store.write_stats();
            assert_eq!(count_rows(&path).await, stats.saves as i64);
            per_commit.insert(callers, stats.saves as f64 / stats.save_commits.max(1) as f64);
            lines.push(format!(
                "{durability:?} {callers} callers: {:.0} saves/s, {:.1} per commit",
                stats.saves as f64 / seconds,
                per_commit[&callers]
            ));
            store.close().await;
        }
        assert!(
            (per_commit[&1] - 1.0).abs() < f64::EPSILON,
            "one caller: one save per commit"
        );
        assert!(per_commit[&32] > 2.0, "32 callers share commits: {per_commit:?}");
    }
    support::figure("group_commit rates", lines.join("; "));
}

/// Writes that never pause (a long cleanup, a busy pipeline) must still let SQLite start the WAL over: the write
/// connection checkpoints in its own commits (SQLite's automatic checkpoint, 1,000 pages). A version that moved
/// checkpoints to a background task (passive checkpoints, which never copy everything while writes go on) let the
/// WAL grow without end and filled the disk during a 1M-row cleanup; this test fails on such a version (151 MB of
/// WAL in 4 s).
#[tokio::test]
async fn the_wal_stays_bounded_under_writes_that_never_pause() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nonstop.db");
    let store = Store::open(&path).await.unwrap();
    let wal = path.with_file_name("nonstop.db-wal");
    let writers = 4;
    let deadline = Instant::now() + Duration::from_secs(scale(4, 20));
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                let mut s = WorkflowState::new(format!("w{w}-{}", n % 50), "nonstop");
                s.current_step_index = n as i64;
                s.pipeline_context = json!({ "pad": "y".repeat(8_000), "n": n });
                store.save_state(&s).await.unwrap();
                n += 1;
            }
            n
        }));
    }
    let mut largest = 0u64;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
    }
    let mut saves = 0;
    for t in tasks {
        saves += t.await.unwrap();
    }
    // SQLite checkpoints past 1,000 pages of 4 KB; a commit in flight and the frame headers come on top.
    let bound = 1_000 * 4096 * 4;
    assert!(
        largest < bound,
        "the WAL reached {largest} bytes (bound {bound}) over {saves} saves that never paused"
    );
    assert!(saves > 100, "{saves} saves");
    integrity_ok(&path).await;
    store.close().await;
}

/// The WAL index's two counters (SQLite's `-shm` file, native byte order): the last frame written to the WAL
/// (`mxFrame`, in the index header) and the frames already copied into the database (`nBackfill`, after the two
/// copies of the 48-byte header).
fn wal_frames(db: &Path) -> (u32, u32) {
    let shm = std::fs::read(format!("{}-shm", db.display())).unwrap();
    let word = |at: usize| u32::from_ne_bytes(shm[at..at + 4].try_into().unwrap());
    (word(16), word(96))
}

/// A cleanup copies what each of its batches wrote into the database itself (a checkpoint in the batch's own turn
/// on the write connection). Left to SQLite's automatic checkpoint, up to 1,000 pages of deletions wait in the
/// WAL and are copied inside a later commit, often a save's, which then waits for them (at 10M runs, saves stalled
/// 20–50 ms behind such checkpoints). So when the cleanup returns, nothing it wrote is left in the WAL.
#[tokio::test]
async fn a_cleanup_leaves_nothing_in_the_wal_for_the_next_save() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cleanup-wal.db");
    let store = Store::open(&path).await.unwrap();
    let old = chrono::DateTime::parse_from_rfc3339("2020-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let runs: Vec<WorkflowState> = (0..2_000)
        .map(|i| {
            let mut s = run(&format!("old-{i:05}"), 1);
            s.status = Status::Completed;
            s.pipeline_context = json!({ "i": i, "pad": "c".repeat(3_000) });
            s.created_at = Some(old);
            s.updated_at = Some(old);
            s
        })
        .collect();
    store.save_many(&runs).await.unwrap();
    store.save_state(&run("kept", 1)).await.unwrap();

    let deleted = store
        .cleanup_old_workflows(&flowstate_store::CleanupPolicy::older_than_days(30))
        .await
        .unwrap();
    assert_eq!(deleted, 2_000);
    let (written, copied) = wal_frames(&path);
    assert!(written > 0, "the cleanup wrote through the WAL");
    assert_eq!(
        copied,
        written,
        "{} WAL frames the cleanup wrote were left for a later commit to copy",
        written - copied
    );
    assert_eq!(count_rows(&path).await, 1);
    integrity_ok(&path).await;
    store.close().await;
}
