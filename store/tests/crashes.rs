//! Crashes (issue 4, part 2): a child process saves runs continuously, printing each run id (and version) once
//! `save_state` / `save_many` has returned, and is killed with SIGKILL at a random moment. After every kill the
//! file is reopened: every save the child reported as done is there with its content, and
//! `PRAGMA integrity_check` is `ok`. Then the next child carries on in the same file.
//!
//! Quick (CI): 15 kills. Long (`FLOWSTATE_LONG_TESTS=1`): 100 kills. See RELIABILITY.md.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use flowstate_store::{Status, Store, WorkflowState};
use rand::Rng;
use serde_json::json;
use support::*;

/// Runs updated again and again by every child, with a growing version.
const HOT_RUNS: u64 = 20;

fn content(id: &str, version: u64) -> serde_json::Value {
    json!({ "id": id, "version": version, "steps": ["fetch", "parse", "store"], "pad": "y".repeat(300) })
}

/// The work of one saver process (role `saver`): inserts, updates of hot runs, small batches, until killed.
async fn saver_main() {
    let db = child_arg("FS_DB");
    let life: u64 = child_arg("FS_LIFE").parse().unwrap();
    let store = Store::open(&db).await.expect("the child opens the store");
    report("OPEN");
    let mut i: u64 = 0;
    loop {
        // A new run.
        let id = format!("l{life:03}-{i:06}");
        let mut run = WorkflowState::new(&id, "crash-test");
        run.pipeline_context = content(&id, 0);
        store.save_state(&run).await.expect("save_state");
        report(format!("saved {id} 0"));

        // An update of a hot run: its version only grows (life-major), so the stored one is never older than
        // the last one reported.
        if i % 3 == 0 {
            let hot = format!("hot-{:02}", i % HOT_RUNS);
            let version = life * 1_000_000 + i;
            let mut run = WorkflowState::new(&hot, "crash-test");
            run.pipeline_context = content(&hot, version);
            run.current_step_index = version as i64;
            run.status = Status::Paused;
            store.save_state(&run).await.expect("save_state (update)");
            report(format!("saved {hot} {version}"));
        }

        // A batch in one transaction.
        if i % 25 == 0 {
            let batch: Vec<WorkflowState> = (0..4)
                .map(|j| {
                    let id = format!("l{life:03}-{i:06}-b{j}");
                    let mut r = WorkflowState::new(&id, "crash-test-batch");
                    r.pipeline_context = content(&id, 0);
                    r
                })
                .collect();
            store.save_many(&batch).await.expect("save_many");
            for r in &batch {
                report(format!("saved {} 0", r.run_id));
            }
        }
        i += 1;
    }
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
        "saver" => rt.block_on(saver_main()),
        other => panic!("unknown child role {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_no_reported_save() {
    let kills = scale(15, 100);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    Store::open(&path).await.unwrap().close().await;

    let mut rng = rand::thread_rng();
    // Every save any child reported, with the newest version reported.
    let mut reported: BTreeMap<String, u64> = BTreeMap::new();
    let (mut before_first_save, mut total_reports) = (0, 0usize);
    let started = Instant::now();
    for life in 0..kills {
        let mut child = spawn_child(
            "saver",
            &[
                ("FS_DB", path.display().to_string()),
                ("FS_LIFE", life.to_string()),
            ],
        );
        let reports = collect_reports(child.stdout.take().unwrap());
        // One kill in five lands while the binary starts and the store opens; the others well into the saving.
        let delay = if rng.gen_ratio(1, 5) {
            Duration::from_millis(rng.gen_range(0..40))
        } else {
            Duration::from_millis(rng.gen_range(40..400))
        };
        tokio::time::sleep(delay).await;
        let still_running = child.try_wait().unwrap().is_none();
        child.kill().unwrap(); // SIGKILL on Unix.
        let status = child.wait().unwrap();
        let reports = reports.join().unwrap();
        assert!(
            still_running,
            "life {life}: the child ended by itself before the kill ({status}): {reports:?}"
        );
        let saves: Vec<&String> = reports.iter().filter(|r| r.starts_with("saved ")).collect();
        if saves.is_empty() {
            before_first_save += 1;
        }
        total_reports += saves.len();
        let mut this_life: BTreeMap<String, u64> = BTreeMap::new();
        for line in saves {
            let mut parts = line.split(' ').skip(1);
            let (Some(id), Some(version)) = (parts.next(), parts.next()) else {
                panic!("life {life}: unreadable report {line:?}");
            };
            let version: u64 = version.parse().unwrap();
            for map in [&mut reported, &mut this_life] {
                let entry = map.entry(id.to_string()).or_insert(version);
                *entry = (*entry).max(version);
            }
        }

        // Reopen as the next worker would, and check what this child reported plus every hot run.
        assert_eq!(integrity_check(&path).await, "ok", "after kill {life}");
        let store = Store::open(&path)
            .await
            .unwrap_or_else(|e| panic!("reopening after kill {life}: {e}"));
        let hot = reported.iter().filter(|(id, _)| id.starts_with("hot-"));
        for (id, version) in this_life.iter().chain(hot) {
            let run = store
                .load_state(id)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("after kill {life}: {id} was reported saved but is missing"));
            check(&run, *version, &format!("after kill {life}"));
        }
        store.close().await;
    }

    // At the end, every save any child reported, in one pass.
    let store = Store::open(&path).await.unwrap();
    for (id, version) in &reported {
        let run = store
            .load_state(id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("at the end: {id} was reported saved but is missing"));
        check(&run, *version, "at the end");
    }
    let stats = store.get_workflow_stats().await.unwrap();
    store.close().await;
    assert_eq!(integrity_check(&path).await, "ok");
    figure(
        "crashes",
        format!(
            "{kills} SIGKILLs in {:.1} s ({before_first_save} before the child's first save), {total_reports} \
             reported saves, {} distinct runs, {} rows at the end, integrity ok after every kill",
            started.elapsed().as_secs_f64(),
            reported.len(),
            stats.total_workflows
        ),
    );
}

/// A reported save is there: a plain run with its content, a hot run at the reported version or newer, whole.
#[track_caller]
fn check(run: &WorkflowState, version: u64, when: &str) {
    let id = &run.run_id;
    if id.starts_with("hot-") {
        let stored = run.current_step_index as u64;
        assert!(
            stored >= version,
            "{when}: {id} is at version {stored}, older than the reported {version}"
        );
        assert_eq!(run.pipeline_context, content(id, stored), "{when}: {id} is torn");
    } else {
        assert_eq!(run.pipeline_context, content(id, 0), "{when}: {id}");
    }
}
