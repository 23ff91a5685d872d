//! Many writers on PostgreSQL: the counters stay exact under concurrent saves, status changes and deletes (a
//! recount agrees), and the save rate grows with the writers instead of flattening at a counter row's lock.
//!
//! `concurrent_writers_keep_the_counters_exact` runs whenever `FLOWSTATE_TEST_PG` is set.
//! `many_writers_throughput` is a measurement (about a minute): it runs when `FLOWSTATE_PG_BENCH=1` too, and prints
//! saves/s with 1, 16 and 64 writer connections for three setups: flujo's table alone with a raw prepared
//! `INSERT ... ON CONFLICT` (the baseline), the same statement on a database flowstate migrated (its indexes and
//! counter triggers), and `Store::save_state`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use flowstate_store::{Status, Store, StoreOptions, WorkflowState};
use flowstate_testkit::pg::{self, FLUJO_DDL, FLUJO_UPSERT};
use sqlx::{Connection, PgConnection};

const STATUSES: [Status; 5] = [
    Status::Running,
    Status::Completed,
    Status::Failed,
    Status::Paused,
    Status::Cancelled,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_keep_the_counters_exact() {
    let Some(url) = pg::fresh_database_or_skip("pg_writers_exact").await else {
        return;
    };
    let store = Store::open_with(
        &url,
        StoreOptions {
            max_connections: 24,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // Writers through the store and writers in flujo's own SQL, on shared runs: inserts, status changes, new
    // execution times and hours, deletes, all at once.
    let mut tasks = Vec::new();
    for w in 0..12 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..150u32 {
                let id = format!("r{}", (w * 7 + i) % 90);
                if i % 11 == 5 {
                    store.delete_state(&id).await.unwrap();
                    continue;
                }
                let mut s = WorkflowState::new(id, format!("p{}", i % 3));
                s.status = STATUSES[(i as usize + w as usize) % 5].clone();
                s.execution_time_ms = (i % 4 != 0).then_some(i64::from(i) * 97);
                s.updated_at = Some(Utc::now() - chrono::Duration::hours(i64::from(i % 5)));
                store.save_state(&s).await.unwrap();
            }
        }));
    }
    for w in 0..12 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = PgConnection::connect(&url).await.unwrap();
            for i in 0..150u32 {
                let id = format!("r{}", (w * 5 + i) % 90);
                if i % 13 == 7 {
                    sqlx::query("DELETE FROM workflow_state WHERE run_id = $1")
                        .bind(&id)
                        .execute(&mut conn)
                        .await
                        .unwrap();
                    continue;
                }
                let now = Utc::now();
                sqlx::query(FLUJO_UPSERT)
                    .bind(&id)
                    .bind(format!("p{}", i % 4))
                    .bind(STATUSES[(i as usize * 3 + w as usize) % 5].as_str())
                    .bind(now)
                    .bind(now - chrono::Duration::minutes(i64::from(i) * 7))
                    .bind(None::<String>)
                    .bind((i % 2 == 0).then_some(i as i32 * 13))
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let check = store.verify_counters().await.unwrap();
    assert!(check.is_exact(), "{:#?}", check.differences);
    let mut conn = pg::connect(&url).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM workflow_state")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(store.get_workflow_stats().await.unwrap().total_workflows, n);
    // Writers only appended deltas; a fold moves them into the base counts, and the figures do not change.
    let stats = store.get_workflow_stats().await.unwrap();
    let folded: bool = sqlx::query_scalar("SELECT flowstate_fold()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(folded);
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM flowstate_delta")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(pending, 0);
    assert_eq!(store.get_workflow_stats().await.unwrap(), stats);
    assert!(store.verify_counters().await.unwrap().is_exact());
    // A statement of many rows folds as it goes (its rows' triggers fold one time in 256 on average): the log
    // stays short whoever writes. (No fold in 3,000 rows: a chance of 1 in 100,000.)
    sqlx::raw_sql(
        "INSERT INTO workflow_state (run_id, pipeline_id, pipeline_name, pipeline_version, current_step_index, \
         status, created_at, updated_at) SELECT 'bulk' || g, 'b', 'b', '1', 0, 'completed', now(), now() \
         FROM generate_series(1, 3000) g",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM flowstate_delta")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(
        pending < 3000,
        "{pending} deltas pending after a statement of 3,000 rows"
    );
    assert!(store.verify_counters().await.unwrap().is_exact());
    // A rebuild refills the base counts, empties the log, and stays exact.
    let before = store.rebuild_counters().await.unwrap();
    assert!(before.is_exact());
    assert!(store.verify_counters().await.unwrap().is_exact());
    store.close().await;
    pg::drop_database(&url).await.unwrap();
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Setup {
    /// flujo's table alone, a raw prepared upsert.
    Raw,
    /// The raw upsert on a database flowstate migrated (its indexes and triggers).
    RawMigrated,
    /// `Store::save_state`.
    Store,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// Every save a new run.
    Distinct,
    /// Each writer saves 20 runs of its own again and again, changing their status.
    Repeated,
}

const SECONDS: f64 = 2.5;

/// One save of run `rid`: through the store, or flujo's statement on `conn`.
async fn save_once(store: Option<&Store>, conn: Option<&mut PgConnection>, rid: String, st: Status, i: u64) {
    let now = Utc::now();
    match (store, conn) {
        (Some(store), _) => {
            let mut run = WorkflowState::new(rid, "bench");
            run.status = st;
            run.updated_at = Some(now);
            run.execution_time_ms = Some((i % 5000) as i64);
            store.save_state(&run).await.unwrap();
        }
        (None, Some(conn)) => {
            sqlx::query(FLUJO_UPSERT)
                .bind(rid)
                .bind("bench")
                .bind(st.as_str())
                .bind(now)
                .bind(now)
                .bind(None::<String>)
                .bind(Some((i % 5000) as i32))
                .execute(conn)
                .await
                .unwrap();
        }
        (None, None) => unreachable!(),
    }
}

async fn measure(url: &str, setup: Setup, mode: Mode, writers: usize, round: usize) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(SECONDS);
    let store = if setup == Setup::Store {
        Some(
            Store::open_with(
                url,
                StoreOptions {
                    max_connections: writers as u32,
                    ..Default::default()
                },
            )
            .await
            .unwrap(),
        )
    } else {
        None
    };
    // Every connection opened (and warmed) before the clock starts.
    let start = Arc::new(tokio::sync::Barrier::new(writers + 1));
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (url, done, store, start) = (url.to_string(), done.clone(), store.clone(), start.clone());
        tasks.push(tokio::spawn(async move {
            let id = |i: u64| match mode {
                Mode::Distinct => format!("d{round}-{writers}-{w}-{i}"),
                Mode::Repeated => format!("r{round}-{writers}-{w}-{}", i % 20),
            };
            let status = |i: u64| match mode {
                Mode::Distinct => Status::Running,
                Mode::Repeated => STATUSES[(i / 20 % 3) as usize].clone(),
            };
            let mut conn = match &store {
                None => Some(PgConnection::connect(&url).await.unwrap()),
                Some(_) => None,
            };
            let mut i = 0u64;
            // Warm up: the connection, the prepared statement.
            save_once(store.as_ref(), conn.as_mut(), id(1 << 40), status(0), 0).await;
            start.wait().await;
            while Instant::now() < deadline {
                save_once(store.as_ref(), conn.as_mut(), id(i), status(i), i).await;
                i += 1;
            }
            done.fetch_add(i, Ordering::Relaxed);
        }));
    }
    start.wait().await;
    let began = Instant::now();
    for t in tasks {
        t.await.unwrap();
    }
    let took = began.elapsed().as_secs_f64();
    if let Some(store) = store {
        store.close().await;
    }
    done.load(Ordering::Relaxed) as f64 / took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_writers_throughput() {
    if std::env::var("FLOWSTATE_PG_BENCH").ok().as_deref() != Some("1") {
        println!("SKIPPED many_writers_throughput: a measurement; set FLOWSTATE_PG_BENCH=1 (and FLOWSTATE_TEST_PG)");
        return;
    }
    let Some(server) = pg::shared_url() else {
        flowstate_testkit::skip("many_writers_throughput: FLOWSTATE_TEST_PG is not set");
        return;
    };
    let raw_url = pg::create_database(&server, "bench_raw").await.unwrap();
    let mut conn = pg::connect(&raw_url).await.unwrap();
    sqlx::raw_sql(FLUJO_DDL).execute(&mut conn).await.unwrap();
    let ours = pg::create_database(&server, "bench_ours").await.unwrap();
    let mut c2 = pg::connect(&ours).await.unwrap();
    sqlx::raw_sql(FLUJO_DDL).execute(&mut c2).await.unwrap();
    Store::open(&ours).await.unwrap().close().await;

    let mut table = Vec::new();
    let mut round = 0;
    for mode in [Mode::Distinct, Mode::Repeated] {
        for writers in [1usize, 16, 64] {
            let mut row = Vec::new();
            for (setup, url) in [
                (Setup::Raw, &raw_url),
                (Setup::RawMigrated, &ours),
                (Setup::Store, &ours),
            ] {
                round += 1;
                let rate = measure(url, setup, mode, writers, round).await;
                println!("{mode:?} {writers:>2} writers {setup:?}: {rate:.0} saves/s");
                row.push(rate);
            }
            table.push((mode, writers, row));
        }
    }
    println!("\n| saves | writers | raw upsert, flujo's table | raw upsert + flowstate's triggers/indexes | Store::save_state | store / raw |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (mode, writers, row) in &table {
        println!(
            "| {mode:?} | {writers} | {:.0}/s | {:.0}/s | {:.0}/s | {:.2} |",
            row[0],
            row[1],
            row[2],
            row[2] / row[0]
        );
    }
    let store = Store::open(&ours).await.unwrap();
    let check = store.verify_counters().await.unwrap();
    assert!(check.is_exact(), "{:#?}", check.differences);
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM flowstate_delta")
        .fetch_one(&mut c2)
        .await
        .unwrap();
    println!(
        "counters exact after the run ({} rows recounted); deltas waiting for a fold: {pending}",
        check.rows
    );
    store.close().await;
    // The rate grows with the writers (a counter row every writer waited for would keep it flat).
    for mode in [Mode::Distinct, Mode::Repeated] {
        let rate = |w: usize| table.iter().find(|(m, n, _)| *m == mode && *n == w).unwrap().2[2];
        assert!(
            rate(16) > rate(1) * 1.5,
            "{mode:?}: {} with 1 writer, {} with 16",
            rate(1),
            rate(16)
        );
    }
    pg::drop_database(&raw_url).await.unwrap();
    pg::drop_database(&ours).await.unwrap();
}
