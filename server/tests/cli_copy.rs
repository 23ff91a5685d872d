//! `flowstate copy`, run for real: the built binary between temporary SQLite files (and a PostgreSQL database when
//! `FLOWSTATE_TEST_PG` names a server), every value compared run by run afterwards.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use flowstate_store::{RunExtras, Status, Store, StoreOptions, WorkflowState};
use serde_json::{json, Value};
use support::copy_fixture;

const BIN: &str = env!("CARGO_BIN_EXE_flowstate");

fn flowstate() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("FLOWSTATE_DB").env_remove("FLOWSTATE_LOG");
    cmd
}

fn copy_cmd(from: &str, to: &str, extra: &[&str]) -> Command {
    let mut cmd = flowstate();
    cmd.args(["copy", "--from", from, "--to", to]).args(extra);
    cmd
}

fn copy(from: &Path, to: &Path, extra: &[&str]) -> Output {
    copy_url(&text(from), &text(to), extra)
}

fn copy_url(from: &str, to: &str, extra: &[&str]) -> Output {
    copy_cmd(from, to, extra)
        .output()
        .expect("the flowstate binary runs")
}

fn text(path: &Path) -> String {
    path.to_str().expect("a UTF-8 path").to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a copy that must succeed with `--json`; returns its report.
#[track_caller]
fn copied(from: &str, to: &str, extra: &[&str]) -> Value {
    let mut args = extra.to_vec();
    args.push("--json");
    let out = copy_url(from, to, &args);
    assert!(
        out.status.success(),
        "copy {from} -> {to} should succeed: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "copy prints one JSON document ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

async fn open(location: &str) -> Store {
    Store::open_with(location, StoreOptions::default())
        .await
        .unwrap_or_else(|e| panic!("opening {location}: {e}"))
}

/// Every run of a database, in run-id order, read whole.
async fn every_run(location: &str) -> Vec<WorkflowState> {
    let store = Store::open_with(
        location,
        StoreOptions {
            read_only: true,
            ..Default::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("opening {location}: {e}"));
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.export_runs(after.as_deref(), 1000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.run_id.clone());
        all.extend(page);
    }
    store.close().await;
    all
}

/// Asserts that `to` holds exactly the runs of `from`, each equal as [`Store::load_state`] reads it (with
/// `lossy_floats`, memory compared as flujo's PostgreSQL REAL column keeps it).
async fn assert_same_runs(from: &str, to: &str, lossy_floats: bool) {
    let source = every_run(from).await;
    let target = every_run(to).await;
    let ids = |runs: &[WorkflowState]| runs.iter().map(|r| r.run_id.clone()).collect::<Vec<_>>();
    assert_eq!(
        ids(&source).len(),
        ids(&target).len(),
        "as many runs in {to} as in {from}"
    );
    assert_eq!(ids(&source), ids(&target), "the same run ids, each once");
    let (src, dst) = (open_ro(from).await, open_ro(to).await);
    for run in &source {
        let a = src.load_state(&run.run_id).await.unwrap().expect("in the source");
        let mut b = dst.load_state(&run.run_id).await.unwrap().expect("in the copy");
        if lossy_floats {
            if let (Some(x), Some(y)) = (a.memory_usage_mb, b.memory_usage_mb) {
                assert_eq!(x as f32, y as f32, "memory of {} (REAL)", run.run_id);
                b.memory_usage_mb = Some(x);
            }
        }
        assert_eq!(a, b, "run {} differs after the copy", run.run_id);
    }
    src.close().await;
    dst.close().await;
}

/// The destination is exactly the store's after a copy: nothing left to migrate (every index and trigger there),
/// and its counters agree with a recount of the rows.
async fn assert_whole(location: &str) {
    let store = open(location).await;
    assert!(
        store.migration().is_noop(),
        "{location} still needed: {:?}",
        store.migration().changes
    );
    let check = store.verify_counters().await.unwrap();
    assert!(check.is_exact(), "{location}: {:?}", check.differences);
    store.close().await;
}

async fn open_ro(location: &str) -> Store {
    Store::open_with(
        location,
        StoreOptions {
            read_only: true,
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

/// Runs with every kind of value a copy must keep exactly.
fn tricky_runs() -> Vec<WorkflowState> {
    let at = |micros: i64| Utc.timestamp_micros(1_780_000_000_123_456 + micros).unwrap();
    let mut runs = Vec::new();
    let mut base = WorkflowState::new("edge_null_output", "edges");
    base.created_at = Some(at(0));
    base.updated_at = Some(at(1));
    base.last_step_output = None;
    runs.push(base.clone());

    let mut json_null = base.clone();
    json_null.run_id = "edge_json_null_output".into();
    json_null.last_step_output = Some(Value::Null);
    json_null.pipeline_context = Value::Null;
    runs.push(json_null);

    let mut numbers = base.clone();
    numbers.run_id = "edge_numbers".into();
    numbers.pipeline_context = json!({
        "third": 1.0 / 3.0, "tiny": 5e-324, "huge": 1.7976931348623157e308, "neg": -0.5,
        "big_int": 9_007_199_254_740_993_i64, "u64": u64::MAX, "i64": i64::MIN, "float_int": 2.0,
        "nested": {"a": [1, [2, [3, {"b": null}]]], "empty": {}, "list": []}
    });
    numbers.memory_usage_mb = Some(123.456_789_012_345_67);
    numbers.execution_time_ms = Some(i64::from(i32::MAX));
    numbers.current_step_index = 7;
    numbers.total_steps = 9;
    runs.push(numbers);

    let mut text = base.clone();
    text.run_id = "edge_text_ünïcødé_注文_🚀".into();
    text.pipeline_name = "Ünïcode \"quoted\" 'single' \\ back".into();
    text.error_message = Some("line 1\nline 2\ttab \u{202E}rtl 注文 🚀".into());
    text.status = Status::Failed;
    text.step_history = json!([{"name": "s1", "output": "x\ny", "ok": true}, {"name": "s2", "ok": false}]);
    text.last_step_output = Some(json!("a plain string"));
    runs.push(text);

    let mut extras = base.clone();
    extras.run_id = "edge_extras".into();
    extras.status = Status::Completed;
    extras.extras = RunExtras {
        metadata: Some(json!({"host": "worker-7", "tags": ["a", "b"], "n": 1.5})),
        is_background_task: true,
        parent_run_id: Some("edge_numbers".into()),
        task_id: Some("task-42".into()),
        background_error: Some("ValueError: background".into()),
    };
    extras.memory_usage_mb = Some(0.0);
    runs.push(extras);

    let mut metadata_null = base.clone();
    metadata_null.run_id = "edge_metadata_json_null".into();
    metadata_null.extras.metadata = Some(Value::Null);
    runs.push(metadata_null);

    let mut old = base;
    old.run_id = "edge_old_and_far".into();
    old.created_at = Some(Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap());
    old.updated_at = Some(
        Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap() + chrono::Duration::microseconds(999_999),
    );
    old.status = Status::Cancelled;
    runs.push(old);
    runs
}

/// A SQLite source: `demo` demo runs and the tricky ones.
async fn source(dir: &Path, demo: usize) -> PathBuf {
    let path = dir.join("source.db");
    let store = open(&text(&path)).await;
    if demo > 0 {
        flowstate_store::demo::write_demo(&store, demo, 7).await.unwrap();
    }
    store.save_many(&tricky_runs()).await.unwrap();
    store.close().await;
    path
}

fn file_bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sqlite_copy_keeps_every_value_of_every_run() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path(), 400).await;
    let dst = dir.path().join("copy.db");
    let before = file_bytes(&src);
    // An odd batch: many batches, none aligned with the reader's pages.
    let report = copied(&text(&src), &text(&dst), &["--batch", "37"]);
    let total = 400 + tricky_runs().len();
    assert_eq!(report["copied"], total, "{report}");
    assert_eq!(report["skipped"], 0, "{report}");
    assert_eq!(report["refused"], 0, "{report}");
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(report["destination_runs"], total, "{report}");
    assert!(
        report["seconds"].is_number() && report["rate"].is_number(),
        "{report}"
    );
    assert_eq!(report["bulk"], true, "a new file is filled in bulk: {report}");
    assert_eq!(file_bytes(&src), before, "the source is never written");
    assert_same_runs(&text(&src), &text(&dst), false).await;
    assert_whole(&text(&dst)).await;

    // The copy's overview figures are the source's.
    let (a, b) = (open_ro(&text(&src)).await, open_ro(&text(&dst)).await);
    assert_eq!(
        a.get_workflow_stats().await.unwrap().total_workflows,
        b.get_workflow_stats().await.unwrap().total_workflows
    );
    assert_eq!(a.pipelines().await.unwrap(), b.pipelines().await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flujo_file_never_migrated_is_copied_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let src = copy_fixture("flujo-0.4.35-sample-300.db", dir.path());
    let before = file_bytes(&src);
    let dst = dir.path().join("copy.db");
    let report = copied(&text(&src), &text(&dst), &[]);
    assert_eq!(report["copied"], 300, "{report}");
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(file_bytes(&src), before, "flujo's file is left as it was");
    assert_same_runs(&text(&src), &text(&dst), false).await;
}

#[test]
fn the_same_database_twice_is_a_usage_error_that_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runs.db");
    let out = flowstate()
        .args(["demo", "--runs", "20", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let before = file_bytes(&db);
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let other_spelling = sub.join("..").join("runs.db");
    for to in [
        db.clone(),
        other_spelling,
        PathBuf::from(format!("sqlite:{}", db.display())),
    ] {
        let out = copy(&db, &to, &[]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains("same database"), "{}", stderr(&out));
        assert_eq!(file_bytes(&db), before);
    }
    // With --json, the error is also a JSON document on stdout.
    let out = copy(&db, &db, &["--json"]);
    assert_eq!(out.status.code(), Some(2));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("a JSON error");
    assert_eq!(doc["error"]["kind"], "usage", "{doc}");
    assert_eq!(doc["error"]["exit_code"], 2, "{doc}");
    assert!(doc["error"]["message"]
        .as_str()
        .unwrap()
        .contains("same database"));
    assert!(
        !dir.path().join("runs.db-wal").exists() || file_bytes(&db) == before,
        "nothing opened"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_destination_holding_runs_is_refused_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path(), 0).await;
    let dst = dir.path().join("busy.db");
    let other = open(&text(&dst)).await;
    let mut mine = WorkflowState::new("someone_elses_run", "theirs");
    mine.status = Status::Completed;
    other.save_state(&mine).await.unwrap();
    other.close().await;

    let out = copy(&src, &dst, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("already holds 1 runs"), "{}", stderr(&out));
    assert_eq!(every_run(&text(&dst)).await.len(), 1, "nothing written");

    let report = copied(&text(&src), &text(&dst), &["--force"]);
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(report["bulk"], false, "beside runs, run by run: {report}");
    assert_eq!(report["destination_runs"], tricky_runs().len() + 1, "{report}");

    // A finished copy is not repeated by accident...
    let out = copy(&src, &dst, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("finished copy"), "{}", stderr(&out));
    // ...but can be, on purpose: the same runs, replaced, none doubled.
    let again = copied(&text(&src), &text(&dst), &["--force"]);
    assert_eq!(again["destination_runs"], tricky_runs().len() + 1, "{again}");
    assert_eq!(again["verified"], true, "{again}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_the_destination_refuses_is_named_and_every_other_run_copied() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path(), 50).await;
    // A NUL character, which flowstate refuses (PostgreSQL's text cannot hold it), as another writer may have left.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", src.display()))
        .await
        .unwrap();
    sqlx::query(
        "UPDATE workflow_state SET error_message = 'boom' || char(0) || 'tail' WHERE run_id = 'edge_numbers'",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let dst = dir.path().join("copy.db");
    let out = copy(&src, &dst, &["--batch", "16"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("edge_numbers") && err.contains("NUL"), "{err}");
    assert!(err.contains("1 of 57 runs could not be copied"), "{err}");
    let copied_runs = every_run(&text(&dst)).await;
    assert_eq!(copied_runs.len(), 56);
    assert!(copied_runs.iter().all(|r| r.run_id != "edge_numbers"));
}

/// Reads the child's stderr until a progress line shows up; returns the lines read.
fn wait_for_progress(child: &mut std::process::Child, timeout: Duration) -> Vec<String> {
    let err = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let start = Instant::now();
    let mut lines = Vec::new();
    while start.elapsed() < timeout {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => {
                let progress = line.starts_with("copy: ");
                lines.push(line);
                if progress {
                    return lines;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(_) => break,
        }
    }
    lines
}

/// Kills a bulk copy from `src` into `dst` once it shows progress, runs it again, and checks that nothing was lost
/// or doubled, that the resumed copy went on in bulk after the runs already in, and that the result is whole.
async fn kill_and_resume(src: &Path, dst: &str, total: usize, lossy_floats: bool) {
    // Small batches (one commit each) make the copy last long enough to be killed in the middle.
    let mut child = copy_cmd(&text(src), dst, &["--batch", "5"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let lines = wait_for_progress(&mut child, Duration::from_secs(60));
    child.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
    child.wait().unwrap();
    assert!(
        lines.last().is_some_and(|l| l.starts_with("copy: ")),
        "the copy showed progress before it was killed: {lines:?}"
    );
    // The first writable open finishes what the killed bulk load left out (indexes, triggers, counters)...
    let first = open(dst).await;
    assert!(
        !first.migration().is_noop(),
        "a bulk load killed half-way leaves its indexes and counters to the next open"
    );
    first.close().await;
    // ...after which the destination is whole.
    assert_whole(dst).await;
    let partial = every_run(dst).await.len();
    assert!(
        partial > 0 && partial < total,
        "killed half-way: {partial} of {total} runs copied"
    );

    let out = copy_url(&text(src), dst, &["--json", "--batch", "5000"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let skipped = report["skipped"].as_u64().unwrap();
    assert_eq!(
        skipped as usize, partial,
        "each batch is committed with its progress: the resumed copy starts exactly after the runs in: {report}"
    );
    assert!(
        stderr(&out).contains(&format!("resuming after {skipped} runs")),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        report["copied"].as_u64().unwrap() + skipped,
        total as u64,
        "the resumed copy reads only what was not copied before: {report}"
    );
    assert_eq!(
        report["bulk"], true,
        "an unfinished bulk copy goes on in bulk: {report}"
    );
    assert_eq!(
        report["raw"],
        !dst.starts_with("postgres"),
        "SQLite to SQLite: inside SQLite: {report}"
    );
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(report["destination_runs"], total, "{report}");
    assert_same_runs(&text(src), dst, lossy_floats).await;
    assert_whole(dst).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_copy_killed_half_way_resumes_and_loses_or_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let total = 20_000 + tricky_runs().len();
    let src = source(dir.path(), 20_000).await;
    let dst = dir.path().join("copy.db");
    kill_and_resume(&src, &text(&dst), total, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_copy_to_postgres_killed_half_way_resumes_and_loses_or_doubles_nothing() {
    let Some(pg) = flowstate_testkit::pg::fresh_database_or_skip("copy_killed").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let total = 20_000 + tricky_runs().len();
    let src = source(dir.path(), 20_000).await;
    kill_and_resume(&src, &pg, total, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_to_postgres_and_back_keeps_every_value() {
    // A fresh database on FLOWSTATE_TEST_PG's server (SKIPPED when unset).
    let Some(pg) = flowstate_testkit::pg::fresh_database_or_skip("copy_round_trip").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path(), 2_000).await;
    let there = copied(&text(&src), &pg, &["--batch", "300"]);
    assert_eq!(there["verified"], true, "{there}");
    assert_eq!(there["bulk"], true, "{there}");
    assert_whole(&pg).await;
    assert_eq!(there["copied"], 2_000 + tricky_runs().len(), "{there}");
    assert_same_runs(&text(&src), &pg, true).await;

    let back = dir.path().join("back.db");
    let report = copied(&pg, &text(&back), &[]);
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(report["bulk"], true, "{report}");
    assert_whole(&text(&back)).await;
    assert_same_runs(&pg, &text(&back), false).await;
    assert_same_runs(&text(&src), &text(&back), true).await;
}

/// Rows another writer may have left, each odd in one way: a raw copy must give each the values the per-run path
/// gives it (or refuse it with the same reason).
fn odd_rows() -> Vec<(&'static str, String)> {
    let deep = |n: usize| format!("'{}1{}'", "[".repeat(n), "]".repeat(n));
    let rows: Vec<(&str, &str)> = vec![
    // (run id, the rest of the row: pipeline_id .. memory_usage_mb, then the five extras)
    ("odd_history_null", "'p','n','1',0,'{}',NULL,NULL,'running','2025-01-01T00:00:00','2025-01-01T00:00:00',0,NULL,NULL,NULL, NULL,0,NULL,NULL,NULL"),
    ("odd_history_json_null", "'p','n','1',0,'{}',NULL,'null','running','2025-01-01T00:00:00','2025-01-01T00:00:00',0,NULL,NULL,NULL, NULL,0,NULL,NULL,NULL"),
    ("odd_context_not_json", "'p','n','1',0,'{oops',NULL,'[]','failed','2025-01-01 10:00:00','2025-01-01T10:00:00.5+02:00',1,'boom',5,1.5, NULL,0,NULL,NULL,NULL"),
    ("odd_context_blob", "'p','n','1',0,x'7b2261223a317d','null','[]','paused','2025-01-01T00:00:00Z','not a time',0,NULL,NULL,NULL, 'null',0,NULL,NULL,NULL"),
    ("odd_flujo_timestamps", "'p','n','1',2,'{\"a\": [1, 2.50, 1e5, -0]}','  \"x\"  ','[ {\"s\" : 1} ]','completed','2025-07-19T12:34:56.789012','2025-07-19T12:34:57',3,NULL,7,0.25, '{ \"k\" : \"v\" }',1,'parent','task','bg'"),
    ("odd_escapes", "'p','n','1',0,'{\"ascii\": \"\\u0041\", \"emoji\": \"\\ud83d\\ude80\", \"e\": \"\\u00e9\"}',NULL,'[]','running','2025-01-01T00:00:00','2025-01-01T00:00:00',0,NULL,NULL,NULL, NULL,0,NULL,NULL,NULL"),
    ("odd_lone_surrogate", "'p','n','1',0,'[\"\\ud800\"]',NULL,'[]','running','2025-01-01T00:00:00','2025-01-01T00:00:00',0,NULL,NULL,NULL, NULL,0,NULL,NULL,NULL"),
    ("odd_huge_number", "'p','n','1',0,'[1e400]','1e100','[]','running','2025-01-01T00:00:00','2025-01-01T00:00:00',0,NULL,NULL,NULL, NULL,0,NULL,NULL,NULL"),
    ("odd_types", "'p',42,'1',' 7','{}',NULL,'[]','running','2025-01-01T00:00:00','2025-01-01T00:00:00','3',NULL,12.6,'1.5', NULL,2,NULL,NULL,NULL"),
    ("odd_not_utf8", "'p',CAST(x'ff6e616d65' AS TEXT),'1',0,CAST(x'7b2261223a2022ff227d' AS TEXT),NULL,'[]','running','2025-01-01T00:00:00','2025-01-01T00:00:00',0,CAST(x'ff' AS TEXT),NULL,NULL, NULL,0,NULL,NULL,NULL"),
    ("odd_deep", "'p','n','1',0,DEEP100,NULL,'[]','running','2025-01-01T00:00:00','2025-01-01T00:00:00',0,NULL,NULL,NULL, NULL,0,NULL,NULL,NULL"),
    // Refused by a save, so by both paths.
    ("odd_refused_nul", "'p','n','1',0,'{}',NULL,'[]','failed','2025-01-01T00:00:00','2025-01-01T00:00:00',0,'a' || char(0) || 'b',NULL,NULL, NULL,0,NULL,NULL,NULL"),
    ("odd_refused_u0000", "'p','n','1',0,'{\"a\": \"\\u0000\"}',NULL,'[]','running','2025-01-01T00:00:00','2025-01-01T00:00:00',0,NULL,NULL,NULL, NULL,0,NULL,NULL,NULL"),
    ("odd_refused_year_0", "'p','n','1',0,'{}',NULL,'[]','running','0000-06-01T00:00:00','2025-01-01T00:00:00',0,NULL,NULL,NULL, NULL,0,NULL,NULL,NULL"),
    ("odd_refused_negative", "'p','n','1',-1,'{}',NULL,'[]','running','2025-01-01T00:00:00','2025-01-01T00:00:00',0,NULL,NULL,NULL, NULL,0,NULL,NULL,NULL"),
    ("odd_refused_too_deep", "'p','n','1',0,DEEP101,NULL,'[]','running','2025-01-01T00:00:00','2025-01-01T00:00:00',0,NULL,NULL,NULL, NULL,0,NULL,NULL,NULL"),
    ("", "'p','n','1',0,'{}',NULL,'[]','running','2025-01-01T00:00:00','2025-01-01T00:00:00',0,NULL,NULL,NULL, NULL,0,NULL,NULL,NULL"),
    ];
    rows.into_iter()
        .map(|(id, rest)| {
            (
                id,
                rest.replace("DEEP100", &deep(100)).replace("DEEP101", &deep(101)),
            )
        })
        .collect()
}

/// The odd runs a raw copy cannot move as they are (each goes the per-run way), refused ones aside.
const ODD_APART: usize = 7;

/// Writes [`odd_rows`] into a SQLite file of the current schema, past the store (as another writer would), with
/// the CHECK on the status left out of the way by writing it valid.
async fn write_odd_rows(path: &Path) {
    let pool = sqlx::SqlitePool::connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(path))
        .await
        .unwrap();
    for (id, rest) in odd_rows() {
        sqlx::query(&format!(
            "INSERT INTO workflow_state (run_id, pipeline_id, pipeline_name, pipeline_version, current_step_index, \
             pipeline_context, last_step_output, step_history, status, created_at, updated_at, total_steps, \
             error_message, execution_time_ms, memory_usage_mb, metadata, is_background_task, parent_run_id, \
             task_id, background_error) VALUES ('{id}', {rest})"
        ))
        .execute(&pool)
        .await
        .unwrap_or_else(|e| panic!("writing {id}: {e}"));
    }
    pool.close().await;
}

/// Every row of a SQLite file's `workflow_state`, in run-id order: the JSON columns as values (text that is not
/// JSON as a string), every other column as stored (its type and value, as text).
async fn stored_rows(path: &Path) -> Vec<Vec<Value>> {
    let pool = sqlx::SqlitePool::connect_with(
        sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .read_only(true),
    )
    .await
    .unwrap();
    let columns = [
        "run_id",
        "pipeline_id",
        "pipeline_name",
        "pipeline_version",
        "current_step_index",
        "pipeline_context",
        "last_step_output",
        "step_history",
        "status",
        "created_at",
        "updated_at",
        "total_steps",
        "error_message",
        "execution_time_ms",
        "memory_usage_mb",
        "metadata",
        "is_background_task",
        "parent_run_id",
        "task_id",
        "background_error",
    ];
    let json_columns = ["pipeline_context", "last_step_output", "step_history", "metadata"];
    let select: Vec<String> = columns
        .iter()
        .map(|c| format!("typeof({c}), quote({c}), CAST({c} AS TEXT)"))
        .collect();
    let rows = sqlx::query(&format!(
        "SELECT {} FROM workflow_state ORDER BY run_id",
        select.join(", ")
    ))
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    use sqlx::Row;
    rows.iter()
        .map(|r| {
            columns
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let kind: String = r.get(3 * i);
                    if json_columns.contains(c) && kind == "text" {
                        let text: String = r.get(3 * i + 2);
                        serde_json::from_str(&text).unwrap_or(Value::String(text))
                    } else {
                        json!([kind, r.get::<Option<String>, _>(3 * i + 1)])
                    }
                })
                .collect()
        })
        .collect()
}

/// The `refused run ID: reason` lines of a copy's stderr, sorted.
fn refusals(out: &Output) -> Vec<String> {
    let mut lines: Vec<String> = stderr(out)
        .lines()
        .filter(|l| l.starts_with("refused run "))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

/// Copies `src` twice, raw (into a new file) and run by run (`--force` into a file holding one other run), and
/// asserts both hold the same rows: every column stored alike, the JSON columns as the same values. Returns the
/// raw copy's report.
async fn assert_raw_copy_is_the_per_run_copy(src: &Path, dir: &Path, refused: usize) -> Value {
    let raw = dir.join("raw copy.db");
    let rows = dir.join("per-run copy.db");
    let seed = open(&text(&rows)).await;
    seed.save_state(&WorkflowState::new("~seed", "seed"))
        .await
        .unwrap();
    seed.close().await;

    let out_raw = copy(src, &raw, &["--json", "--batch", "7"]);
    let out_rows = copy(src, &rows, &["--json", "--force", "--batch", "7"]);
    for out in [&out_raw, &out_rows] {
        assert_eq!(
            out.status.code(),
            Some(if refused > 0 { 1 } else { 0 }),
            "{}",
            stderr(out)
        );
    }
    assert_eq!(refusals(&out_raw).len(), refused, "{}", stderr(&out_raw));
    assert_eq!(
        refusals(&out_raw),
        refusals(&out_rows),
        "the same runs refused, for the same reasons"
    );
    let report: Value = if refused == 0 {
        serde_json::from_slice(&out_raw.stdout).unwrap()
    } else {
        json!({})
    };
    if refused == 0 {
        assert_eq!(report["raw"], true, "{report}");
        let per_run: Value = serde_json::from_slice(&out_rows.stdout).unwrap();
        assert_eq!(per_run["bulk"], false, "{per_run}");
    }
    assert_whole(&text(&raw)).await;
    let (a, mut b) = (stored_rows(&raw).await, stored_rows(&rows).await);
    b.retain(|r| r[0] != json!(["text", "'~seed'"]));
    let ids = |rows: &[Vec<Value>]| rows.iter().map(|r| r[0].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&a), ids(&b), "the same runs");
    // Timestamps a save filled in (none readable in the source) are each copy's own time.
    let unreadable_time = ["odd_context_blob"];
    for (x, y) in a.iter().zip(&b) {
        for (i, (u, v)) in x.iter().zip(y).enumerate() {
            let id = &x[0];
            if i == 10 && unreadable_time.iter().any(|u| id[1] == format!("'{u}'")) {
                continue;
            }
            assert_eq!(u, v, "run {id}, column {i}");
        }
    }
    // And as the store reads them.
    let (ra, rb) = (every_run(&text(&raw)).await, every_run(&text(&rows)).await);
    let rb: Vec<WorkflowState> = rb.into_iter().filter(|r| r.run_id != "~seed").collect();
    for (x, y) in ra.iter().zip(&rb) {
        if unreadable_time.contains(&x.run_id.as_str()) {
            assert_eq!(x.created_at, y.created_at);
            continue;
        }
        assert_eq!(x, y);
    }
    report
}

#[tokio::test(flavor = "multi_thread")]
async fn a_raw_copy_gives_every_run_the_values_the_per_run_copy_gives_it() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(dir.path(), 300).await;
    // A name SQLite's URIs read specially: the raw copy attaches the file by URI.
    let odd_name = dir.path().join("odd ?#%&= name.db");
    std::fs::rename(&src, &odd_name).unwrap();
    write_odd_rows(&odd_name).await;
    let odd = odd_rows();
    let refused = odd
        .iter()
        .filter(|(id, _)| id.is_empty() || id.starts_with("odd_refused"))
        .count();
    assert_raw_copy_is_the_per_run_copy(&odd_name, dir.path(), refused).await;

    // Without the refused ones the copy succeeds; most runs were moved inside SQLite, the odd ones apart.
    let clean = dir.path().join("clean.db");
    std::fs::copy(&odd_name, &clean).unwrap();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", clean.display()))
        .await
        .unwrap();
    sqlx::query("DELETE FROM workflow_state WHERE run_id = '' OR run_id LIKE 'odd_refused%'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let sub = dir.path().join("again");
    std::fs::create_dir(&sub).unwrap();
    let report = assert_raw_copy_is_the_per_run_copy(&clean, &sub, 0).await;
    let total = 300 + tricky_runs().len() + odd.len() - refused;
    assert_eq!(report["copied"], total, "{report}");
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(
        report["copied_apart"], ODD_APART,
        "the odd runs went apart, every other run was copied raw: {report}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_raw_copy_of_a_flujo_file_is_the_per_run_copy() {
    let dir = tempfile::tempdir().unwrap();
    let src = copy_fixture("flujo-0.4.35-sample-300.db", dir.path());
    let before = file_bytes(&src);
    let report = assert_raw_copy_is_the_per_run_copy(&src, dir.path(), 0).await;
    assert_eq!(report["copied"], 300, "{report}");
    assert_eq!(file_bytes(&src), before, "flujo's file is left as it was");
    assert_same_runs(&text(&src), &text(&dir.path().join("raw copy.db")), false).await;
}
