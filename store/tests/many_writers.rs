//! Many writers (issue 4, part 1): eight OS processes save runs into one fresh file at once, through the store
//! with its default options (synchronous=FULL), while this process reads it continuously as the dashboard does.
//! Every save must be there afterwards with its content, and no caller, writer or reader, may ever see an error:
//! not "database is locked", not `StoreError::Busy`, nothing.
//!
//! Quick (CI): 8 × 300 runs. Long (`FLOWSTATE_LONG_TESTS=1`): 8 × 2,000 runs. See RELIABILITY.md.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flowstate_store::{ListQuery, Status, Store, WorkflowState};
use serde_json::json;
use support::*;

const WRITERS: usize = 8;
/// Every `UPDATE_EVERY`-th save also updates an earlier run of the same writer (the upsert's update path).
const UPDATE_EVERY: usize = 10;
/// Every `BATCH_EVERY`-th save also saves `BATCH_SIZE` runs with `save_many` (a `BEGIN IMMEDIATE` transaction).
const BATCH_EVERY: usize = 100;
const BATCH_SIZE: usize = 5;

fn runs_per_writer() -> usize {
    scale(300, 2_000)
}

fn run_id(writer: usize, i: usize) -> String {
    format!("w{writer}-{i:05}")
}

fn batch_id(writer: usize, i: usize, j: usize) -> String {
    format!("w{writer}-b{i:05}-{j}")
}

fn context(writer: usize, i: usize) -> serde_json::Value {
    json!({ "writer": writer, "i": i, "note": "saved by a writer process", "pad": "x".repeat(200) })
}

/// Which of a writer's plain runs end up updated (completed at step 1).
fn is_updated(i: usize, n: usize) -> bool {
    // Run i is updated by save i + 5 when that one is a multiple of UPDATE_EVERY.
    let by = i + 5;
    by < n && by % UPDATE_EVERY == 0
}

/// The work of one writer process (role `writer`).
async fn writer_main() {
    let db = child_arg("FS_DB");
    let writer: usize = child_arg("FS_WRITER").parse().unwrap();
    let n: usize = child_arg("FS_RUNS").parse().unwrap();
    let started = Instant::now();
    let store = match Store::open(&db).await {
        Ok(s) => s,
        Err(e) => {
            report(format!("ERR open {e}"));
            report(format!("DONE {writer} errors=1"));
            return;
        }
    };
    let mut errors = 0usize;
    let mut fail = |what: String, e: flowstate_store::StoreError| {
        errors += 1;
        report(format!("ERR {what} {e:?}"));
    };
    for i in 0..n {
        let mut run = WorkflowState::new(run_id(writer, i), format!("pipeline-{}", i % 4));
        run.pipeline_context = context(writer, i);
        run.total_steps = 3;
        if let Err(e) = store.save_state(&run).await {
            fail(format!("save {}", run.run_id), e);
        }
        if i >= 5 && i % UPDATE_EVERY == 0 {
            let mut earlier = WorkflowState::new(run_id(writer, i - 5), format!("pipeline-{}", (i - 5) % 4));
            earlier.pipeline_context = context(writer, i - 5);
            earlier.total_steps = 3;
            earlier.current_step_index = 1;
            earlier.status = Status::Completed;
            earlier.execution_time_ms = Some(i as i64);
            if let Err(e) = store.save_state(&earlier).await {
                fail(format!("update {}", earlier.run_id), e);
            }
        }
        if i % BATCH_EVERY == 0 {
            let batch: Vec<WorkflowState> = (0..BATCH_SIZE)
                .map(|j| {
                    let mut r = WorkflowState::new(batch_id(writer, i, j), "batch");
                    r.pipeline_context = json!({ "writer": writer, "i": i, "j": j });
                    r
                })
                .collect();
            if let Err(e) = store.save_many(&batch).await {
                fail(format!("save_many at {i}"), e);
            }
        }
    }
    store.close().await;
    report(format!(
        "DONE {writer} errors={errors} ms={}",
        started.elapsed().as_millis()
    ));
}

#[test]
#[ignore = "a helper: the reliability tests run it as a child process"]
fn child_process() {
    let Some(role) = child_role() else { return };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match role.as_str() {
        "writer" => rt.block_on(writer_main()),
        other => panic!("unknown child role {other}"),
    }
}

/// What the dashboard does while the writers write: pages, a filtered list, the figures, one run.
async fn read_continuously(path: PathBuf, stop: Arc<AtomicBool>) -> (u64, Vec<String>) {
    let mut errors = Vec::new();
    let mut ops = 0u64;
    // The writers create the file; wait for it to exist before opening (opening never waits for a file).
    let store = loop {
        if path.metadata().is_ok_and(|m| m.len() > 0) {
            match Store::open(&path).await {
                Ok(s) => break s,
                Err(e) => {
                    errors.push(format!("open: {e:?}"));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        } else if stop.load(Ordering::SeqCst) {
            return (ops, vec!["the writers never created the file".into()]);
        } else {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let mut last_total = 0i64;
    while !stop.load(Ordering::SeqCst) {
        match store.list_workflows(&ListQuery::default()).await {
            Ok(page) => {
                if let Some(cursor) = page.next_cursor {
                    let next = ListQuery {
                        cursor: Some(cursor),
                        ..Default::default()
                    };
                    if let Err(e) = store.list_workflows(&next).await {
                        errors.push(format!("next page: {e:?}"));
                    }
                }
                if let Some(run) = page.runs.first() {
                    match store.load_state(&run.run_id).await {
                        Ok(Some(_)) => {}
                        Ok(None) => errors.push(format!("{} was listed but cannot be loaded", run.run_id)),
                        Err(e) => errors.push(format!("load: {e:?}")),
                    }
                }
            }
            Err(e) => errors.push(format!("list: {e:?}")),
        }
        let failed = ListQuery {
            statuses: vec![Status::Completed],
            limit: Some(20),
            ..Default::default()
        };
        if let Err(e) = store.list_workflows(&failed).await {
            errors.push(format!("filtered list: {e:?}"));
        }
        match store.get_workflow_stats().await {
            Ok(stats) => {
                // Nothing is ever deleted, so the count read from one snapshot never goes down.
                if stats.total_workflows < last_total {
                    errors.push(format!(
                        "total went down from {last_total} to {}",
                        stats.total_workflows
                    ));
                }
                last_total = stats.total_workflows;
            }
            Err(e) => errors.push(format!("stats: {e:?}")),
        }
        ops += 5;
    }
    store.close().await;
    (ops, errors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_writer_processes_and_a_reader_lose_nothing_and_never_see_busy() {
    let dir = tempfile::tempdir().unwrap();
    // A fresh path: the eight writers race to create and migrate the file too.
    let path = dir.path().join("shared.db");
    let n = runs_per_writer();
    let started = Instant::now();

    let stop = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn(read_continuously(path.clone(), stop.clone()));

    let children: Vec<_> = (0..WRITERS)
        .map(|k| {
            let mut child = spawn_child(
                "writer",
                &[
                    ("FS_DB", path.display().to_string()),
                    ("FS_WRITER", k.to_string()),
                    ("FS_RUNS", n.to_string()),
                ],
            );
            let reports = collect_reports(child.stdout.take().unwrap());
            (child, reports)
        })
        .collect();
    let results = tokio::task::spawn_blocking(move || {
        children
            .into_iter()
            .map(|(mut child, reports)| {
                let status = child.wait().unwrap();
                (status, reports.join().unwrap())
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let writing = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let (reads, read_errors) = reader.await.unwrap();

    let mut writer_errors = Vec::new();
    let mut per_writer_ms = Vec::new();
    for (k, (status, reports)) in results.iter().enumerate() {
        assert!(status.success(), "writer {k} exited with {status}: {reports:?}");
        let done = reports
            .iter()
            .find(|l| l.starts_with("DONE"))
            .unwrap_or_else(|| panic!("writer {k} never finished: {reports:?}"));
        if let Some(ms) = done.split("ms=").nth(1) {
            per_writer_ms.push(ms.to_string());
        }
        writer_errors.extend(reports.iter().filter(|l| l.starts_with("ERR")).cloned());
    }
    assert!(
        writer_errors.is_empty(),
        "{} errors reached writers, e.g. {:?}",
        writer_errors.len(),
        &writer_errors[..writer_errors.len().min(5)]
    );
    assert!(
        read_errors.is_empty(),
        "{} errors reached the reader, e.g. {:?}",
        read_errors.len(),
        &read_errors[..read_errors.len().min(5)]
    );

    // Every save is there, with its content.
    let store = Store::open(&path).await.unwrap();
    let batches = n.div_ceil(BATCH_EVERY);
    let expected = WRITERS * (n + batches * BATCH_SIZE);
    let stats = store.get_workflow_stats().await.unwrap();
    assert_eq!(stats.total_workflows as usize, expected);
    let mut conn = {
        use sqlx::ConnectOptions;
        sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .connect()
            .await
            .unwrap()
    };
    let rows: Vec<(String, String, String, i64)> =
        sqlx::query_as("SELECT run_id, status, pipeline_context, current_step_index FROM workflow_state")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let rows: BTreeMap<String, (String, serde_json::Value, i64)> = rows
        .into_iter()
        .map(|(id, status, ctx, step)| (id, (status, serde_json::from_str(&ctx).unwrap(), step)))
        .collect();
    for k in 0..WRITERS {
        for i in 0..n {
            let id = run_id(k, i);
            let (status, ctx, step) = rows.get(&id).unwrap_or_else(|| panic!("{id} is missing"));
            assert_eq!(ctx, &context(k, i), "{id}");
            if is_updated(i, n) {
                assert_eq!((status.as_str(), *step), ("completed", 1), "{id}");
            } else {
                assert_eq!((status.as_str(), *step), ("running", 0), "{id}");
            }
        }
        for b in (0..n).step_by(BATCH_EVERY) {
            for j in 0..BATCH_SIZE {
                let id = batch_id(k, b, j);
                let (_, ctx, _) = rows.get(&id).unwrap_or_else(|| panic!("{id} is missing"));
                assert_eq!(ctx, &json!({ "writer": k, "i": b, "j": j }), "{id}");
            }
        }
    }
    drop(conn);
    store.close().await;
    assert_eq!(integrity_check(&path).await, "ok");

    let saves = WRITERS * (n + n / UPDATE_EVERY + batches);
    figure(
        "many_writers",
        format!(
            "{WRITERS} processes x {n} runs: {expected} rows, {saves} write calls in {:.1} s \
             ({:.0} calls/s; per-writer ms {}), {reads} reader calls, 0 errors",
            writing.as_secs_f64(),
            saves as f64 / writing.as_secs_f64(),
            per_writer_ms.join("/"),
        ),
    );
}
