//! Reliability on PostgreSQL (issue 14, point 5; RELIABILITY.md, "PostgreSQL: reliability"):
//!
//! - many writer **processes** save while a reader reads the figures and pages as the dashboard does: counters
//!   exact, every save reported done is there;
//! - the server stopped (fast shutdown) and crashed (SIGKILL) under load: calls fail with a typed error within
//!   the busy timeout and a bound, never hang; the store reconnects by itself; no save reported done is lost;
//! - a connection killed mid-transaction (`pg_terminate_backend` of a `save_many` and of a cleanup batch, each
//!   held inside its transaction): a typed error, nothing half-written, counters exact, the next call works;
//! - migrations racing from several processes on a fresh database and on a flujo database with rows;
//! - a role that may only SELECT reads everything through a read-only store and every write is `Conflict`.
//!
//! Tests that stop or kill the server start one of their own (`flowstate_testkit::pg::Server`); the others use
//! `FLOWSTATE_TEST_PG` when set, else a server of their own. Without PostgreSQL's programs they print `SKIPPED`.
//! Quick by default; `FLOWSTATE_LONG_TESTS=1` runs the long versions. Child processes are this test binary run
//! again (`child_process`, see tests/support).

mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use flowstate_store::{
    Bucket, CleanupPolicy, FixedClock, ListQuery, Status, Store, StoreError, StoreOptions, TextColumn,
    WorkflowState,
};
use flowstate_testkit::pg::{self, Server, FLUJO_DDL};
use serde_json::json;
use sqlx::PgConnection;
use support::{child_arg, child_role, collect_reports, figure, report, scale, spawn_child};

const STATUSES: [Status; 5] = [
    Status::Running,
    Status::Paused,
    Status::Completed,
    Status::Failed,
    Status::Cancelled,
];

/// A database for a test that leaves the server running: on `FLOWSTATE_TEST_PG` when set, else on a server of
/// the test's own (kept alive by the returned `Server`). `None` after `SKIPPED` without PostgreSQL.
async fn database(test: &str) -> Option<(Option<Server>, String)> {
    if pg::shared_url().is_some() {
        return Some((None, pg::fresh_database(test).await.unwrap()));
    }
    let server = tokio::task::block_in_place(|| Server::start_or_skip(test))?;
    let url = server.fresh_database(test).await.unwrap();
    Some((Some(server), url))
}

async fn open_with(url: &str, busy: Duration, connections: u32) -> Store {
    Store::open_with(
        url,
        StoreOptions {
            busy_timeout: busy,
            max_connections: connections,
            ..Default::default()
        },
    )
    .await
    .expect("opening the store")
}

fn run(id: &str, pipeline: &str, version: i64, status: Status) -> WorkflowState {
    let mut s = WorkflowState::new(id, pipeline);
    s.current_step_index = version;
    s.total_steps = 1_000_000;
    s.status = status.clone();
    s.pipeline_context = json!({"v": version, "id": id});
    s.error_message = (status == Status::Failed).then(|| format!("failed at {version}"));
    s.execution_time_ms = Some(version % 1000 + 1);
    s
}

/// `(run_id, current_step_index, status)` of every row, read with a plain connection.
async fn rows(url: &str) -> HashMap<String, (i64, String)> {
    let mut conn = pg::connect(url).await.unwrap();
    let rows: Vec<(String, i32, String)> =
        sqlx::query_as("SELECT run_id, current_step_index, status FROM workflow_state")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    rows.into_iter()
        .map(|(id, v, s)| (id, (i64::from(v), s)))
        .collect()
}

/// The counters equal a recount, and the store's figures equal `count(*)` per status.
async fn assert_exact(store: &Store, url: &str, what: &str) {
    let check = store.verify_counters().await.unwrap();
    assert!(
        check.is_exact(),
        "{what}: counters differ: {:?}",
        check.differences
    );
    let stats = store.get_workflow_stats().await.unwrap();
    let mut conn = pg::connect(url).await.unwrap();
    let counted: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM workflow_state GROUP BY status")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let counted: BTreeMap<String, i64> = counted.into_iter().collect();
    assert_eq!(stats.status_counts, counted, "{what}");
    assert_eq!(stats.total_workflows, counted.values().sum::<i64>(), "{what}");
}

fn kind(e: &StoreError) -> &'static str {
    match e {
        StoreError::Unavailable { .. } => "Unavailable",
        StoreError::Busy { .. } => "Busy",
        StoreError::Conflict(_) => "Conflict",
        StoreError::Database(_) => "Database",
        StoreError::InvalidInput { .. } => "InvalidInput",
        _ => "other",
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Child processes

#[test]
#[ignore = "a helper: the reliability tests run it as a child process"]
fn child_process() {
    let Some(role) = child_role() else { return };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match role.as_str() {
        "writer" => rt.block_on(writer_child()),
        "migrate" => rt.block_on(migrate_child()),
        other => panic!("unknown child role {other}"),
    }
}

/// Saves `FS_RUNS` operations into `FS_URL` as writer `FS_WRITER`: new runs, status changes of its earlier
/// runs, `save_many` batches of 4. Reports `saved ID VERSION STATUS` after each call returned Ok, `error KIND
/// MESSAGE` after each that did not.
async fn writer_child() {
    let url = child_arg("FS_URL");
    let w = child_arg("FS_WRITER");
    let n: i64 = child_arg("FS_RUNS").parse().unwrap();
    let store = match Store::open(&url).await {
        Ok(s) => s,
        Err(e) => {
            report(format_args!("error open {e}"));
            return;
        }
    };
    let mut versions: Vec<i64> = Vec::new();
    let mut i = 0i64;
    while i < n {
        let result = match i % 10 {
            7 | 8 if !versions.is_empty() => {
                let k = (i as usize * 7919) % versions.len();
                versions[k] += 1;
                let st = STATUSES[(versions[k] as usize + k) % 5].clone();
                let s = run(&format!("w{w}-{k}"), &format!("p{}", k % 3), versions[k], st);
                store.save_state(&s).await.map(|()| vec![s])
            }
            9 => {
                let batch: Vec<WorkflowState> = (0..4)
                    .map(|_| {
                        versions.push(0);
                        let k = versions.len() - 1;
                        run(
                            &format!("w{w}-{k}"),
                            &format!("p{}", k % 3),
                            0,
                            STATUSES[k % 5].clone(),
                        )
                    })
                    .collect();
                store.save_many(&batch).await.map(|()| batch)
            }
            _ => {
                versions.push(0);
                let k = versions.len() - 1;
                let s = run(
                    &format!("w{w}-{k}"),
                    &format!("p{}", k % 3),
                    0,
                    STATUSES[k % 5].clone(),
                );
                store.save_state(&s).await.map(|()| vec![s])
            }
        };
        match result {
            Ok(saved) => {
                for s in saved {
                    report(format_args!(
                        "saved {} {} {}",
                        s.run_id,
                        s.current_step_index,
                        s.status.as_str()
                    ));
                }
            }
            Err(e) => report(format_args!("error {} {e}", kind(&e))),
        }
        i += 1;
    }
    store.close().await;
}

/// Waits for the file `FS_GO`, opens `FS_URL` (migrating it when needed), reports `opened MIGRATED EXACT TOTAL`
/// or `error MESSAGE`.
async fn migrate_child() {
    let url = child_arg("FS_URL");
    let go = PathBuf::from(child_arg("FS_GO"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !go.exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    match Store::open(&url).await {
        Ok(store) => {
            let exact = store.verify_counters().await.map(|c| c.is_exact());
            let total = store.get_workflow_stats().await.map(|s| s.total_workflows);
            report(format_args!(
                "opened {} {:?} {:?}",
                !store.migration().is_noop(),
                exact,
                total
            ));
            store.close().await;
        }
        Err(e) => report(format_args!("error {e}")),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// (a) many writer processes while the dashboard reads

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_processes_and_a_reader_keep_exact_counters_and_lose_nothing() {
    let test = "pg_writer_processes";
    let Some((_server, url)) = database(test).await else {
        return;
    };
    let (writers, per_writer) = scale((4, 200), (8, 2_000));
    let started = Instant::now();
    // The writers race to migrate the fresh database as they start.
    let children: Vec<_> = (0..writers)
        .map(|w| {
            let mut child = spawn_child(
                "writer",
                &[
                    ("FS_URL", url.clone()),
                    ("FS_WRITER", w.to_string()),
                    ("FS_RUNS", per_writer.to_string()),
                ],
            );
            let reports = collect_reports(child.stdout.take().unwrap());
            (child, reports)
        })
        .collect();

    // The reader: what the dashboard's overview and runs pages read, without pause, until the writers are done.
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let url = url.clone();
        let done = done.clone();
        tokio::spawn(async move {
            // The store may open before the writers have migrated: a racing open too.
            let store = open_with(&url, Duration::from_secs(5), 8).await;
            let (mut reads, mut last_total) = (0u64, 0i64);
            while !done.load(Ordering::Relaxed) {
                let stats = store
                    .get_workflow_stats()
                    .await
                    .expect("stats while writers write");
                assert!(stats.total_workflows >= last_total, "the total went down");
                assert_eq!(stats.total_workflows, stats.status_counts.values().sum::<i64>());
                last_total = stats.total_workflows;
                let page = store
                    .list_workflows(&ListQuery {
                        limit: Some(50),
                        ..Default::default()
                    })
                    .await
                    .expect("a list page");
                if let Some(cursor) = page.next_cursor {
                    store
                        .list_workflows(&ListQuery {
                            limit: Some(50),
                            statuses: vec![Status::Failed, Status::Running],
                            cursor: Some(cursor),
                            ..Default::default()
                        })
                        .await
                        .expect("a filtered second page");
                }
                store.get_failed_workflows(24, 50).await.expect("failed runs");
                store
                    .stuck_runs(chrono::Duration::hours(1), 20)
                    .await
                    .expect("stuck runs");
                reads += 4;
            }
            store.close().await;
            reads
        })
    };
    let mut last: HashMap<String, (i64, String)> = HashMap::new();
    let mut reported = 0usize;
    let mut errors = Vec::new();
    for (mut child, reports) in children {
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "a writer process failed: {status}");
        for line in reports.join().unwrap() {
            let parts: Vec<&str> = line.splitn(4, ' ').collect();
            match parts[0] {
                "saved" => {
                    reported += 1;
                    let v: i64 = parts[2].parse().unwrap();
                    let entry = last
                        .entry(parts[1].to_string())
                        .or_insert((v, parts[3].to_string()));
                    if v >= entry.0 {
                        *entry = (v, parts[3].to_string());
                    }
                }
                _ => errors.push(line),
            }
        }
    }
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let reads = reader.await.unwrap();
    assert!(errors.is_empty(), "writers met errors: {errors:?}");

    // Every save reported done is there, at its last reported version and status; nothing else is.
    let stored = rows(&url).await;
    assert_eq!(stored.len(), last.len(), "rows vs runs reported");
    for (id, (v, st)) in &last {
        assert_eq!(stored.get(id), Some(&(*v, st.clone())), "run {id}");
    }
    let store = Store::open(&url).await.unwrap();
    assert_exact(&store, &url, "after the writers").await;
    store.close().await;
    figure(
        test,
        format_args!(
            "{writers} writer processes x {per_writer} calls: {reported} saves reported, {} runs, in {:.1} s \
             ({:.0} saves/s); {reads} reader calls meanwhile; 0 errors; counters exact",
            last.len(),
            elapsed.as_secs_f64(),
            reported as f64 / elapsed.as_secs_f64()
        ),
    );
    let _ = pg::drop_database(&url).await;
}

// ---------------------------------------------------------------------------------------------------------------
// (b) the server stopped and crashed under load

#[derive(Default)]
struct Log {
    /// Per run: the last version a save reported Ok, and the last one attempted.
    ok: HashMap<String, i64>,
    tried: HashMap<String, i64>,
    /// (when the call started, how long it took, Err kind or "ok").
    calls: Vec<(Instant, Duration, &'static str)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stopped_and_crashed_under_load_loses_no_reported_save_and_never_hangs() {
    let test = "pg_server_restart";
    let Some(server) = tokio::task::block_in_place(|| Server::start_or_skip(test)) else {
        return;
    };
    let url = server.fresh_database(test).await.unwrap();
    let busy = Duration::from_secs(1);
    // A call may take the busy timeout to find no server, plus a connection attempt already under way.
    let bound = busy + Duration::from_millis(1500);
    // More callers than connections (8 writers, a reader, 3 connections): callers also wait for one another.
    let store = open_with(&url, busy, 3).await;
    let (rounds, down_for) = scale((1, Duration::from_millis(2500)), (4, Duration::from_secs(6)));
    let log = Arc::new(Mutex::new(Log::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let version = Arc::new(AtomicU64::new(1));
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (store, log, stop, version) = (store.clone(), log.clone(), stop.clone(), version.clone());
        tasks.push(tokio::spawn(async move {
            let mut j = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let v = version.fetch_add(1, Ordering::Relaxed) as i64;
                let id = format!("w{w}-{}", j % 40);
                let s = run(&id, "p", v, STATUSES[j % 5].clone());
                j += 1;
                log.lock().unwrap().tried.insert(id.clone(), v);
                let began = Instant::now();
                let result = if w == 7 {
                    // One writer saves batches of two.
                    let mut other = s.clone();
                    other.run_id = format!("{id}-b");
                    log.lock().unwrap().tried.insert(other.run_id.clone(), v);
                    let r = tokio::time::timeout(bound * 3, store.save_many(&[s, other])).await;
                    if let Ok(Ok(())) = r {
                        log.lock().unwrap().ok.insert(format!("{id}-b"), v);
                    }
                    r
                } else {
                    tokio::time::timeout(bound * 3, store.save_state(&s)).await
                };
                let took = began.elapsed();
                let outcome = match &result {
                    Err(_) => "hang",
                    Ok(Ok(())) => "ok",
                    Ok(Err(e)) => kind(e),
                };
                {
                    let mut l = log.lock().unwrap();
                    if outcome == "ok" {
                        l.ok.insert(id, v);
                    }
                    l.calls.push((began, took, outcome));
                }
                if outcome != "ok" {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    // The dashboard's reader.
    {
        let (store, log, stop) = (store.clone(), log.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let began = Instant::now();
                let r = tokio::time::timeout(bound * 3, store.get_workflow_stats()).await;
                let outcome = match &r {
                    Err(_) => "hang",
                    Ok(Ok(_)) => "ok",
                    Ok(Err(e)) => kind(e),
                };
                log.lock().unwrap().calls.push((began, began.elapsed(), outcome));
                tokio::time::sleep(Duration::from_millis(if outcome == "ok" { 5 } else { 20 })).await;
            }
        }));
    }

    let first_ok_after = |since: Instant| {
        log.lock()
            .unwrap()
            .calls
            .iter()
            .filter(|(at, _, o)| *at >= since && *o == "ok")
            .map(|(at, took, _)| (*at + *took).duration_since(since))
            .min()
    };
    let mut windows = Vec::new();
    let mut reconnects = Vec::new();
    for round in 0..rounds * 2 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let crash = round % 2 == 1;
        let down = Instant::now();
        tokio::task::block_in_place(|| if crash { server.kill() } else { server.stop() }).unwrap();
        tokio::time::sleep(down_for).await;
        let restarting = Instant::now();
        tokio::task::block_in_place(|| server.start_again()).unwrap();
        let up = Instant::now();
        // The store reconnects by itself: a save succeeds soon after the server is back.
        let deadline = up + Duration::from_secs(10);
        let reconnect = loop {
            if let Some(t) = first_ok_after(up) {
                break t;
            }
            assert!(
                Instant::now() < deadline,
                "no save succeeded 10 s after the server came back"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        reconnects.push((crash, reconnect, up - restarting));
        windows.push((down, up + reconnect + bound));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }

    let log = Arc::try_unwrap(log).ok().unwrap().into_inner().unwrap();
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    let mut slowest_failure = Duration::ZERO;
    let mut slowest_ok = Duration::ZERO;
    for (at, took, outcome) in &log.calls {
        *by_kind.entry(outcome).or_insert(0) += 1;
        assert_ne!(*outcome, "hang", "a call hung (> {:?})", bound * 3);
        assert!(*took <= bound, "a call took {took:?} (> {bound:?}): {outcome}");
        if *outcome == "ok" {
            slowest_ok = slowest_ok.max(*took);
            continue;
        }
        assert!(
            matches!(*outcome, "Unavailable" | "Busy"),
            "a call failed with {outcome}, not Unavailable or Busy"
        );
        slowest_failure = slowest_failure.max(*took);
        assert!(
            windows
                .iter()
                .any(|(from, to)| *at + *took >= *from && *at <= *to),
            "a call failed while the server was up"
        );
    }
    assert!(
        by_kind.get("Unavailable").copied().unwrap_or(0) > 0,
        "no call saw the server down: {by_kind:?}"
    );

    // Nothing reported done is lost; what was stored is at least the last reported version and at most the
    // last attempted one (a save whose answer was lost may have committed).
    let stored = rows(&url).await;
    for (id, v) in &log.ok {
        let (got, _) = stored
            .get(id)
            .unwrap_or_else(|| panic!("run {id} reported saved is gone"));
        assert!(got >= v, "run {id}: stored version {got} < reported {v}");
        assert!(
            *got <= log.tried[id],
            "run {id}: stored {got} was never attempted"
        );
    }
    assert_exact(&store, &url, "after the restarts").await;
    store.close().await;
    let oks = by_kind.get("ok").copied().unwrap_or(0);
    figure(
        test,
        format_args!(
            "{} stops and {} crashes, down {:?} each, busy timeout {busy:?}: {} calls ({oks} ok, failures {:?}); \
             failing calls took at most {slowest_failure:?}, ok ones at most {slowest_ok:?}; first ok save after \
             the server was back (stop/crash, server start): {}; {} runs reported saved, 0 lost; counters exact",
            rounds,
            rounds,
            down_for,
            log.calls.len(),
            by_kind.iter().filter(|(k, _)| **k != "ok").collect::<Vec<_>>(),
            reconnects
                .iter()
                .map(|(crash, t, start)| format!(
                    "{} {:.0} ms (start {:.0} ms)",
                    if *crash { "crash" } else { "stop" },
                    t.as_secs_f64() * 1000.0,
                    start.as_secs_f64() * 1000.0
                ))
                .collect::<Vec<_>>()
                .join(", "),
            log.ok.len()
        ),
    );
}

// ---------------------------------------------------------------------------------------------------------------
// (c) a connection killed mid-transaction

/// Terminates the backends of this database that wait for a lock (`wait_event_type = 'Lock'`), once one does;
/// returns how many it ended.
async fn kill_waiting(conn: &mut PgConnection, within: Duration) -> i64 {
    let deadline = Instant::now() + within;
    loop {
        let killed: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE CASE WHEN datname = current_database() \
             AND pid <> pg_backend_pid() AND wait_event_type = 'Lock' THEN pg_terminate_backend(pid) ELSE false END",
        )
        .fetch_one(&mut *conn)
        .await
        .unwrap();
        if killed > 0 || Instant::now() > deadline {
            return killed;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_killed_mid_transaction_writes_nothing_half_and_the_next_call_works() {
    let test = "pg_killed_mid_tx";
    let Some((_server, url)) = database(test).await else {
        return;
    };
    // A busy timeout far above the time the kill takes: the call waits inside its transaction until killed.
    let store = open_with(&url, Duration::from_secs(20), 8).await;
    let old = Utc::now() - chrono::Duration::days(40);
    let olds: Vec<WorkflowState> = (0..3_000)
        .map(|i| {
            let mut s = run(&format!("old-{i}"), "p", 1, STATUSES[2 + i % 3].clone());
            s.created_at = Some(old);
            s.updated_at = Some(old);
            s
        })
        .collect();
    store.save_many(&olds).await.unwrap();
    let mut locker = pg::connect(&url).await.unwrap();
    let mut killer = pg::connect(&url).await.unwrap();
    let rounds = scale(3, 10);
    let mut errors = Vec::new();
    for round in 0..rounds {
        // save_many: its rows are written, then its statement trigger waits for the counters' log, held by
        // another transaction: the call is inside its transaction when its connection is killed.
        let batch: Vec<WorkflowState> = (0..500)
            .map(|i| run(&format!("batch{round}-{i}"), "p", 2, STATUSES[i % 5].clone()))
            .collect();
        sqlx::raw_sql("BEGIN; LOCK TABLE flowstate_delta IN EXCLUSIVE MODE")
            .execute(&mut locker)
            .await
            .unwrap();
        let call = {
            let (store, batch) = (store.clone(), batch.clone());
            tokio::spawn(async move { store.save_many(&batch).await })
        };
        assert_eq!(
            kill_waiting(&mut killer, Duration::from_secs(10)).await,
            1,
            "no save_many waited"
        );
        let result = call.await.unwrap();
        sqlx::raw_sql("ROLLBACK").execute(&mut locker).await.unwrap();
        let err = result.expect_err("a save_many whose connection was killed");
        assert!(
            matches!(err, StoreError::Unavailable { .. }),
            "save_many killed: {err:?}"
        );
        errors.push(format!("save_many: {}", kind(&err)));
        let stored = rows(&url).await;
        let present = batch.iter().filter(|s| stored.contains_key(&s.run_id)).count();
        assert_eq!(present, 0, "a killed save_many left {present} of its 500 rows");
        assert_exact(&store, &url, "after a killed save_many").await;
        store.save_many(&batch).await.expect("the next save_many");
        // (The old runs are gone after the first round's cleanup.)
        let olds_left = if round == 0 { olds.len() } else { 0 };
        assert_eq!(rows(&url).await.len(), olds_left + 500 * (round + 1));

        // A single save killed while it waits: tried once more on a new connection (the upsert is idempotent),
        // which then succeeds once the lock is gone; either way the run is whole.
        sqlx::raw_sql("BEGIN; LOCK TABLE flowstate_delta IN EXCLUSIVE MODE")
            .execute(&mut locker)
            .await
            .unwrap();
        let single = run(&format!("batch{round}-0"), "p", 3, Status::Completed);
        let call = {
            let (store, single) = (store.clone(), single.clone());
            tokio::spawn(async move { store.save_state(&single).await })
        };
        assert_eq!(
            kill_waiting(&mut killer, Duration::from_secs(10)).await,
            1,
            "no save waited"
        );
        // The retry waits for the lock again: let it go.
        tokio::time::sleep(Duration::from_millis(50)).await;
        sqlx::raw_sql("ROLLBACK").execute(&mut locker).await.unwrap();
        match call.await.unwrap() {
            Ok(()) => errors.push("save_state: retried, ok".into()),
            Err(e) => {
                assert!(
                    matches!(e, StoreError::Unavailable { .. } | StoreError::Busy { .. }),
                    "{e:?}"
                );
                errors.push(format!("save_state: {}", kind(&e)));
            }
        }
        let (v, st) = rows(&url).await[&single.run_id].clone();
        assert!(
            (v, st.as_str()) == (3, "completed") || (v, st.as_str()) == (2, "running"),
            "{v} {st}"
        );
        assert_exact(&store, &url, "after a killed save").await;

        // A cleanup batch: its DELETE is done, its trigger waits; killed, the batch is rolled back whole.
        if round == 0 {
            sqlx::raw_sql("BEGIN; LOCK TABLE flowstate_delta IN EXCLUSIVE MODE")
                .execute(&mut locker)
                .await
                .unwrap();
            let call = {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .cleanup_old_workflows(&CleanupPolicy::older_than_days(30))
                        .await
                })
            };
            assert_eq!(
                kill_waiting(&mut killer, Duration::from_secs(10)).await,
                1,
                "no cleanup waited"
            );
            let result = call.await.unwrap();
            sqlx::raw_sql("ROLLBACK").execute(&mut locker).await.unwrap();
            let err = result.expect_err("a cleanup whose connection was killed");
            assert!(
                matches!(err, StoreError::Unavailable { .. }),
                "cleanup killed: {err:?}"
            );
            errors.push(format!("cleanup: {}", kind(&err)));
            let stored = rows(&url).await;
            let left = olds.iter().filter(|s| stored.contains_key(&s.run_id)).count();
            assert_eq!(
                left,
                olds.len(),
                "the killed cleanup batch was not rolled back whole"
            );
            assert_exact(&store, &url, "after a killed cleanup").await;
            let deleted = store
                .cleanup_old_workflows(&CleanupPolicy::older_than_days(30))
                .await
                .expect("the next cleanup");
            assert_eq!(deleted, olds.len() as u64);
            assert_exact(&store, &url, "after the next cleanup").await;
        }
    }
    store.close().await;
    figure(
        test,
        format_args!("{rounds} rounds; killed calls answered: {}", errors.join("; ")),
    );
    let _ = pg::drop_database(&url).await;
}

// ---------------------------------------------------------------------------------------------------------------
// (d) migrations racing from processes

/// Starts `n` processes that open `url` at once; returns their report lines.
async fn race_opens(url: &str, n: usize) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let children: Vec<_> = (0..n)
        .map(|_| {
            let mut child = spawn_child(
                "migrate",
                &[("FS_URL", url.to_string()), ("FS_GO", go.display().to_string())],
            );
            let reports = collect_reports(child.stdout.take().unwrap());
            (child, reports)
        })
        .collect();
    // Let them start (and load), then go together.
    tokio::time::sleep(Duration::from_millis(600)).await;
    std::fs::write(&go, b"go").unwrap();
    let mut lines = Vec::new();
    for (mut child, reports) in children {
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "an opening process failed: {status}");
        lines.extend(reports.join().unwrap());
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_racing_from_processes_all_succeed_and_migrate_once() {
    let test = "pg_migration_race";
    let Some((_server, url)) = database(test).await else {
        return;
    };
    let (n, flujo_rows) = scale((6, 5_000), (12, 50_000));
    // A fresh database: the processes race to create flujo's table and flowstate's part.
    let began = Instant::now();
    let lines = race_opens(&url, n).await;
    let fresh_took = began.elapsed();
    assert_eq!(lines.len(), n, "{lines:?}");
    assert!(lines.iter().all(|l| l.starts_with("opened ")), "{lines:?}");
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("opened true")).count(),
        1,
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| l.ends_with("Ok(true) Ok(0)")), "{lines:?}");

    // flujo's database with rows.
    let url2 = match pg::shared_url() {
        Some(_) => pg::fresh_database("pg_migration_race_flujo").await.unwrap(),
        None => pg::create_database(&url, "pg_migration_race_flujo")
            .await
            .unwrap(),
    };
    let mut conn = pg::connect(&url2).await.unwrap();
    sqlx::raw_sql(FLUJO_DDL).execute(&mut conn).await.unwrap();
    sqlx::query(
        "INSERT INTO workflow_state (run_id, pipeline_id, pipeline_name, pipeline_version, current_step_index, \
         status, created_at, updated_at, execution_time_ms, is_background_task) SELECT 'r' || g, 'p' || (g % 7), \
         'p', '1', 0, (ARRAY['running','completed','failed','paused','cancelled','legacy'])[1 + g % 6], \
         now() - g * interval '1 second', now(), g % 5000, g % 4 = 0 FROM generate_series(1, $1) g",
    )
    .bind(flujo_rows as i64)
    .execute(&mut conn)
    .await
    .unwrap();
    let began = Instant::now();
    let lines = race_opens(&url2, n).await;
    let flujo_took = began.elapsed();
    assert_eq!(lines.len(), n, "{lines:?}");
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("opened true")).count(),
        1,
        "{lines:?}"
    );
    let expected = format!("Ok(true) Ok({flujo_rows})");
    assert!(lines.iter().all(|l| l.ends_with(&expected)), "{lines:?}");
    let triggers: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND tgrelid = 'workflow_state'::regclass",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let store = Store::open(&url2).await.unwrap();
    assert!(store.migration().is_noop());
    assert_exact(&store, &url2, "after the racing migrations").await;
    store.close().await;
    figure(
        test,
        format_args!(
            "{n} processes at once: a fresh database in {:.1} s, a flujo database of {flujo_rows} rows in {:.1} s \
             (process start included); one migrated each time, {triggers} triggers, counters exact",
            fresh_took.as_secs_f64(),
            flujo_took.as_secs_f64()
        ),
    );
    let _ = pg::drop_database(&url2).await;
    let _ = pg::drop_database(&url).await;
}

// ---------------------------------------------------------------------------------------------------------------
// (e) a role that may only read

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_select_only_role_reads_everything_and_every_write_is_refused() {
    let test = "pg_select_only";
    let Some((_server, url)) = database(test).await else {
        return;
    };
    // One clock for both stores, so the windows read are the same.
    let now = Utc::now();
    let clock = Arc::new(FixedClock::new(now));
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
    for i in 0..60i64 {
        let mut s = run(
            &format!("r{i}"),
            &format!("p{}", i % 3),
            i,
            STATUSES[i as usize % 5].clone(),
        );
        s.created_at = Some(now - chrono::Duration::hours(i));
        s.updated_at = Some(now - chrono::Duration::hours(i) + chrono::Duration::minutes(5));
        s.last_step_output = Some(json!({"out": i}));
        if i % 4 == 1 {
            s.extras.is_background_task = true;
            s.extras.parent_run_id = Some(format!("r{}", i - 1));
            s.extras.metadata = Some(json!({"bg": i}));
        }
        runs.push(s);
    }
    store.save_many(&runs).await.unwrap();
    store
        .record_audit("tester", "cleanup", &json!({"days": 30}), Some(3), 3)
        .await
        .unwrap();
    let role = format!("fs_reader_{}", std::process::id());
    let db = pg::database_name(&url).unwrap();
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
    let ro = Store::open_with(
        ro_url.as_str(),
        StoreOptions {
            read_only: true,
            clock,
            ..Default::default()
        },
    )
    .await
    .expect("a read-only open by a SELECT-only role");

    // Every read equals the writable store's.
    let since = now - chrono::Duration::days(7);
    macro_rules! same {
        ($call:ident $(, $arg:expr)*) => {
            assert_eq!(
                ro.$call($($arg),*).await.expect(concat!("read-only ", stringify!($call))),
                store.$call($($arg),*).await.unwrap(),
                stringify!($call)
            )
        };
    }
    let mut reads = 0;
    same!(get_workflow_stats);
    for q in [
        ListQuery::default(),
        ListQuery {
            statuses: vec![Status::Failed],
            ..Default::default()
        },
        ListQuery {
            pipeline_id: Some("p1".into()),
            limit: Some(7),
            ..Default::default()
        },
        ListQuery {
            background: Some(true),
            ..Default::default()
        },
        ListQuery {
            parent_run_id: Some("r4".into()),
            ..Default::default()
        },
        ListQuery {
            run_id_prefix: Some("r1".into()),
            error_contains: Some("FAILED".into()),
            ..Default::default()
        },
    ] {
        let page = ro.list_workflows(&q).await.unwrap();
        assert_eq!(page, store.list_workflows(&q).await.unwrap());
        if let Some(cursor) = page.next_cursor {
            let next = ListQuery {
                cursor: Some(cursor),
                ..q.clone()
            };
            same!(list_workflows, &next);
        }
        reads += 1;
    }
    for id in ["r0", "r5", "missing"] {
        same!(load_state, id);
        same!(load_run_view, id, 1000);
        same!(load_text_column, id, TextColumn::LastOutput);
        reads += 3;
    }
    same!(export_runs, None, 25);
    same!(get_failed_workflows, 48, 100);
    same!(preview_cleanup, &CleanupPolicy::older_than_days(1));
    same!(stuck_runs, chrono::Duration::hours(2), 10);
    same!(execution_percentiles, None);
    same!(execution_percentiles, Some("p2"));
    same!(execution_percentiles_by_pipeline);
    same!(pipelines);
    same!(activity, Bucket::Hour, 48);
    same!(activity, Bucket::Day, 7);
    same!(failure_groups, since);
    same!(count_failed_since, since);
    same!(failure_rates, since);
    same!(audit_log, 10);
    reads += 15;
    let key = store.failure_groups(since).await.unwrap().groups[0].key.clone();
    same!(failure_group, since, &key, 5);
    assert!(ro.verify_counters().await.unwrap().is_exact());

    // Every write is refused with Conflict, and nothing changed.
    let before = rows(&url).await;
    let refusals = [
        ("save_state", ro.save_state(&runs[0]).await.err()),
        ("save_many", ro.save_many(&runs[..3]).await.err()),
        ("delete_state", ro.delete_state("r0").await.map(drop).err()),
        (
            "cleanup",
            ro.cleanup_old_workflows(&CleanupPolicy::older_than_days(0))
                .await
                .map(drop)
                .err(),
        ),
        ("rebuild_counters", ro.rebuild_counters().await.map(drop).err()),
        (
            "record_audit",
            ro.record_audit("x", "y", &json!({}), None, 0)
                .await
                .map(drop)
                .err(),
        ),
    ];
    for (what, err) in refusals {
        assert!(matches!(err, Some(StoreError::Conflict(_))), "{what}: {err:?}");
    }
    assert_eq!(rows(&url).await, before);
    ro.close().await;
    store.close().await;
    figure(
        test,
        format_args!("{reads}+ reads equal the writable store's; 6 kinds of write refused"),
    );
    let _ = pg::drop_database(&url).await;
    sqlx::raw_sql(&format!("DROP ROLE IF EXISTS {role}"))
        .execute(&mut conn)
        .await
        .ok();
}
