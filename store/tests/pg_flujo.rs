//! The real flujo 0.6.11 `PostgresBackend` and flowstate on one PostgreSQL database (issue 14, point 2):
//!
//! - flujo makes the database and saves runs (every status, an unknown one, background tasks, odd JSON, unicode,
//!   NUL characters flujo strips); flowstate then opens (migrates) it and reads exactly what flujo's own
//!   `load_state` reads, counts what a recount and flujo's `get_workflow_stats` count, lists and finds the failed
//!   runs flujo lists and finds;
//! - flowstate makes the database and saves; flujo then starts on it (its migrations run on flowstate's schema)
//!   and loads identical values, lists and counts the same;
//! - flujo's own `INSERT ... ON CONFLICT`, `DELETE` and `cleanup_old_workflows` (which deletes by age whatever
//!   the status, running runs included) while flowstate has the database open: flowstate's counters stay exact.
//!
//! Needs `FLOWSTATE_TEST_PG` (a PostgreSQL server) and `FLOWSTATE_FLUJO_PG_PYTHON` (the flujo[postgres] 0.6.11
//! venv's python); prints `SKIPPED <why>` without either.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, SecondsFormat, SubsecRound, Utc};
use flowstate_store::{ListQuery, RunExtras, RunSummary, Status, Store, WorkflowState, WorkflowStats};
use flowstate_testkit::flujo_pg::FlujoPg;
use flowstate_testkit::pg;
use serde_json::{json, Value};
use sqlx::PgConnection;

/// A fresh database and the flujo driver on it, or `None` (SKIPPED printed).
async fn setup(test: &str) -> Option<(String, FlujoPg)> {
    let url = pg::fresh_database_or_skip(test).await?;
    match FlujoPg::spawn_or_skip(test, &url).await {
        Some(flujo) => Some((url, flujo)),
        None => {
            pg::drop_database(&url).await.unwrap();
            None
        }
    }
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Where two JSON values first differ (a path and both sides), or `None` when equal.
fn first_diff(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                let p = format!("{path}.{k}");
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => {
                        if let Some(d) = first_diff(u, v, &p) {
                            return Some(d);
                        }
                    }
                    (u, v) => return Some(format!("{p}: {u:?} vs {v:?}")),
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (u, v))| first_diff(u, v, &format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(format!("{path}: {a} vs {b}")),
    }
}

/// Asserts two JSON values are equal, naming the first place they differ.
#[track_caller]
fn assert_same(a: &Value, b: &Value, what: &str) {
    if let Some(d) = first_diff(a, b, "") {
        panic!("{what}: {d}");
    }
}

/// A timestamp flujo returned (`isoformat()`), to the microsecond, in one spelling.
fn canon_time(v: &Value) -> Value {
    match v.as_str() {
        Some(s) => Value::String(iso(DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("flujo's timestamp {s:?}: {e}"))
            .with_timezone(&Utc))),
        None => v.clone(),
    }
}

/// flujo's column is a `REAL`: flujo reads back the float4's exact value (`0.10000000149011612`), flowstate the
/// shortest decimal of the float4 (`0.1`); the same float4 either way.
fn canon_real(v: &Value) -> Value {
    match v.as_f64() {
        Some(x) => json!(f64::from(x as f32)),
        None => v.clone(),
    }
}

/// flujo's `load_state` answer with its timestamps in one spelling, its REAL as a float4.
fn canon_flujo(state: &Value) -> Value {
    let mut s = state.clone();
    for k in ["created_at", "updated_at"] {
        s[k] = canon_time(&state[k]);
    }
    s["memory_usage_mb"] = canon_real(&state["memory_usage_mb"]);
    s
}

/// What flujo's `load_state` returns for the run flowstate read: flujo reads a NULL context and metadata as `{}`
/// and a NULL history as `[]`.
fn flujo_view(w: &WorkflowState) -> Value {
    let or = |v: &Value, empty: Value| if v.is_null() { empty } else { v.clone() };
    json!({
        "run_id": w.run_id,
        "pipeline_id": w.pipeline_id,
        "pipeline_name": w.pipeline_name,
        "pipeline_version": w.pipeline_version,
        "current_step_index": w.current_step_index,
        "pipeline_context": or(&w.pipeline_context, json!({})),
        "last_step_output": w.last_step_output.clone().unwrap_or(Value::Null),
        "step_history": or(&w.step_history, json!([])),
        "status": w.status.as_str(),
        "created_at": w.created_at.map(iso),
        "updated_at": w.updated_at.map(iso),
        "total_steps": w.total_steps,
        "error_message": w.error_message,
        "execution_time_ms": w.execution_time_ms,
        "memory_usage_mb": canon_real(&json!(w.memory_usage_mb)),
        "metadata": w.extras.metadata.clone().unwrap_or_else(|| json!({})),
        "is_background_task": w.extras.is_background_task,
        "parent_run_id": w.extras.parent_run_id,
        "task_id": w.extras.task_id,
        "background_error": w.extras.background_error,
    })
}

/// JSON values no ordinary test writes: deep and wide, every number kind, unicode of every sort, keys that are
/// SQL or JSON path syntax.
fn odd_json() -> Value {
    let mut deep = json!("bottom");
    for i in 0..60 {
        deep = if i % 2 == 0 {
            json!([deep])
        } else {
            json!({ "k": deep })
        };
    }
    json!({
        "ints": [0, -1, i64::MAX, i64::MIN, u64::MAX, 9_007_199_254_740_993_i64],
        "floats": [0.1, -2.5e-7, 1e308, 5e-324, 1.7976931348623157e308, 123456.789, 1.0],
        "text": ["", " ", "é", "日本語", "😀👩‍👩‍👧", "\u{202E}rtl\u{202C}", "a\u{0301}", "\u{2028}\u{2029}", "\"'\\/",
                 "\t\n\r\u{1}\u{1f}", "' OR 1=1 --", "{\"not\": \"json\"}"],
        "keys": {"": 1, "a.b": 2, "$[0]": 3, "'; DROP TABLE workflow_state; --": 4, "ключ": 5, "😀": 6},
        "bools": [true, false, null],
        "empty": [{}, [], [[]], [{}]],
        "deep": deep,
        "wide": (0..500).map(|i| json!({ "i": i, "s": format!("item {i}") })).collect::<Vec<_>>(),
    })
}

/// The runs flujo saves: every status (and one no flowstate writes), background tasks, odd values.
fn flujo_runs(now: DateTime<Utc>) -> Vec<(String, Value)> {
    let statuses = ["running", "paused", "completed", "failed", "cancelled"];
    let mut runs = Vec::new();
    for i in 0..40i64 {
        let status = statuses[i as usize % statuses.len()];
        // Spread over 4 days, never within 2 minutes of the 24-hour edge (flujo's NOW() and flowstate's clock
        // read a moment apart).
        let created = now - Duration::minutes(37 * 60 + 13) * i as i32 / 10 - Duration::seconds(5);
        let created = if (created - (now - Duration::hours(24))).num_minutes().abs() < 2 {
            created - Duration::minutes(5)
        } else {
            created
        };
        let updated = created + Duration::milliseconds(1234 * i + 1) + Duration::microseconds(i);
        let mut s = json!({
            "pipeline_id": format!("pipe-{}", i % 4),
            "pipeline_name": format!("Pipeline {} — «{}»", i % 4, "名前"),
            "pipeline_version": format!("{}.{}", i % 3, i),
            "current_step_index": i % 7,
            "pipeline_context": {"i": i, "user": format!("u{i}"), "nested": {"list": [i, i * 2]}},
            "last_step_output": if i % 3 == 0 { Value::Null } else { json!({"out": i, "ok": i % 2 == 0}) },
            "step_history": (0..(i % 4)).map(|k| json!({"name": format!("step {k}"), "ok": true})).collect::<Vec<_>>(),
            "status": status,
            "created_at": created.to_rfc3339_opts(SecondsFormat::Micros, false),
            "updated_at": updated.to_rfc3339_opts(SecondsFormat::Micros, true),
            "total_steps": 7,
            "error_message": if status == "failed" { json!(format!("boom {i}: ValueError('x')")) } else { Value::Null },
            "execution_time_ms": if i % 5 == 4 { Value::Null } else { json!(i * 1009 + 17) },
            "memory_usage_mb": if i % 6 == 5 { Value::Null } else { json!(i as f64 * 0.5 + 0.25) },
        });
        if i % 4 == 1 {
            s["is_background_task"] = json!(true);
            s["parent_run_id"] = json!(format!("flujo-{}", i - 1));
            s["task_id"] = json!(format!("task-{i}"));
            s["metadata"] = json!({"kind": "bg", "attempt": i % 3, "tags": ["a", "b"]});
            if status == "failed" || i % 8 == 1 {
                s["background_error"] = json!(format!("background task {i} failed: ✗"));
            }
        }
        runs.push((format!("flujo-{i}"), s));
    }
    // Odd values: odd JSON everywhere, unicode ids, an unknown status, NUL characters (flujo strips them), flujo's
    // optional columns left out (their defaults), timestamps with no fraction and in other zones.
    let odd = odd_json();
    runs.push((
        "odd-json-🚀-ид".into(),
        json!({
            "pipeline_id": "pipe-🚀", "pipeline_name": "ünïcödé ⟨name⟩", "pipeline_version": "v\u{0}1",
            "current_step_index": 2_147_483_647, "pipeline_context": odd, "last_step_output": odd,
            "step_history": [odd, null, "text", 3], "status": "completed",
            "created_at": (now - Duration::hours(2)).format("%Y-%m-%dT%H:%M:%S+00:00").to_string(),
            "updated_at": (now - Duration::hours(1)).with_timezone(&chrono::FixedOffset::east_opt(5 * 3600 + 1800).unwrap())
                .to_rfc3339_opts(SecondsFormat::Micros, false),
            "total_steps": -3, "error_message": "nul\u{0}inside and 🙂", "execution_time_ms": 2_147_483_647,
            "memory_usage_mb": 1.5e-30, "metadata": {"odd": odd, "nul\u{0}key": "v\u{0}al"},
            "is_background_task": false, "background_error": "",
        }),
    ));
    runs.push((
        "unknown-status".into(),
        json!({"pipeline_id": "pipe-0", "pipeline_name": "P", "pipeline_version": "1", "current_step_index": 0,
               "status": "waiting_for_human", "execution_time_ms": 0,
               "created_at": iso(now - Duration::hours(30)), "updated_at": iso(now - Duration::hours(29))}),
    ));
    runs.push((
        "defaults-only".into(),
        json!({"pipeline_id": "pipe-1", "pipeline_name": "P", "pipeline_version": "1", "current_step_index": 0}),
    ));
    runs.push((
        "scalar-json".into(),
        json!({"pipeline_id": "pipe-2", "pipeline_name": "P", "pipeline_version": "1", "current_step_index": 1,
               "pipeline_context": [1, 2, 3], "last_step_output": "just a string", "step_history": {"not": "a list"},
               "metadata": 42, "status": "failed", "error_message": "x".repeat(70_000),
               "created_at": iso(now - Duration::minutes(90)), "updated_at": iso(now - Duration::minutes(30))}),
    ));
    runs
}

/// `SELECT status, count(*) ... GROUP BY status`, the total, the 24-hour count before `now`, the mean time.
async fn recount(conn: &mut PgConnection, now: DateTime<Utc>) -> WorkflowStats {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM workflow_state GROUP BY status")
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    let (recent, avg): (i64, Option<f64>) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE created_at >= $1), avg(execution_time_ms)::float8 FROM workflow_state",
    )
    .bind(now - Duration::hours(24))
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    WorkflowStats {
        total_workflows: rows.iter().map(|r| r.1).sum(),
        recent_workflows_24h: recent,
        status_counts: rows.into_iter().collect(),
        average_execution_time_ms: avg.unwrap_or(0.0),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// flowstate's figures equal a recount, its counters are exact, and flujo's own `get_workflow_stats` agrees on
/// what both count the same way.
async fn assert_figures(store: &Store, flujo: &mut FlujoPg, conn: &mut PgConnection, what: &str) {
    let check = store.verify_counters().await.unwrap();
    assert!(
        check.is_exact(),
        "{what}: counters differ from a recount: {:?}",
        check.differences
    );
    assert_failure_table_exact(conn, what).await;
    let ours = store.get_workflow_stats().await.unwrap();
    let counted = recount(conn, store.now()).await;
    assert_eq!(ours.total_workflows, counted.total_workflows, "{what}");
    assert_eq!(ours.status_counts, counted.status_counts, "{what}");
    assert_eq!(ours.recent_workflows_24h, counted.recent_workflows_24h, "{what}");
    assert!(
        close(ours.average_execution_time_ms, counted.average_execution_time_ms),
        "{what}: {} vs {}",
        ours.average_execution_time_ms,
        counted.average_execution_time_ms
    );
    let theirs = flujo.stats().await.unwrap();
    assert_eq!(theirs["total_workflows"], json!(ours.total_workflows), "{what}");
    let their_counts: BTreeMap<String, i64> =
        serde_json::from_value(theirs["status_counts"].clone()).unwrap();
    assert_eq!(their_counts, ours.status_counts, "{what}");
    // flujo counts the last 24 hours before the server's NOW(); flowstate before its clock. The runs are never
    // near the edge, so the two agree here (a store with another clock, or a server whose clock is off, would
    // not: flowstate's figure is the one its caller's clock defines).
    assert_eq!(
        theirs["recent_workflows_24h"],
        json!(ours.recent_workflows_24h),
        "{what}"
    );
    assert!(
        close(
            theirs["average_execution_time_ms"].as_f64().unwrap(),
            ours.average_execution_time_ms
        ),
        "{what}: flujo's mean {} vs {}",
        theirs["average_execution_time_ms"],
        ours.average_execution_time_ms
    );
    // Background tasks by status: flujo's breakdown equals flowstate's list of background tasks.
    let their_bg: BTreeMap<String, i64> =
        serde_json::from_value(theirs["background_status_counts"].clone()).unwrap();
    let mut our_bg = BTreeMap::new();
    for run in all_runs(
        store,
        ListQuery {
            background: Some(true),
            ..Default::default()
        },
    )
    .await
    {
        *our_bg.entry(run.status.as_str().to_string()).or_insert(0) += 1;
    }
    assert_eq!(their_bg, our_bg, "{what}: background tasks by status");
}

/// `flowstate_failure` holds exactly the failed runs (run id, pipeline, last update, the error message's first
/// 1,000 characters), compared with the rows themselves in plain SQL.
async fn assert_failure_table_exact(conn: &mut PgConnection, what: &str) {
    type Failure = (String, String, DateTime<Utc>, Option<String>);
    let kept: Vec<Failure> = sqlx::query_as(
        "SELECT run_id, pipeline_id, updated_at, error_head FROM flowstate_failure ORDER BY run_id COLLATE \"C\"",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let failed: Vec<Failure> = sqlx::query_as(
        "SELECT run_id, pipeline_id, updated_at, substr(error_message, 1, 1000) FROM workflow_state \
         WHERE status = 'failed' ORDER BY run_id COLLATE \"C\"",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    assert_eq!(kept, failed, "{what}: flowstate_failure against the failed rows");
}

/// Every run a list query matches, following the cursors.
async fn all_runs(store: &Store, mut query: ListQuery) -> Vec<RunSummary> {
    query.limit = Some(ListQuery::MAX_LIMIT);
    let mut out = Vec::new();
    loop {
        let page = store.list_workflows(&query).await.unwrap();
        out.extend(page.runs);
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => return out,
        }
    }
}

/// flujo's `list_workflows` and flowstate's list name the same runs in the same order of creation (flujo
/// leaves ties unordered: compared as the sequence of creation times and the set of ids).
async fn assert_lists_agree(store: &Store, flujo: &mut FlujoPg) {
    let mut cases: Vec<(Option<&str>, Option<&str>)> = vec![(None, None)];
    for s in [
        "running",
        "paused",
        "completed",
        "failed",
        "cancelled",
        "waiting_for_human",
    ] {
        cases.push((Some(s), None));
    }
    for p in ["pipe-0", "pipe-3", "pipe-🚀", "no-such-pipe"] {
        cases.push((None, Some(p)));
    }
    cases.push((Some("failed"), Some("pipe-2")));
    for (status, pipeline) in cases {
        let theirs = flujo.list(status, pipeline, None, 0).await.unwrap();
        let query = ListQuery {
            statuses: status
                .map(|s| vec![Status::from_stored(Some(s.to_string()))])
                .unwrap_or_default(),
            pipeline_id: pipeline.map(str::to_string),
            ..Default::default()
        };
        let ours = all_runs(store, query).await;
        let their_ids: BTreeSet<String> = theirs
            .iter()
            .map(|r| r["run_id"].as_str().unwrap().to_string())
            .collect();
        let our_ids: BTreeSet<String> = ours.iter().map(|r| r.run_id.clone()).collect();
        assert_eq!(their_ids, our_ids, "list status={status:?} pipeline={pipeline:?}");
        let their_times: Vec<Value> = theirs.iter().map(|r| canon_time(&r["created_at"])).collect();
        let our_times: Vec<Value> = ours.iter().map(|r| json!(r.created_at.map(iso))).collect();
        assert_eq!(
            their_times, our_times,
            "order of status={status:?} pipeline={pipeline:?}"
        );
        // The columns both lists have, run by run.
        let by_id: BTreeMap<&str, &RunSummary> = ours.iter().map(|r| (r.run_id.as_str(), r)).collect();
        for t in &theirs {
            let o = by_id[t["run_id"].as_str().unwrap()];
            assert_eq!(t["status"], json!(o.status.as_str()));
            assert_eq!(t["pipeline_name"], json!(o.pipeline_name));
            assert_eq!(t["current_step_index"], json!(o.current_step_index));
            assert_eq!(t["total_steps"], json!(o.total_steps));
            assert_eq!(t["execution_time_ms"], json!(o.execution_time_ms));
            assert_eq!(
                canon_real(&t["memory_usage_mb"]),
                canon_real(&json!(o.memory_usage_mb))
            );
            assert_eq!(canon_time(&t["updated_at"]), json!(o.updated_at.map(iso)));
        }
    }
    // Failed runs of the last 24 hours (by last update), newest first.
    let theirs = flujo.failed(24).await.unwrap();
    let ours = store.get_failed_workflows(24, 1000).await.unwrap();
    let their_ids: Vec<&str> = theirs.iter().map(|r| r["run_id"].as_str().unwrap()).collect();
    let our_ids: Vec<&str> = ours.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(their_ids, our_ids, "failed runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flowstate_reads_exactly_what_the_real_flujo_saved() {
    let Some((url, mut flujo)) = setup("pg_flujo_saves").await else {
        return;
    };
    assert_eq!(flujo.version()["flujo"], "0.6.11");
    let now = Utc::now().trunc_subsecs(6);
    let runs = flujo_runs(now);
    for (id, state) in &runs {
        flujo
            .save(id, state)
            .await
            .unwrap_or_else(|e| panic!("flujo saving {id}: {e}"));
    }
    // flujo made the database: its table, its other tables, its schema versions.
    let mut conn = pg::connect(&url).await.unwrap();
    let flujo_tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename IN \
         ('workflow_state', 'runs', 'steps', 'traces', 'spans', 'system_state', 'flujo_schema_versions')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(flujo_tables, 7);

    let store = Store::open(&url).await.expect("flowstate opens flujo's database");
    assert!(
        !store.migration().is_noop(),
        "the first open adds flowstate's part"
    );
    for (id, input) in &runs {
        let theirs = flujo.load(id).await.unwrap().expect("flujo finds its run");
        let ours = store
            .load_state(id)
            .await
            .unwrap()
            .expect("flowstate finds flujo's run");
        assert_same(
            &flujo_view(&ours),
            &canon_flujo(&theirs),
            &format!("run {id}: flowstate's and flujo's load_state"),
        );
        // And what flujo was given, after flujo's own changes (NUL characters stripped, defaults).
        let strip = |v: &Value| -> Value {
            serde_json::from_str(&serde_json::to_string(v).unwrap().replace("\\u0000", "")).unwrap()
        };
        for k in ["pipeline_context", "last_step_output", "step_history"] {
            let expected = strip(&input[k]);
            let got = match k {
                "pipeline_context" => ours.pipeline_context.clone(),
                "last_step_output" => ours.last_step_output.clone().unwrap_or(Value::Null),
                _ => ours.step_history.clone(),
            };
            if !input[k].is_null() {
                assert_eq!(got, expected, "run {id}: {k}");
            }
        }
        assert_eq!(
            ours.extras.metadata.clone().unwrap_or(Value::Null),
            strip(&input["metadata"]),
            "{id}"
        );
        assert_eq!(
            ours.status.as_str(),
            input["status"].as_str().unwrap_or("running"),
            "{id}"
        );
        assert_eq!(
            ours.pipeline_version,
            input["pipeline_version"].as_str().unwrap().replace('\0', "")
        );
        if let Some(c) = input["created_at"].as_str() {
            let given = DateTime::parse_from_rfc3339(c).unwrap().with_timezone(&Utc);
            assert_eq!(ours.created_at, Some(given), "{id}: created_at");
        }
        assert_eq!(
            ours.error_message.as_deref(),
            input["error_message"]
                .as_str()
                .map(|e| e.replace('\0', ""))
                .as_deref()
        );
        assert_eq!(
            ours.extras.is_background_task,
            input["is_background_task"] == json!(true)
        );
        assert_eq!(
            ours.extras.parent_run_id.as_deref(),
            input["parent_run_id"].as_str()
        );
        assert_eq!(
            ours.extras.background_error.as_deref(),
            input["background_error"].as_str()
        );
    }
    assert_eq!(
        store.get_workflow_stats().await.unwrap().total_workflows,
        runs.len() as i64
    );
    assert_figures(&store, &mut flujo, &mut conn, "after flujo's saves").await;
    assert_lists_agree(&store, &mut flujo).await;
    // The background tasks of one run, as flowstate filters them.
    let children = all_runs(
        &store,
        ListQuery {
            parent_run_id: Some("flujo-4".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        children.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(),
        ["flujo-5"]
    );
    // flujo goes on saving after flowstate's migration: new runs and updates are read and counted.
    let mut extra = runs[3].1.clone();
    extra["status"] = json!("completed");
    extra["error_message"] = Value::Null;
    flujo.save("after-migration", &extra).await.unwrap();
    flujo.save("flujo-0", &extra).await.unwrap();
    assert_eq!(
        store.load_state("after-migration").await.unwrap().unwrap().status,
        Status::Completed
    );
    assert_figures(
        &store,
        &mut flujo,
        &mut conn,
        "after flujo's saves on the migrated database",
    )
    .await;
    store.close().await;
    flujo.shutdown().await.unwrap();
    pg::drop_database(&url).await.unwrap();
}

/// Runs as flowstate saves them: every status, background tasks, odd JSON, SQL NULLs where flowstate has them.
fn flowstate_runs(now: DateTime<Utc>) -> Vec<WorkflowState> {
    let statuses = [
        Status::Running,
        Status::Paused,
        Status::Completed,
        Status::Failed,
        Status::Cancelled,
    ];
    let mut out = Vec::new();
    for i in 0..30i64 {
        let mut s = WorkflowState::new(format!("fs-{i}"), format!("pipe-{}", i % 3));
        s.pipeline_name = format!("Pipe {} «ß»", i % 3);
        s.pipeline_version = format!("2.{i}");
        s.current_step_index = i % 5;
        s.total_steps = 5;
        s.status = statuses[i as usize % 5].clone();
        s.pipeline_context = json!({"i": i, "text": "ünï 😀", "list": [1, 2.5, null]});
        s.last_step_output = match i % 3 {
            0 => None,
            1 => Some(json!({"out": i})),
            _ => Some(json!("a string output")),
        };
        s.step_history = json!((0..(i % 3)).map(|k| json!({"step": k})).collect::<Vec<_>>());
        s.created_at = Some(now - Duration::minutes(97 * i + 3) + Duration::microseconds(i));
        s.updated_at = Some(now - Duration::minutes(97 * i) + Duration::microseconds(7 * i));
        s.error_message = (s.status == Status::Failed).then(|| format!("failure {i} — ✗"));
        s.execution_time_ms = (i % 4 != 3).then_some(i * 333 + 1);
        s.memory_usage_mb = (i % 5 != 2).then_some(i as f64 * 1.25);
        if i % 3 == 2 {
            s.extras = RunExtras {
                metadata: Some(json!({"bg": true, "n": i})),
                is_background_task: true,
                parent_run_id: Some(format!("fs-{}", i - 1)),
                task_id: Some(format!("t{i}")),
                background_error: (i % 2 == 0).then(|| "bg failed".to_string()),
            };
        } else if i % 3 == 1 {
            s.extras.metadata = Some(json!({"plain": i}));
        }
        out.push(s);
    }
    let mut odd = WorkflowState::new("odd-🚀", "pipe-🚀");
    odd.pipeline_context = odd_json();
    odd.last_step_output = Some(odd_json());
    odd.step_history = json!([odd_json()]);
    odd.extras.metadata = Some(odd_json());
    odd.status = Status::Completed;
    odd.created_at = Some(now - Duration::hours(3));
    odd.updated_at = Some(now - Duration::hours(2));
    // flujo's column is a REAL: 0.123456789 is kept as the nearest float4.
    odd.memory_usage_mb = Some(0.123456789);
    odd.execution_time_ms = Some(i64::from(i32::MAX));
    out.push(odd);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_flujo_starts_on_a_database_flowstate_made_and_loads_identical_values() {
    let Some(url) = pg::fresh_database_or_skip("pg_flujo_after").await else {
        return;
    };
    let now = Utc::now().trunc_subsecs(6);
    let store = Store::open(&url).await.expect("flowstate makes the database");
    let runs = flowstate_runs(now);
    store.save_many(&runs[..10]).await.unwrap();
    for s in &runs[10..] {
        store.save_state(s).await.unwrap();
    }
    // flujo starts now: its migrations (its other tables and indexes) run on flowstate's schema.
    let Some(mut flujo) = FlujoPg::spawn_or_skip("pg_flujo_after", &url).await else {
        store.close().await;
        pg::drop_database(&url).await.unwrap();
        return;
    };
    let mut conn = pg::connect(&url).await.unwrap();
    for s in &runs {
        let theirs = flujo
            .load(&s.run_id)
            .await
            .unwrap()
            .expect("flujo finds flowstate's run");
        let ours = store.load_state(&s.run_id).await.unwrap().unwrap();
        let mut expected = s.clone();
        // The REAL keeps a float4; flowstate reads its shortest decimal (Rust's f32 Display spelling).
        expected.memory_usage_mb = s.memory_usage_mb.map(|m| (m as f32).to_string().parse().unwrap());
        assert_same(
            &serde_json::to_value(&ours).unwrap(),
            &serde_json::to_value(&expected).unwrap(),
            "flowstate loads back what it saved",
        );
        assert_eq!(ours, expected);
        assert_same(
            &canon_flujo(&theirs),
            &flujo_view(s),
            &format!("run {}: flujo's load_state", s.run_id),
        );
    }
    let versions: Vec<i32> = sqlx::query_scalar("SELECT version FROM flujo_schema_versions ORDER BY 1")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        versions,
        [1, 2, 3, 4, 5],
        "flujo's migrations on flowstate's schema"
    );
    assert_figures(&store, &mut flujo, &mut conn, "flowstate's saves, flujo reading").await;
    assert_lists_agree(&store, &mut flujo).await;
    // flowstate opened again after flujo's migrations: nothing to do, still exact.
    let again = Store::open(&url).await.unwrap();
    assert!(again.migration().is_noop(), "{:?}", again.migration());
    assert!(again.verify_counters().await.unwrap().is_exact());
    again.close().await;
    store.close().await;
    flujo.shutdown().await.unwrap();
    pg::drop_database(&url).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flujos_own_upserts_deletes_and_cleanup_keep_flowstates_figures_exact() {
    let Some((url, mut flujo)) = setup("pg_flujo_writes").await else {
        return;
    };
    let now = Utc::now().trunc_subsecs(6);
    // flujo's database with runs, then flowstate opens it and keeps it open while flujo writes.
    let runs = flujo_runs(now);
    for (id, state) in &runs[..20] {
        flujo.save(id, state).await.unwrap();
    }
    let store = Store::open(&url).await.unwrap();
    let mut conn = pg::connect(&url).await.unwrap();
    assert_figures(&store, &mut flujo, &mut conn, "opened").await;
    for (id, state) in &runs[20..] {
        flujo.save(id, state).await.unwrap();
    }
    assert_figures(&store, &mut flujo, &mut conn, "new runs by flujo").await;

    // flujo's INSERT ... ON CONFLICT on existing runs: every status change, and back.
    let cycle = [
        "completed",
        "failed",
        "running",
        "cancelled",
        "paused",
        "waiting_for_human",
        "completed",
    ];
    for (round, status) in cycle.iter().enumerate() {
        for (id, state) in runs.iter().skip(round).step_by(3) {
            let mut s = state.clone();
            s["status"] = json!(status);
            s["execution_time_ms"] = json!(round * 100 + 7);
            s["updated_at"] = json!(iso(now - Duration::minutes(round as i64)));
            flujo.save(id, &s).await.unwrap();
        }
        // flowstate's own saves in between, on the same runs.
        let mut ours = store.load_state(&runs[round].0).await.unwrap().unwrap();
        ours.status = Status::Running;
        store.save_state(&ours).await.unwrap();
        assert_figures(
            &store,
            &mut flujo,
            &mut conn,
            &format!("flujo's upserts to {status}"),
        )
        .await;
    }
    // flujo's DELETE of single runs (and of one that is not there).
    for id in ["flujo-3", "flujo-4", "odd-json-🚀-ид", "never-saved"] {
        flujo.delete(id).await.unwrap();
        assert!(store.load_state(id).await.unwrap().is_none());
    }
    assert_figures(&store, &mut flujo, &mut conn, "flujo's deletes").await;

    // flujo's cleanup deletes by creation time whatever the status: running runs go too. flowstate's own
    // cleanup (terminal runs only, by default) would have kept them.
    for (i, (_, state)) in runs.iter().enumerate().take(5) {
        let mut s = state.clone();
        s["status"] = json!(if i == 4 { "paused" } else { "running" });
        s["created_at"] = json!(iso(now - Duration::days(5) - Duration::hours(i as i64)));
        s["updated_at"] = json!(iso(now - Duration::minutes(1)));
        flujo.save(&format!("old-live-{i}"), &s).await.unwrap();
    }
    let days = 2.0;
    let cutoff = now - Duration::days(2);
    let near_edge: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM workflow_state WHERE created_at BETWEEN $1 - interval '5 minutes' AND $1 + interval '5 minutes'",
    )
    .bind(cutoff)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(near_edge, 0, "no run should be created near the cleanup's edge");
    let doomed: Vec<(String, String)> =
        sqlx::query_as("SELECT run_id, status FROM workflow_state WHERE created_at < $1 ORDER BY run_id")
            .bind(cutoff)
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let running_doomed = doomed.iter().filter(|(_, s)| s == "running").count();
    assert!(
        running_doomed >= 4,
        "the cleanup should meet running runs: {doomed:?}"
    );
    // flowstate's own cleanup policy (terminal runs idle for 2 days) would keep every one of them.
    let preview = store
        .preview_cleanup(&flowstate_store::CleanupPolicy::older_than_days(2))
        .await
        .unwrap();
    assert!(!preview.by_status.contains_key("running"), "{preview:?}");
    let before = store.get_workflow_stats().await.unwrap();
    let reported = flujo.cleanup(days).await.unwrap();
    assert_eq!(reported as usize, doomed.len(), "flujo's count");
    let after = store.get_workflow_stats().await.unwrap();
    assert_eq!(after.total_workflows, before.total_workflows - reported);
    let running_gone = doomed.iter().filter(|(_, s)| s == "running").count() as i64;
    assert_eq!(
        after.status_counts.get("running").copied().unwrap_or(0),
        before.status_counts.get("running").copied().unwrap_or(0) - running_gone,
        "running runs flujo's cleanup deleted"
    );
    for (id, _) in &doomed {
        assert!(
            store.load_state(id).await.unwrap().is_none(),
            "{id} survived flujo's cleanup"
        );
    }
    assert_figures(&store, &mut flujo, &mut conn, "flujo's cleanup").await;
    assert_lists_agree(&store, &mut flujo).await;
    store.close().await;
    flujo.shutdown().await.unwrap();
    pg::drop_database(&url).await.unwrap();
}
