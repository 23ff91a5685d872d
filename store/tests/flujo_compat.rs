//! Compatibility with the real flujo 0.4.35 (Python), in both directions, on shared files.
//!
//! The fixtures are the repository's own (`tests/fixtures`, made by its `generate.py` with the same flujo).
//!
//! Each test drives flujo's own `SQLiteBackend` through `tests/flujo/flujo_driver.py` with the Python named by
//! the environment variable `FLOWSTATE_FLUJO_PYTHON` (`cargo make setup` creates one at `.venv-flujo`).
//! Without the variable the tests print a "skipped" line and pass; with it, anything flujo cannot do with a
//! file flowstate migrated or wrote fails the test.
//!
//! What is checked:
//! - flujo writes runs with every timestamp spelling → flowstate migrates and reads the right values and
//!   instants → flujo reads every run back, lists, counts and keeps writing (no `*.corrupt.*` rename);
//! - flowstate creates and writes a file → flujo opens it, reads every field (datetimes from flowstate's
//!   canonical spelling equal the instants written), inserts and replaces runs → flowstate sees both exactly;
//! - flowstate migrates flujo's oldest 9-column files (one of which flujo alone renames aside as corrupt) →
//!   flujo opens, lists and reads them;
//! - flowstate migrates the 300-run sample → flujo's answers and flowstate's agree on every run.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use common::{copy_fixture, fixture_truth};
use flowstate_store::{
    FixedClock, ListQuery, RunExtras, RunSummary, SchemaKind, Status, Store, StoreOptions, WorkflowState,
};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------------------
// Running flujo
// ---------------------------------------------------------------------------------------------------------

/// The real flujo, reached through the driver script.
struct Flujo {
    python: PathBuf,
}

impl Flujo {
    /// The configured Python, or `None` (after printing why the test is skipped) when none is configured.
    fn from_env(test: &str) -> Option<Flujo> {
        match std::env::var_os("FLOWSTATE_FLUJO_PYTHON") {
            Some(p) if !p.is_empty() => Some(Flujo {
                python: PathBuf::from(p),
            }),
            _ => {
                // Written straight to the process's stderr so the line shows even when the harness captures
                // test output.
                let _ = writeln!(
                    std::io::stderr(),
                    "flujo_compat::{test}: skipped: set FLOWSTATE_FLUJO_PYTHON (see README)"
                );
                None
            }
        }
    }

    fn driver() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/flujo/flujo_driver.py")
    }

    /// Runs the driver and returns the JSON it prints. Panics (failing the test) when the interpreter cannot be
    /// started, flujo cannot be imported, or the script fails.
    fn run(&self, args: &[&str], stdin: Option<&Value>) -> Value {
        let mut child = Command::new(&self.python)
            .arg(Self::driver())
            .args(args)
            .env("PYTHONIOENCODING", "utf-8")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "FLOWSTATE_FLUJO_PYTHON={} cannot be started: {e}",
                    self.python.display()
                )
            });
        let input = stdin.map(|v| v.to_string()).unwrap_or_default();
        let mut pipe = child.stdin.take().expect("stdin is piped");
        let writer = std::thread::spawn(move || {
            let _ = pipe.write_all(input.as_bytes());
        });
        let out = child.wait_with_output().expect("waiting for the flujo driver");
        let _ = writer.join();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "flujo driver {args:?} failed ({}) with {}\n--- stderr ---\n{stderr}\n--- stdout ---\n{stdout}",
            out.status,
            self.python.display(),
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("flujo driver {args:?} printed no JSON ({e})\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}")
        })
    }

    /// flujo's `save_state` for each run, in order.
    fn save(&self, db: &Path, runs: &[FlujoRun]) -> Value {
        let payload: Vec<Value> = runs
            .iter()
            .map(|r| json!({"run_id": r.run_id, "state": r.state}))
            .collect();
        let out = self.run(&["write", path_str(db)], Some(&Value::Array(payload)));
        assert_eq!(out["written"], json!(runs.len()), "{out}");
        assert_not_renamed(&out, db);
        out
    }

    /// flujo opens the file, lists, counts and loads every listed run.
    fn inspect(&self, db: &Path) -> Value {
        let out = self.run(&["inspect", path_str(db)], None);
        assert_not_renamed(&out, db);
        assert_eq!(
            out["integrity_check"],
            json!(["ok"]),
            "PRAGMA integrity_check after flujo used {}",
            db.display()
        );
        assert_eq!(
            out["list_run_ids"].as_array().map(Vec::len),
            out["row_count"].as_u64().map(|n| n as usize),
            "flujo's list_workflows() must list every row"
        );
        assert_eq!(out["stats"]["total_workflows"], out["row_count"]);
        out
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// flujo renames a database it fails to initialise to `*.corrupt.<ts>` and starts an empty one: the worst
/// outcome for a shared file. Checked by the driver (directory listing, inode) and here (directory listing).
#[track_caller]
fn assert_not_renamed(out: &Value, db: &Path) {
    assert_eq!(
        out["corrupt_files"],
        json!([]),
        "flujo renamed the database aside: {out}"
    );
    assert_eq!(
        out["same_inode"],
        json!(true),
        "flujo replaced the database file: {out}"
    );
    let dir = db.parent().expect("a database in a directory");
    let corrupt: Vec<String> = std::fs::read_dir(dir)
        .expect("listing the temporary directory")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".corrupt."))
        .collect();
    assert!(corrupt.is_empty(), "flujo left {corrupt:?} in {}", dir.display());
    assert!(db.is_file(), "{} no longer exists", db.display());
}

// ---------------------------------------------------------------------------------------------------------
// Fixtures, clock, expectations
// ---------------------------------------------------------------------------------------------------------

#[track_caller]
fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .with_timezone(&Utc)
}

async fn open_at(db: &Path, now: DateTime<Utc>) -> Store {
    let options = StoreOptions {
        clock: Arc::new(FixedClock::new(now)),
        ..StoreOptions::default()
    };
    Store::open_with(db, options)
        .await
        .unwrap_or_else(|e| panic!("flowstate cannot open {}: {e}", db.display()))
}

/// One run as a flujo application saves it: the dict handed to `save_state` (timestamps as ISO text that the
/// driver turns into naive or aware datetimes), and the instants those timestamps mean, computed by hand.
struct FlujoRun {
    run_id: &'static str,
    state: Value,
    created: DateTime<Utc>,
    updated: DateTime<Utc>,
}

/// A run with flujo's required keys; `extra` adds or overrides keys (optional ones may stay absent, as a flujo
/// caller may leave them out).
fn flujo_run(
    run_id: &'static str,
    status: &str,
    (created_text, created): (&str, &str),
    (updated_text, updated): (&str, &str),
    extra: Value,
) -> FlujoRun {
    let mut state = json!({
        "pipeline_id": "invoice-extraction",
        "pipeline_name": "Invoice extraction",
        "pipeline_version": "2.1.0",
        "current_step_index": 1,
        "pipeline_context": {"run_id": run_id, "initial_prompt": "Extract INV-77"},
        "status": status,
        "created_at": created_text,
        "updated_at": updated_text,
    });
    if let Value::Object(extra) = extra {
        state.as_object_mut().expect("an object").extend(extra);
    }
    FlujoRun {
        run_id,
        state,
        created: utc(created),
        updated: utc(updated),
    }
}

/// The row flowstate must read for a run flujo saved.
fn expected_state(run: &FlujoRun) -> WorkflowState {
    let s = &run.state;
    let text = |k: &str| s[k].as_str().map(str::to_string);
    let present = |k: &str| s.get(k).filter(|v| !v.is_null()).cloned();
    WorkflowState {
        run_id: run.run_id.to_string(),
        pipeline_id: text("pipeline_id").expect("pipeline_id"),
        pipeline_name: text("pipeline_name").expect("pipeline_name"),
        pipeline_version: text("pipeline_version").expect("pipeline_version"),
        current_step_index: s["current_step_index"].as_i64().expect("current_step_index"),
        pipeline_context: s["pipeline_context"].clone(),
        // flujo writes SQL NULL for a None output, JSON for everything else (0, "", [] included).
        last_step_output: present("last_step_output"),
        step_history: present("step_history").unwrap_or_else(|| json!([])),
        status: Status::from_stored(text("status")),
        created_at: Some(run.created),
        updated_at: Some(run.updated),
        total_steps: s.get("total_steps").and_then(Value::as_i64).unwrap_or(0),
        error_message: text("error_message"),
        execution_time_ms: s.get("execution_time_ms").and_then(Value::as_i64),
        memory_usage_mb: s.get("memory_usage_mb").and_then(Value::as_f64),
        extras: Default::default(),
    }
}

#[track_caller]
fn assert_close(actual: f64, expected: f64, what: &str) {
    let tolerance = 1e-9 * expected.abs().max(1.0);
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: got {actual}, expected {expected}"
    );
}

#[track_caller]
fn assert_same_state(actual: &WorkflowState, expected: &WorkflowState) {
    let mut a = actual.clone();
    let mut e = expected.clone();
    match (a.memory_usage_mb.take(), e.memory_usage_mb.take()) {
        (Some(x), Some(y)) => assert_close(x, y, &format!("{} memory_usage_mb", e.run_id)),
        (x, y) => assert_eq!(x, y, "{} memory_usage_mb", e.run_id),
    }
    assert_eq!(a, e, "flowstate's load_state({:?})", expected.run_id);
}

#[track_caller]
fn assert_summary(summary: &RunSummary, e: &WorkflowState) {
    let id = &e.run_id;
    assert_eq!(summary.pipeline_id, e.pipeline_id, "{id}");
    assert_eq!(summary.pipeline_name, e.pipeline_name, "{id}");
    assert_eq!(summary.pipeline_version, e.pipeline_version, "{id}");
    assert_eq!(summary.status, e.status, "{id}");
    assert_eq!(summary.current_step_index, e.current_step_index, "{id}");
    assert_eq!(summary.total_steps, e.total_steps, "{id}");
    assert_eq!(summary.created_at, e.created_at, "{id}");
    assert_eq!(summary.updated_at, e.updated_at, "{id}");
    assert_eq!(summary.error_message, e.error_message, "{id}");
    assert_eq!(summary.execution_time_ms, e.execution_time_ms, "{id}");
    match (summary.memory_usage_mb, e.memory_usage_mb) {
        (Some(x), Some(y)) => assert_close(x, y, &format!("{id} memory_usage_mb")),
        (x, y) => assert_eq!(x, y, "{id} memory_usage_mb"),
    }
}

fn expected_status_counts(expected: &[WorkflowState]) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for e in expected {
        *counts.entry(e.status.as_str().to_string()).or_insert(0) += 1;
    }
    counts
}

fn expected_average(expected: &[WorkflowState]) -> f64 {
    let times: Vec<f64> = expected
        .iter()
        .filter_map(|e| e.execution_time_ms)
        .map(|t| t as f64)
        .collect();
    if times.is_empty() {
        0.0
    } else {
        times.iter().sum::<f64>() / times.len() as f64
    }
}

/// flowstate's load_state, list, stats and failed-runs answers for a file holding exactly `expected`, with
/// the store's clock at `now`.
async fn assert_flowstate_sees(store: &Store, expected: &[WorkflowState], now: DateTime<Utc>) {
    for e in expected {
        let got = store
            .load_state(&e.run_id)
            .await
            .expect("load_state")
            .unwrap_or_else(|| panic!("flowstate cannot find {}", e.run_id));
        assert_same_state(&got, e);
    }

    // Newest first by the real creation instant, run id breaking ties.
    let mut order: Vec<&WorkflowState> = expected.iter().collect();
    order.sort_by(|a, b| (b.created_at, &b.run_id).cmp(&(a.created_at, &a.run_id)));
    let page = store
        .list_workflows(&ListQuery {
            limit: Some(ListQuery::MAX_LIMIT),
            ..ListQuery::default()
        })
        .await
        .expect("list_workflows");
    let listed: Vec<&str> = page.runs.iter().map(|r| r.run_id.as_str()).collect();
    let wanted: Vec<&str> = order.iter().map(|e| e.run_id.as_str()).collect();
    assert_eq!(
        listed, wanted,
        "flowstate's list order (by instant, then run id, newest first)"
    );
    for (summary, e) in page.runs.iter().zip(&order) {
        assert_summary(summary, e);
    }

    // The overview counters (kept by triggers, whoever wrote the file) equal a recount of the rows.
    if store.has_counters() {
        let check = store.verify_counters().await.expect("verify_counters");
        assert!(
            check.is_exact(),
            "counters differ from a recount: {:#?}",
            check.differences
        );
    }

    let day_ago = now - Duration::hours(24);
    let stats = store.get_workflow_stats().await.expect("get_workflow_stats");
    assert_eq!(stats.total_workflows, expected.len() as i64, "total_workflows");
    assert_eq!(
        stats.status_counts,
        expected_status_counts(expected),
        "status_counts"
    );
    let recent = expected
        .iter()
        .filter(|e| e.created_at.is_some_and(|c| c >= day_ago))
        .count() as i64;
    assert_eq!(
        stats.recent_workflows_24h, recent,
        "recent_workflows_24h (by instant)"
    );
    assert_close(
        stats.average_execution_time_ms,
        expected_average(expected),
        "average_execution_time_ms",
    );

    let mut failed: Vec<&WorkflowState> = expected
        .iter()
        .filter(|e| e.status == Status::Failed && e.updated_at.is_some_and(|u| u >= day_ago))
        .collect();
    failed.sort_by(|a, b| (b.updated_at, &b.run_id).cmp(&(a.updated_at, &a.run_id)));
    let got: Vec<String> = store
        .get_failed_workflows(24, ListQuery::MAX_LIMIT)
        .await
        .expect("get_failed_workflows")
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    let want: Vec<String> = failed.iter().map(|e| e.run_id.clone()).collect();
    assert_eq!(
        got, want,
        "flowstate's failed runs of the last 24 h (by updated instant)"
    );
}

/// flujo's `load_state` of one run (as the driver reports it) against the row flowstate holds or wrote.
#[track_caller]
fn assert_flujo_state(seen: &Value, e: &WorkflowState) {
    let id = &e.run_id;
    assert!(
        seen.get("error").is_none(),
        "flujo's load_state({id:?}) raised: {seen}"
    );
    assert_eq!(seen["run_id"], json!(id));
    assert_eq!(seen["pipeline_id"], json!(e.pipeline_id), "{id}");
    assert_eq!(seen["pipeline_name"], json!(e.pipeline_name), "{id}");
    assert_eq!(seen["pipeline_version"], json!(e.pipeline_version), "{id}");
    assert_eq!(seen["current_step_index"], json!(e.current_step_index), "{id}");
    assert_eq!(
        seen["pipeline_context"], e.pipeline_context,
        "{id} pipeline_context"
    );
    // flujo cannot tell SQL NULL from JSON null here: both come back as None.
    assert_eq!(
        seen["last_step_output"],
        e.last_step_output.clone().unwrap_or(Value::Null),
        "{id} last_step_output"
    );
    assert_eq!(seen["step_history"], e.step_history, "{id} step_history");
    assert_eq!(seen["status"], json!(e.status.as_str()), "{id}");
    for (field, instant) in [("created_at", e.created_at), ("updated_at", e.updated_at)] {
        let instant = instant.unwrap_or_else(|| panic!("{id} {field} must be known"));
        assert_eq!(
            seen[field]["epoch_us"],
            json!(instant.timestamp_micros()),
            "{id} {field}: flujo read {} for the instant {instant}",
            seen[field]
        );
    }
    assert_eq!(seen["total_steps"], json!(e.total_steps), "{id}");
    assert_eq!(seen["error_message"], json!(e.error_message), "{id}");
    assert_eq!(seen["execution_time_ms"], json!(e.execution_time_ms), "{id}");
    match (seen["memory_usage_mb"].as_f64(), e.memory_usage_mb) {
        (Some(x), Some(y)) => assert_close(x, y, &format!("{id} memory_usage_mb")),
        (None, None) => assert!(seen["memory_usage_mb"].is_null(), "{id}"),
        (x, y) => panic!("{id} memory_usage_mb: flujo {x:?}, expected {y:?}"),
    }
}

/// flujo's whole view (from [`Flujo::inspect`]) of a file holding exactly `expected`.
#[track_caller]
fn assert_flujo_sees(seen: &Value, expected: &[WorkflowState]) {
    assert_eq!(seen["row_count"], json!(expected.len()), "rows in the file");
    let mut listed: Vec<&str> = seen["list_run_ids"]
        .as_array()
        .expect("list_run_ids")
        .iter()
        .map(|v| v.as_str().expect("a run id"))
        .collect();
    listed.sort_unstable();
    let mut wanted: Vec<&str> = expected.iter().map(|e| e.run_id.as_str()).collect();
    wanted.sort_unstable();
    assert_eq!(listed, wanted, "flujo's list_workflows()");

    let stats = &seen["stats"];
    assert_eq!(stats["total_workflows"], json!(expected.len()));
    let counts: BTreeMap<String, i64> =
        serde_json::from_value(stats["status_counts"].clone()).expect("flujo's status_counts");
    assert_eq!(counts, expected_status_counts(expected), "flujo's status_counts");
    assert_close(
        stats["average_execution_time_ms"].as_f64().expect("a number"),
        expected_average(expected),
        "flujo's average_execution_time_ms",
    );

    for e in expected {
        assert_flujo_state(&seen["states"][&e.run_id], e);
    }
}

// ---------------------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------------------

/// The configured Python really has flujo 0.4.35 (a wrong version would make every other test meaningless).
#[test]
fn flujo_0_4_35_is_importable() {
    let Some(flujo) = Flujo::from_env("flujo_0_4_35_is_importable") else {
        return;
    };
    let facts = flujo.run(&["check"], None);
    assert_eq!(facts["flujo"], json!("0.4.35"), "{facts}");
}

/// "Now" for the hand-made runs below.
const NOW: &str = "2025-07-19T12:00:00Z";

/// Runs saved through flujo with every timestamp spelling it produces: naive with and without microseconds
/// (meaning UTC), aware `+00:00`, and aware `-07:00` (kept as written, not converted).
fn flujo_written_runs() -> Vec<FlujoRun> {
    let big = "Ünïcödé ✓ ".repeat(5_000);
    vec![
        flujo_run(
            "fj_naive_us",
            "completed",
            ("2025-07-19T11:34:56.789012", "2025-07-19T11:34:56.789012Z"),
            ("2025-07-19T11:35:10.000001", "2025-07-19T11:35:10.000001Z"),
            json!({
                "pipeline_context": {"prompt": "naïve café 🚀 请总结", "n": [1, 2.5, null, true], "nested": {"a": {}}},
                "last_step_output": {"answer": 42},
                "step_history": [{"name": "extract", "success": true}, {"name": "validate", "success": true}],
                "total_steps": 3, "current_step_index": 3,
                "execution_time_ms": 1500, "memory_usage_mb": 12.5,
            }),
        ),
        flujo_run(
            "fj_naive_plain",
            "failed",
            ("2025-07-19T02:00:00", "2025-07-19T02:00:00Z"),
            ("2025-07-19T02:00:05", "2025-07-19T02:00:05Z"),
            json!({
                "error_message": "Step 'extract' failed: TimeoutError: agent call exceeded 30s",
                "execution_time_ms": 30000, "total_steps": 4, "memory_usage_mb": 101.375,
            }),
        ),
        flujo_run(
            "fj_utc",
            "running",
            ("2025-07-18T12:30:00.500000+00:00", "2025-07-18T12:30:00.5Z"),
            ("2025-07-19T11:59:00+00:00", "2025-07-19T11:59:00Z"),
            json!({"last_step_output": 0, "step_history": []}),
        ),
        flujo_run(
            "fj_minus7",
            "paused",
            // 06:00 at -07:00 is 13:00 UTC: inside the last 24 h although its text reads "06:00".
            ("2025-07-18T06:00:00-07:00", "2025-07-18T13:00:00Z"),
            ("2025-07-18T06:00:00.250000-07:00", "2025-07-18T13:00:00.25Z"),
            json!({"last_step_output": "", "pipeline_name": "Invoice — extraction"}),
        ),
        flujo_run(
            "fj_old_naive",
            "cancelled",
            ("2025-07-18T11:30:00", "2025-07-18T11:30:00Z"),
            ("2025-07-18T11:30:01", "2025-07-18T11:30:01Z"),
            json!({"last_step_output": [], "error_message": "Cancelled by user"}),
        ),
        flujo_run(
            "fj_minus7_old",
            "failed",
            // 04:30 at -07:00 is 11:30 UTC: outside the last 24 h; its update (23:30 UTC) is inside.
            ("2025-07-18T04:30:00-07:00", "2025-07-18T11:30:00Z"),
            ("2025-07-18T16:30:00-07:00", "2025-07-18T23:30:00Z"),
            json!({"error_message": "ValueError: bad \"quote\" and \\ backslash", "execution_time_ms": 2500}),
        ),
        flujo_run(
            "fj_utc_plain",
            "completed",
            ("2025-06-01T00:00:00+00:00", "2025-06-01T00:00:00Z"),
            ("2025-06-01T00:01:00+00:00", "2025-06-01T00:01:00Z"),
            json!({"execution_time_ms": 100, "pipeline_id": "sql-agent", "pipeline_name": "sql-agent"}),
        ),
        // The same instant spelled two ways: the run id breaks the tie.
        flujo_run(
            "fj_tie_a",
            "completed",
            ("2025-07-19T10:00:00", "2025-07-19T10:00:00Z"),
            ("2025-07-19T10:00:00", "2025-07-19T10:00:00Z"),
            json!({"execution_time_ms": 7}),
        ),
        flujo_run(
            "fj_tie_b",
            "completed",
            ("2025-07-19T03:00:00-07:00", "2025-07-19T10:00:00Z"),
            ("2025-07-19T03:00:00-07:00", "2025-07-19T10:00:00Z"),
            json!({"execution_time_ms": 8}),
        ),
        flujo_run(
            "fj_big",
            "running",
            ("2025-07-19T11:59:59.999999", "2025-07-19T11:59:59.999999Z"),
            ("2025-07-19T11:59:59.999999", "2025-07-19T11:59:59.999999Z"),
            json!({"pipeline_context": {"document": big, "pages": 40}}),
        ),
    ]
}

/// a. flujo writes → flowstate migrates and reads → flujo reads back and keeps writing.
#[tokio::test]
async fn flujo_writes_flowstate_migrates_and_reads_then_flujo_reads_back() {
    let Some(flujo) = Flujo::from_env("flujo_writes_flowstate_migrates_and_reads_then_flujo_reads_back")
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("shared.db");
    let now = utc(NOW);

    let runs = flujo_written_runs();
    flujo.save(&db, &runs);
    let mut expected: Vec<WorkflowState> = runs.iter().map(expected_state).collect();

    let store = open_at(&db, now).await;
    assert_eq!(
        store.migration().from,
        SchemaKind::Flujo0435,
        "{:?}",
        store.migration()
    );
    assert_flowstate_sees(&store, &expected, now).await;
    store.close().await;

    let seen = flujo.inspect(&db);
    assert_flujo_sees(&seen, &expected);
    // flowstate's migration rewrote nothing flujo wrote: flujo reads back its own spellings.
    for run in &runs {
        for field in ["created_at", "updated_at"] {
            assert_eq!(
                seen["states"][run.run_id][field]["iso"], run.state[field],
                "{} {field} as flujo reads it back",
                run.run_id
            );
        }
    }

    // flujo keeps writing into the migrated file: its SQLite maintains flowstate's instant-keyed indexes.
    let later = [flujo_run(
        "fj_after_migration",
        "failed",
        ("2025-07-19T11:00:00+02:00", "2025-07-19T09:00:00Z"),
        ("2025-07-19T11:30:00+02:00", "2025-07-19T09:30:00Z"),
        json!({"error_message": "RateLimitError: 429", "execution_time_ms": 640}),
    )];
    flujo.save(&db, &later);
    expected.push(expected_state(&later[0]));
    let seen = flujo.inspect(&db);
    assert_flujo_sees(&seen, &expected);

    let store = open_at(&db, now).await;
    assert!(
        store.migration().is_noop(),
        "flujo's use must leave the file current: {:?}",
        store.migration()
    );
    assert_flowstate_sees(&store, &expected, now).await;
    store.close().await;
}

/// b. flowstate creates and writes → flujo reads every field, inserts and replaces → flowstate sees both.
#[tokio::test]
async fn flowstate_writes_flujo_reads_then_inserts_and_replaces() {
    let Some(flujo) = Flujo::from_env("flowstate_writes_flujo_reads_then_inserts_and_replaces") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("flowstate.db");
    let now = utc(NOW);
    let store = open_at(&db, now).await;
    assert_eq!(store.migration().from, SchemaKind::Empty);

    let mut fs_1 = WorkflowState::new("fs_1", "customer-support-triage");
    fs_1.pipeline_name = "Customer support triage".into();
    fs_1.status = Status::Completed;
    fs_1.pipeline_context = json!({"k": "é 🚀 \u{1F600}", "n": [1, 2.5, null, true], "empty": {}});
    fs_1.last_step_output = Some(Value::Null);
    fs_1.step_history = json!([{"name": "classify", "output": "billing"}]);
    fs_1.created_at = Some(utc("2025-07-19T08:00:00.123456Z"));
    fs_1.updated_at = Some(utc("2025-07-19T08:05:00.000001Z"));
    fs_1.total_steps = 2;
    fs_1.current_step_index = 2;
    fs_1.execution_time_ms = Some(1000);
    fs_1.memory_usage_mb = Some(48.25);
    // The columns of flujo's PostgreSQL layout (schema version 3): flujo 0.4.35 never names them.
    fs_1.extras = RunExtras {
        metadata: Some(json!({"source": "postgres", "tags": ["a", "é"]})),
        is_background_task: true,
        parent_run_id: Some("fs_2".into()),
        task_id: Some("task-1".into()),
        background_error: Some("TimeoutError: 30 s".into()),
    };

    // No timestamps: both come from the store's clock.
    let fs_2 = WorkflowState::new("fs_2", "sql-agent");

    let mut fs_3 = WorkflowState::new("fs_3", "invoice-extraction");
    fs_3.status = Status::Failed;
    fs_3.error_message = Some("ValueError: bad \"quote\" ünïcödé\nline 2".into());
    fs_3.execution_time_ms = Some(4200);
    fs_3.memory_usage_mb = Some(256.75);
    fs_3.step_history = json!([{"name": "s1", "output": "x"}, {"name": "s2", "output": null}]);
    fs_3.total_steps = 5;
    fs_3.current_step_index = 2;
    fs_3.created_at = Some(utc("2025-07-19T07:00:00Z"));
    fs_3.updated_at = Some(utc("2025-07-19T07:10:00.5Z"));
    fs_3.extras = RunExtras {
        metadata: Some(json!({"replaced": "by flujo"})),
        is_background_task: true,
        parent_run_id: Some("fs_1".into()),
        task_id: Some("task-3".into()),
        background_error: None,
    };

    let mut fs_4 = WorkflowState::new("fs_4", "hitl-approval");
    fs_4.status = Status::Paused;
    fs_4.created_at = Some(utc("2025-07-17T23:59:59.999999Z"));
    fs_4.updated_at = Some(utc("2025-07-18T00:00:00Z"));
    fs_4.last_step_output = Some(json!("draft v1"));

    let mut fs_5 = WorkflowState::new("fs_5", "hitl-approval");
    fs_5.status = Status::Cancelled;
    fs_5.created_at = Some(utc("2025-07-18T12:00:00.000001Z"));
    fs_5.updated_at = Some(utc("2025-07-18T12:00:00.000001Z"));
    fs_5.last_step_output = Some(json!(0));

    store
        .save_many(&[fs_1.clone(), fs_2.clone(), fs_3.clone(), fs_4.clone()])
        .await
        .expect("save_many");
    store.save_state(&fs_5).await.expect("save_state");

    // What the file holds now: fs_2's timestamps are the store's clock.
    let mut fs_2_saved = fs_2.clone();
    fs_2_saved.created_at = Some(now);
    fs_2_saved.updated_at = Some(now);
    let mut expected = vec![fs_1, fs_2_saved, fs_3, fs_4, fs_5];
    assert_flowstate_sees(&store, &expected, now).await;

    // flujo opens the file flowstate created (while flowstate still has it open) and reads every field.
    let seen = flujo.inspect(&db);
    assert_flujo_sees(&seen, &expected);
    for e in &expected {
        for field in ["created_at", "updated_at"] {
            assert_eq!(
                seen["states"][&e.run_id][field]["aware"],
                json!(true),
                "{} {field}: flowstate writes an explicit UTC offset",
                e.run_id
            );
        }
    }

    // flujo inserts a new run and replaces one of flowstate's (INSERT OR REPLACE: the whole row).
    let flujo_runs = [
        flujo_run(
            "fj_new",
            "completed",
            ("2025-07-19T11:00:00.500000", "2025-07-19T11:00:00.5Z"),
            ("2025-07-19T11:02:00", "2025-07-19T11:02:00Z"),
            json!({"execution_time_ms": 1000, "pipeline_context": {"from": "flujo"}, "last_step_output": "done"}),
        ),
        flujo_run(
            "fs_3",
            "completed",
            ("2025-07-19T04:00:00-07:00", "2025-07-19T11:00:00Z"),
            ("2025-07-19T04:05:00-07:00", "2025-07-19T11:05:00Z"),
            json!({"execution_time_ms": 800, "pipeline_context": {"retried": true}, "total_steps": 5}),
        ),
    ];
    flujo.save(&db, &flujo_runs);
    expected.retain(|e| e.run_id != "fs_3");
    expected.extend(flujo_runs.iter().map(expected_state));

    // flowstate's next answers reflect both, exactly (same store, still open, and a fresh one).
    assert_flowstate_sees(&store, &expected, now).await;
    let replaced = store.load_state("fs_3").await.expect("load").expect("fs_3");
    assert_eq!(
        replaced.error_message, None,
        "INSERT OR REPLACE cleared the error"
    );
    assert_eq!(
        replaced.step_history,
        json!([]),
        "an omitted step_history is NULL, read as []"
    );
    assert_eq!(
        replaced.extras,
        RunExtras::default(),
        "flujo's INSERT OR REPLACE names its fifteen columns: the extra ones take their defaults"
    );
    let children = store
        .list_workflows(&ListQuery {
            background: Some(true),
            ..ListQuery::default()
        })
        .await
        .expect("list background tasks");
    let ids: Vec<&str> = children.runs.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(ids, ["fs_1"], "fs_1 keeps its extras; flujo's fs_3 has none");
    store.close().await;
    let store = open_at(&db, now).await;
    assert!(store.migration().is_noop(), "{:?}", store.migration());
    assert_flowstate_sees(&store, &expected, now).await;
    store.close().await;

    let seen = flujo.inspect(&db);
    assert_flujo_sees(&seen, &expected);
}

/// What flujo 0.4.35's `load_state` returns for a row of the oldest schema: its own initialisation fills
/// NULL `current_step_index` (0), `pipeline_context` ('{}') and `status` ('running') on every open, and
/// `pipeline_name` comes from `pipeline_id` (flowstate uses '' where that is NULL).
fn flujo_view_of_oldest_row(row: &Value) -> Value {
    let parse = |v: &Value| match v.as_str() {
        Some(text) => serde_json::from_str::<Value>(text).expect("fixture JSON"),
        None => Value::Null,
    };
    let context = match parse(&row["pipeline_context"]) {
        Value::Null => json!({}),
        other => other,
    };
    json!({
        "run_id": row["run_id"],
        "pipeline_id": row["pipeline_id"],
        "pipeline_name": if row["pipeline_id"].is_null() { json!("") } else { row["pipeline_id"].clone() },
        "pipeline_version": row["pipeline_version"],
        "current_step_index": if row["current_step_index"].is_null() { json!(0) } else { row["current_step_index"].clone() },
        "pipeline_context": context,
        "last_step_output": parse(&row["last_step_output"]),
        "step_history": [],
        "status": if row["status"].is_null() { json!("running") } else { row["status"].clone() },
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "total_steps": 0,
        "error_message": null,
        "execution_time_ms": null,
        "memory_usage_mb": null,
    })
}

/// flujo's state as the driver reports it, with datetimes as the ISO text flujo gives back.
fn with_iso_datetimes(state: &Value) -> Value {
    let mut s = state.clone();
    for field in ["created_at", "updated_at"] {
        s[field] = s[field]["iso"].clone();
    }
    s
}

/// c. flowstate migrates flujo's oldest 9-column file; flujo 0.4.35 then opens, lists, reads and writes it.
async fn oldest_schema_round_trip(flujo: &Flujo, fixture: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = copy_fixture(fixture, dir.path());
    let truth = fixture_truth(&fixture.replace(".db", ".json"));
    let rows = truth["before"]["rows"].as_array().expect("rows").clone();
    let now = Utc::now();

    let store = open_at(&db, now).await;
    assert_eq!(store.migration().from, SchemaKind::FlujoOldest, "{fixture}");
    let stats = store.get_workflow_stats().await.expect("stats");
    assert_eq!(stats.total_workflows, rows.len() as i64, "{fixture}");
    // flowstate keeps what it found: a NULL status stays NULL, 'pending' stays 'pending'.
    let kept = store
        .load_state("run_old_null_step_and_status")
        .await
        .expect("load")
        .expect("row kept");
    assert_eq!(
        kept.status,
        Status::Other(None),
        "{fixture}: flowstate keeps a NULL status"
    );
    let pending = store
        .load_state("run_old_bad_status")
        .await
        .expect("load")
        .expect("row kept");
    assert_eq!(pending.status, Status::Other(Some("pending".into())), "{fixture}");
    store.close().await;

    // flujo opens the migrated file: no rename, every row listed and loadable.
    let seen = flujo.inspect(&db);
    assert_eq!(seen["row_count"], json!(rows.len()), "{fixture}");
    let mut expected_counts: BTreeMap<String, i64> = BTreeMap::new();
    for row in &rows {
        let id = row["run_id"].as_str().expect("run id");
        let state = &seen["states"][id];
        assert!(
            state.is_object() && state.get("error").is_none(),
            "{fixture}: flujo's load_state({id}) gave {state}"
        );
        let want = flujo_view_of_oldest_row(row);
        assert_eq!(
            with_iso_datetimes(state),
            want,
            "{fixture}: flujo's load_state({id})"
        );
        *expected_counts
            .entry(want["status"].as_str().expect("status").to_string())
            .or_insert(0) += 1;
    }
    let counts: BTreeMap<String, i64> =
        serde_json::from_value(seen["stats"]["status_counts"].clone()).expect("status_counts");
    assert_eq!(counts, expected_counts, "{fixture}: flujo's status_counts");
    assert_eq!(seen["stats"]["average_execution_time_ms"], json!(0), "{fixture}");

    // Where the fixture records flujo's own migration of the same file, flujo's answers after flowstate's
    // migration are identical to them.
    if let Some(after) = truth.get("after_flujo_0_4_35") {
        for (id, want) in after["load_state"].as_object().expect("load_state") {
            assert_eq!(
                &with_iso_datetimes(&seen["states"][id]),
                want,
                "{fixture}: flujo's load_state({id}) after flowstate's migration vs after its own"
            );
        }
        assert_eq!(
            seen["list_run_ids"], after["list_workflows_run_ids"],
            "{fixture}: flujo's list order"
        );
        assert_eq!(
            seen["stats"]["status_counts"], after["get_workflow_stats"]["status_counts"],
            "{fixture}"
        );
    }

    // flujo writes a new run into the upgraded table.
    let extra = [flujo_run(
        "fj_after_flowstate",
        "completed",
        ("2026-11-26T09:00:00.250000", "2026-11-26T09:00:00.25Z"),
        ("2026-11-26T09:01:00+00:00", "2026-11-26T09:01:00Z"),
        json!({"execution_time_ms": 321}),
    )];
    flujo.save(&db, &extra);

    // The truth after flujo used the file: its initialisation rewrote the NULLs flowstate had kept (status
    // NULL → 'running', step index NULL → 0, context NULL → '{}'); flowstate reads that, and flujo's new run.
    let store = open_at(&db, now).await;
    assert!(store.migration().is_noop(), "{fixture}: {:?}", store.migration());
    // flujo's initialisation (UPDATEs of the NULLs) and its save went through the counters' triggers.
    let check = store.verify_counters().await.expect("verify_counters");
    assert!(check.is_exact(), "{fixture}: {:#?}", check.differences);
    let stats = store.get_workflow_stats().await.expect("stats");
    assert_eq!(stats.total_workflows, rows.len() as i64 + 1, "{fixture}");
    let mut want_counts = expected_counts.clone();
    *want_counts.entry("completed".into()).or_insert(0) += 1;
    assert_eq!(
        stats.status_counts, want_counts,
        "{fixture}: flowstate after flujo"
    );
    assert_close(
        stats.average_execution_time_ms,
        321.0,
        "average after flujo's save",
    );
    let rewritten = store
        .load_state("run_old_null_step_and_status")
        .await
        .expect("load")
        .expect("row");
    assert_eq!(
        rewritten.status,
        Status::Running,
        "{fixture}: flujo's init set NULL status to running"
    );
    assert_eq!(rewritten.current_step_index, 0, "{fixture}");
    let context = store
        .load_state("run_old_null_context")
        .await
        .expect("load")
        .expect("row");
    assert_eq!(
        context.pipeline_context,
        json!({}),
        "{fixture}: flujo's init set NULL context to {{}}"
    );
    assert_same_state(
        &store
            .load_state("fj_after_flowstate")
            .await
            .expect("load")
            .expect("row"),
        &expected_state(&extra[0]),
    );
    store.close().await;
}

#[tokio::test]
async fn flowstate_migrates_oldest_schema_then_flujo_opens_it() {
    let Some(flujo) = Flujo::from_env("flowstate_migrates_oldest_schema_then_flujo_opens_it") else {
        return;
    };
    oldest_schema_round_trip(&flujo, "flujo-oldest-schema.db").await;
}

/// flujo 0.4.35 alone renames this file aside as corrupt (its own migration fails on the NULL pipeline_id);
/// after flowstate's migration it opens it like any other.
#[tokio::test]
async fn flowstate_migrates_null_pipeline_id_file_then_flujo_opens_it() {
    let Some(flujo) = Flujo::from_env("flowstate_migrates_null_pipeline_id_file_then_flujo_opens_it") else {
        return;
    };
    let fixture = "flujo-oldest-schema-null-pipeline-id.db";
    oldest_schema_round_trip(&flujo, fixture).await;

    // The NULL pipeline_id row itself, as flujo reads it after flowstate's migration.
    let dir = tempfile::tempdir().expect("tempdir");
    let db = copy_fixture(fixture, dir.path());
    open_at(&db, Utc::now()).await.close().await;
    let seen = flujo.inspect(&db);
    let row = &seen["states"]["run_old_null_pipeline_id"];
    assert_eq!(row["pipeline_id"], Value::Null, "{row}");
    assert_eq!(row["pipeline_name"], json!(""), "{row}");
    assert_eq!(row["status"], json!("running"), "{row}");
}

/// The control for the test above: without flowstate, flujo 0.4.35 moves the file aside and starts empty.
/// This proves the rename detection in these tests works (and documents flujo's data-loss bug).
#[test]
fn control_flujo_alone_renames_null_pipeline_id_file_aside() {
    let Some(flujo) = Flujo::from_env("control_flujo_alone_renames_null_pipeline_id_file_aside") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = copy_fixture("flujo-oldest-schema-null-pipeline-id.db", dir.path());
    let out = flujo.run(&["inspect", path_str(&db)], None);
    let renamed = out["corrupt_files"].as_array().expect("corrupt_files");
    assert_eq!(
        renamed.len(),
        1,
        "flujo 0.4.35 is expected to rename this file aside: {out}"
    );
    assert_eq!(out["same_inode"], json!(false), "{out}");
    assert_eq!(
        out["row_count"],
        json!(0),
        "flujo started an empty database: {out}"
    );
}

/// The 300-run sample flujo wrote: after flowstate's migration, flujo's answers and flowstate's agree on every
/// run, and flowstate's time windows are the true ones.
#[tokio::test]
async fn flowstate_and_flujo_agree_on_the_300_run_sample() {
    let Some(flujo) = Flujo::from_env("flowstate_and_flujo_agree_on_the_300_run_sample") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = copy_fixture("flujo-0.4.35-sample-300.db", dir.path());
    let truth = fixture_truth("flujo-0.4.35-sample-300.json");
    let now = utc(truth["generated_now_utc"].as_str().expect("generated_now_utc"));

    let store = open_at(&db, now).await;
    assert_eq!(store.migration().from, SchemaKind::Flujo0435);
    let stats = store.get_workflow_stats().await.expect("stats");
    assert_eq!(stats.total_workflows, 300);
    assert_eq!(
        stats.recent_workflows_24h,
        truth["recent_created_24h"]["true_count_by_created_at"]
            .as_i64()
            .expect("count")
    );
    let counts: BTreeMap<String, i64> =
        serde_json::from_value(truth["counts_by_status"].clone()).expect("counts");
    assert_eq!(stats.status_counts, counts);
    assert_close(
        stats.average_execution_time_ms,
        truth["average_execution_time_ms"]["true"].as_f64().expect("avg"),
        "average",
    );
    let mut states = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_workflows(&ListQuery {
                limit: Some(100),
                cursor: cursor.take(),
                ..ListQuery::default()
            })
            .await
            .expect("list");
        for run in &page.runs {
            states.push(
                store
                    .load_state(&run.run_id)
                    .await
                    .expect("load")
                    .expect("listed run exists"),
            );
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(states.len(), 300);
    store.close().await;

    let seen = flujo.inspect(&db);
    assert_flujo_sees(&seen, &states);
    // flujo's recent_workflows_24h depends on the real clock (and carries its time-window bug); the rest of its
    // stats equal what flujo answered on the untouched file.
    let mut before = truth["flujo_get_workflow_stats"].clone();
    before["recent_workflows_24h"] = seen["stats"]["recent_workflows_24h"].clone();
    assert_eq!(
        seen["stats"], before,
        "flujo's stats after flowstate's migration vs before it"
    );
}

/// Issue 15: a file flowstate creates has `auto_vacuum` INCREMENTAL, so a cleanup gives its pages back to the
/// file system in steps; flujo 0.4.35 reads and writes such a file as any other, before and after.
#[tokio::test]
async fn flujo_reads_and_writes_an_incremental_file_around_a_cleanup_that_gives_space_back() {
    let Some(flujo) = Flujo::from_env("flujo_reads_and_writes_an_incremental_file_around_a_cleanup") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("incremental.db");
    let now = utc(NOW);
    let store = open_at(&db, now).await;
    let auto_vacuum = |db: PathBuf| async move {
        let mut conn = common::raw(&db).await;
        let mode: i64 = sqlx::query_scalar("PRAGMA auto_vacuum")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        mode
    };
    assert_eq!(auto_vacuum(db.clone()).await, 2, "a new file is incremental");
    let mut old = Vec::new();
    for i in 0..200 {
        let mut r = WorkflowState::new(format!("old-{i:03}"), "invoice-extraction");
        r.status = Status::Completed;
        r.updated_at = Some(now - Duration::days(90));
        r.pipeline_context = json!({ "blob": format!("{i:08}").repeat(1024) });
        old.push(r);
    }
    store.save_many(&old).await.expect("save_many");
    let flujo_runs = [flujo_run(
        "fj_before",
        "completed",
        ("2025-07-19T11:00:00", "2025-07-19T11:00:00Z"),
        ("2025-07-19T11:02:00", "2025-07-19T11:02:00Z"),
        json!({"execution_time_ms": 1000}),
    )];
    flujo.save(&db, &flujo_runs);
    assert_eq!(flujo.inspect(&db)["row_count"], json!(201));

    let done = store
        .cleanup_recorded(
            &flowstate_store::CleanupPolicy::older_than_days(30),
            "test",
            &json!({}),
            Some(200),
        )
        .await
        .expect("cleanup");
    assert_eq!(done.deleted, 200);
    assert!(done.bytes_returned > 200 * 8 * 1024 / 2, "{done:?}");
    store.close().await;

    // flujo reads what is left, and writes again.
    let seen = flujo.inspect(&db);
    assert_eq!(seen["row_count"], json!(1), "{seen}");
    let more = [flujo_run(
        "fj_after",
        "failed",
        ("2025-07-19T11:30:00", "2025-07-19T11:30:00Z"),
        ("2025-07-19T11:31:00", "2025-07-19T11:31:00Z"),
        json!({"error_message": "ValueError: x"}),
    )];
    flujo.save(&db, &more);
    assert_eq!(flujo.inspect(&db)["row_count"], json!(2));
    assert_eq!(
        auto_vacuum(db.clone()).await,
        2,
        "still incremental after flujo wrote"
    );
    let store = open_at(&db, now).await;
    let run = store.load_state("fj_after").await.unwrap().expect("flujo's run");
    assert_eq!(run.error_message.as_deref(), Some("ValueError: x"));
    store.close().await;
}
