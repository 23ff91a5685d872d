//! The overview counters kept by triggers (`flowstate_store::counters`): exact whoever writes the table.
//!
//! Every figure the counters serve is compared with a full `GROUP BY` recount of `workflow_state` (the queries the
//! store ran before it had counters), after random mixes of flowstate's own writes (saves, batches, deletes,
//! cleanups) and a plain SQLite client writing the file directly: Python's `sqlite3` module in a child process,
//! doing flujo's `INSERT OR REPLACE` with `recursive_triggers` off and on, UPSERTs, `INSERT OR IGNORE`, `UPDATE`
//! (of several rows, of the run id, `OR REPLACE`), `DELETE`, transactions rolled back, and statements that fail.
//! Also: the migration from schema 1 and from flujo's files fills the counters exactly, read-only opens of files
//! without counters count rows as before, and a damaged counter is reported and rebuilt.
//!
//! `python3` must be on the PATH (or named by `FLOWSTATE_PYTHON3`). `FLOWSTATE_LONG_TESTS=1` runs more rounds.

mod common;
mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use chrono::{DateTime, Duration, Utc};
use common::backends::OtherRow;
use common::*;
use flowstate_store::time::instant_sql;
use flowstate_store::{
    Bucket, CleanupPolicy, FixedClock, ListQuery, SchemaKind, Status, Store, StoreOptions, WorkflowState,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sqlx::SqliteConnection;

// ---------------------------------------------------------------------------------------------------------
// Another process writing the file: Python's sqlite3
// ---------------------------------------------------------------------------------------------------------

/// Applies batches of operations with Python's own SQLite, on a connection of its own. Each batch sets
/// `recursive_triggers`, then runs its operations in autocommit, in one transaction, or in one transaction rolled
/// back. An operation that breaks a constraint is counted in `errors` (SQLite rolls that statement back).
const PYTHON_WRITER: &str = r#"
import json, sqlite3, sys
COLS = ["run_id", "pipeline_id", "pipeline_name", "pipeline_version", "current_step_index", "pipeline_context",
        "last_step_output", "step_history", "status", "created_at", "updated_at", "total_steps", "error_message",
        "execution_time_ms", "memory_usage_mb"]
cols = ", ".join(COLS)
ph = ", ".join("?" * len(COLS))
conn = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
def vals(r):
    return [r.get(c) for c in COLS]
def run(op):
    k = op["op"]
    if k == "replace":  # flujo 0.4.35's save_state
        conn.execute(f"INSERT OR REPLACE INTO workflow_state ({cols}) VALUES ({ph})", vals(op["row"]))
    elif k == "replace_pair":
        conn.execute(f"INSERT OR REPLACE INTO workflow_state ({cols}) VALUES ({ph}), ({ph})",
                     vals(op["row"]) + vals(op["row2"]))
    elif k == "insert":
        conn.execute(f"INSERT INTO workflow_state ({cols}) VALUES ({ph})", vals(op["row"]))
    elif k == "ignore":
        conn.execute(f"INSERT OR IGNORE INTO workflow_state ({cols}) VALUES ({ph})", vals(op["row"]))
    elif k == "upsert":
        sets = ", ".join(f"{c} = excluded.{c}" for c in COLS[1:])
        conn.execute(f"INSERT INTO workflow_state ({cols}) VALUES ({ph}) ON CONFLICT(run_id) DO UPDATE SET {sets}",
                     vals(op["row"]))
    elif k == "upsert_nothing":
        conn.execute(f"INSERT INTO workflow_state ({cols}) VALUES ({ph}) ON CONFLICT(run_id) DO NOTHING",
                     vals(op["row"]))
    elif k == "upsert_where":
        conn.execute(f"INSERT INTO workflow_state ({cols}) VALUES ({ph}) ON CONFLICT(run_id) DO UPDATE SET "
                     "status = excluded.status WHERE excluded.status = 'cancelled'", vals(op["row"]))
    elif k == "update":
        r = op["row"]
        conn.execute("UPDATE workflow_state SET status = ?, pipeline_id = ?, updated_at = ?, execution_time_ms = ? "
                     "WHERE run_id = ?", [r["status"], r["pipeline_id"], r["updated_at"], r["execution_time_ms"],
                                          r["run_id"]])
    elif k == "update_many":
        conn.execute("UPDATE workflow_state SET status = ?, updated_at = ? WHERE pipeline_id = ?",
                     [op["status"], op["updated_at"], op["pipeline_id"]])
    elif k == "rename":
        conn.execute(f"UPDATE {op['or']} workflow_state SET run_id = ? WHERE run_id = ?", [op["to"], op["from"]])
    elif k == "delete":
        conn.execute("DELETE FROM workflow_state WHERE run_id = ?", [op["run_id"]])
    elif k == "delete_many":
        conn.execute("DELETE FROM workflow_state WHERE pipeline_id = ?", [op["pipeline_id"]])
    else:
        raise ValueError(k)
done = errors = 0
for batch in json.load(sys.stdin):
    conn.execute("PRAGMA recursive_triggers = " + ("ON" if batch["recursive"] else "OFF"))
    mode = batch["mode"]
    if mode != "autocommit":
        conn.execute("BEGIN IMMEDIATE")
    for op in batch["ops"]:
        try:
            run(op)
            done += 1
        except sqlite3.IntegrityError:
            errors += 1
    if mode == "commit":
        conn.execute("COMMIT")
    elif mode == "rollback":
        conn.execute("ROLLBACK")
conn.close()
print(json.dumps({"done": done, "errors": errors}))
"#;

fn python() -> String {
    std::env::var("FLOWSTATE_PYTHON3")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".into())
}

/// Runs `batches` with Python's sqlite3 on `db`; returns (operations done, operations refused).
#[track_caller]
fn python_writes(db: &Path, batches: &Value) -> (u64, u64) {
    let mut child = Command::new(python())
        .arg("-c")
        .arg(PYTHON_WRITER)
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {} (python3 is needed): {e}", python()));
    let input = batches.to_string();
    let mut pipe = child.stdin.take().expect("piped stdin");
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().expect("waiting for python");
    let _ = writer.join();
    assert!(
        out.status.success(),
        "the Python writer failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("the writer's JSON report");
    (
        report["done"].as_u64().unwrap(),
        report["errors"].as_u64().unwrap(),
    )
}

fn batch(recursive: bool, mode: &str, ops: Vec<Value>) -> Value {
    json!({"recursive": recursive, "mode": mode, "ops": ops})
}

// ---------------------------------------------------------------------------------------------------------
// The recount: what the store answered before it had counters
// ---------------------------------------------------------------------------------------------------------

/// An execution time as the store counts it.
fn exec_expr() -> &'static str {
    "CASE WHEN typeof(execution_time_ms) = 'integer' THEN execution_time_ms \
     ELSE CAST(round(execution_time_ms) AS INTEGER) END"
}

/// Compares every counter-served figure of `store` with a recount of the file, with the store's clock at `now`.
async fn assert_counters_exact(store: &Store, db: &Path, now: DateTime<Utc>, context: &str) {
    assert!(store.has_counters(), "{context}: the store has counters");
    let check = store.verify_counters().await.expect("verify_counters");
    assert!(
        check.is_exact(),
        "{context}: counters differ from a recount of {} rows: {:#?}",
        check.rows,
        check.differences
    );

    let mut conn = raw(db).await;
    let created = instant_sql("created_at");
    let updated = instant_sql("updated_at");
    let us = |t: DateTime<Utc>| t.timestamp_micros();

    // Stats.
    let stats = store.get_workflow_stats().await.expect("stats");
    let per_status: Vec<(Option<String>, i64)> =
        sqlx::query_as("SELECT CAST(status AS TEXT), count(*) FROM workflow_state GROUP BY status")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let mut counts = BTreeMap::new();
    for (s, n) in &per_status {
        *counts
            .entry(Status::from_stored(s.clone()).as_str().to_string())
            .or_insert(0) += n;
    }
    assert_eq!(stats.status_counts, counts, "{context}: status counts");
    assert_eq!(
        stats.total_workflows,
        per_status.iter().map(|(_, n)| n).sum::<i64>(),
        "{context}: total"
    );
    let recent: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM workflow_state WHERE {created} >= ?1"
    ))
    .bind(us(now - Duration::hours(24)))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(stats.recent_workflows_24h, recent, "{context}: created in 24 h");
    let average: Option<f64> = sqlx::query_scalar(&format!(
        "SELECT CAST(avg({}) AS REAL) FROM workflow_state WHERE execution_time_ms IS NOT NULL",
        exec_expr()
    ))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let average = average.unwrap_or(0.0);
    assert!(
        (stats.average_execution_time_ms - average).abs() <= average.abs() * 1e-9 + 1e-9,
        "{context}: average {} vs {average}",
        stats.average_execution_time_ms
    );

    // Activity, per hour and per day.
    for (bucket, n, width) in [
        (Bucket::Hour, 80, Duration::hours(1)),
        (Bucket::Day, 5, Duration::days(1)),
    ] {
        let got = store.activity(bucket, n).await.expect("activity");
        let first = got[0].start;
        let rows: Vec<(i64, Option<String>, i64)> = sqlx::query_as(&format!(
            "SELECT ({created} - ?1) / ?3 AS b, CAST(status AS TEXT), count(*) FROM workflow_state \
             WHERE {created} >= ?1 AND {created} < ?2 GROUP BY b, status"
        ))
        .bind(us(first))
        .bind(us(first + width * n as i32))
        .bind(width.num_microseconds().unwrap())
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let mut want: Vec<BTreeMap<String, i64>> = vec![BTreeMap::new(); n as usize];
        for (b, s, c) in rows {
            *want[b as usize]
                .entry(Status::from_stored(s).as_str().to_string())
                .or_insert(0) += c;
        }
        let have: Vec<BTreeMap<String, i64>> = got.into_iter().map(|b| b.counts).collect();
        assert_eq!(have, want, "{context}: activity per {bucket:?}");
    }

    // Failure rates, failed counts and stuck counts, for windows starting early and late in an hour.
    for back in [
        Duration::hours(24),
        Duration::minutes(90),
        Duration::minutes(20),
        Duration::hours(72),
    ] {
        let since = now - back;
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(&format!(
            "SELECT CAST(COALESCE(pipeline_id, '') AS TEXT), count(*), sum(status = 'failed') FROM workflow_state \
             WHERE {updated} >= ?1 GROUP BY 1"
        ))
        .bind(us(since))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let mut want: Vec<(String, i64, i64)> = rows;
        want.sort();
        let mut have: Vec<(String, i64, i64)> = store
            .failure_rates(since)
            .await
            .expect("failure rates")
            .into_iter()
            .map(|r| (r.pipeline_id, r.total, r.failed))
            .collect();
        have.sort();
        assert_eq!(have, want, "{context}: failure rates since {since}");
        let failed: i64 = want.iter().map(|(_, _, f)| f).sum();
        assert_eq!(
            store.count_failed_since(since).await.unwrap(),
            failed,
            "{context}: failed since {since}"
        );
        let report = store.failure_groups(since).await.unwrap();
        let window: Vec<(String, i64, Option<String>)> = sqlx::query_as(&format!(
            "SELECT run_id, {updated}, error_message FROM workflow_state WHERE status = 'failed' AND {updated} >= ?1"
        ))
        .bind(us(since))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        assert_eq!(report.total_failed, failed, "{context}: failures grouped");
        assert_eq!(
            report.groups.iter().map(|g| g.count).sum::<i64>(),
            failed,
            "{context}: every failure is in a group"
        );
        for g in &report.groups {
            let signature_of = |m: &str| {
                if m.trim().is_empty() {
                    "(no error message)".to_string()
                } else {
                    flowstate_store::insights::error_signature(m)
                }
            };
            assert_eq!(
                signature_of(&g.example),
                g.signature,
                "{context}: the example is of its group"
            );
            assert_eq!(
                g.samples.len() as i64,
                g.count.min(5),
                "{context}: samples of {}",
                g.signature
            );
            assert_eq!(g.pipelines.values().sum::<i64>(), g.count, "{context}");
            for run in &g.samples {
                assert_eq!(run.status, Status::Failed);
                assert_eq!(
                    signature_of(run.error_message.as_deref().unwrap_or("")),
                    g.signature,
                    "{context}: a sample of another group"
                );
                assert!(
                    run.updated_at.is_some_and(|u| u >= since),
                    "{context}: a sample outside the window"
                );
            }
            let order: Vec<_> = g
                .samples
                .iter()
                .map(|r| (r.updated_at, r.run_id.clone()))
                .collect();
            let mut sorted = order.clone();
            sorted.sort_by(|a, b| b.cmp(a));
            assert_eq!(order, sorted, "{context}: samples newest first");
            // The samples are the group's newest failures (by last update, then run id).
            let mut members: Vec<(i64, String)> = window
                .iter()
                .filter(|(_, _, m)| signature_of(m.as_deref().unwrap_or("")) == g.signature)
                .map(|(id, at, _)| (*at, id.clone()))
                .collect();
            members.sort_by(|a, b| b.cmp(a));
            let newest: Vec<String> = members.into_iter().take(5).map(|(_, id)| id).collect();
            let ids: Vec<String> = g.samples.iter().map(|r| r.run_id.clone()).collect();
            assert_eq!(ids, newest, "{context}: the newest failures of {}", g.signature);
        }

        let stuck: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM workflow_state WHERE status IN ('running', 'paused') AND {updated} < ?1 \
             AND {updated} > {}",
            i64::MIN
        ))
        .bind(us(since))
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(
            store.stuck_runs(back, 5).await.unwrap().count,
            stuck,
            "{context}: stuck for {back}"
        );
    }

    // Pipelines and execution-time percentiles.
    let pipelines: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT CAST(pipeline_id AS TEXT) FROM workflow_state WHERE pipeline_id IS NOT NULL ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        store.pipelines().await.unwrap(),
        pipelines,
        "{context}: pipelines"
    );
    let mut by_pipeline = store.execution_percentiles_by_pipeline().await.unwrap();
    by_pipeline.sort_by(|a, b| a.0.cmp(&b.0));
    let mut seen = Vec::new();
    for pipeline in std::iter::once(None).chain(pipelines.iter().map(Some)) {
        let times: Vec<i64> = sqlx::query_scalar(&format!(
            "SELECT max({}, 0) FROM workflow_state WHERE execution_time_ms IS NOT NULL AND (?1 IS NULL OR pipeline_id = ?1) \
             ORDER BY 1",
            exec_expr()
        ))
        .bind(pipeline)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let longest: Option<f64> = sqlx::query_scalar(
            "SELECT CAST(max(execution_time_ms) AS REAL) FROM workflow_state \
             WHERE execution_time_ms < '' AND (?1 IS NULL OR pipeline_id = ?1)",
        )
        .bind(pipeline)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        let p = store
            .execution_percentiles(pipeline.map(String::as_str))
            .await
            .unwrap();
        assert_eq!(
            p.count,
            times.len() as i64,
            "{context}: timed runs of {pipeline:?}"
        );
        assert_eq!(p.max, longest, "{context}: longest of {pipeline:?}");
        for (q, got) in [(0.5, p.p50), (0.95, p.p95), (0.99, p.p99)] {
            if times.is_empty() {
                assert_eq!(got, None);
                continue;
            }
            let rank = ((q * times.len() as f64).ceil() as usize).clamp(1, times.len());
            let exact = times[rank - 1] as f64;
            let got = got.expect("a percentile");
            assert!(
                (got - exact).abs() <= exact * p.relative_error + 1e-9 || Some(got) == p.max,
                "{context}: p{} of {pipeline:?} is {got}, exact {exact}",
                q * 100.0
            );
        }
        if let Some(name) = pipeline {
            if !times.is_empty() {
                seen.push((name.clone(), p));
            }
        }
    }
    assert_eq!(by_pipeline, seen, "{context}: percentiles per pipeline");
}

// ---------------------------------------------------------------------------------------------------------
// Random rows and operations
// ---------------------------------------------------------------------------------------------------------

const NOW: &str = "2026-04-10T12:17:43.250000Z";

struct Gen {
    rng: StdRng,
    /// The table has no constraints (a migrated oldest-schema file): NULLs and legacy statuses can be written.
    loose: bool,
}

impl Gen {
    fn run_id(&mut self) -> String {
        format!("run-{}", self.rng.gen_range(0..40))
    }

    fn pipeline(&mut self) -> Value {
        if self.loose && self.rng.gen_bool(0.08) {
            return Value::Null;
        }
        json!(["invoice", "triage", "sql-agent", "hitl"][self.rng.gen_range(0..4)])
    }

    fn status(&mut self) -> Value {
        if self.loose && self.rng.gen_bool(0.1) {
            return [Value::Null, json!("pending"), json!("")][self.rng.gen_range(0..3)].clone();
        }
        if self.rng.gen_bool(0.02) {
            return json!("bogus"); // refused by flujo's CHECK
        }
        json!(["running", "paused", "completed", "failed", "cancelled"][self.rng.gen_range(0..5)])
    }

    /// A timestamp within three days of `now`, in one of the spellings flujo and others write.
    fn stamp(&mut self, now: DateTime<Utc>) -> Value {
        if self.rng.gen_bool(0.03) {
            return if self.loose && self.rng.gen_bool(0.5) {
                Value::Null
            } else {
                json!("yesterday")
            };
        }
        let at = now - Duration::seconds(self.rng.gen_range(-3_600..3 * 86_400));
        let at = at + Duration::microseconds(self.rng.gen_range(0..1_000_000));
        let naive = at.naive_utc();
        json!(match self.rng.gen_range(0..6) {
            0 => naive.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
            1 => naive.format("%Y-%m-%dT%H:%M:%S").to_string(),
            2 => at.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string(),
            3 => (at - Duration::hours(7))
                .naive_utc()
                .format("%Y-%m-%dT%H:%M:%S%.6f-07:00")
                .to_string(),
            4 => naive.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
            _ => at.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        })
    }

    fn exec(&mut self) -> Value {
        match self.rng.gen_range(0..20) {
            0..=3 => Value::Null,
            4 => json!(self.rng.gen_range(0..40)),
            5 => json!(self.rng.gen_range(0.0..5000.0f64)),
            6 => json!(-self.rng.gen_range(1..100)),
            7 => json!((1i64 << 62) + self.rng.gen_range(0..1_000_000)),
            8 => json!("17"),
            9 => json!("abc"),
            _ => json!(self.rng.gen_range(40..2_000_000)),
        }
    }

    fn row(&mut self, now: DateTime<Utc>) -> Value {
        let status = self.status();
        json!({
            "run_id": self.run_id(),
            "pipeline_id": self.pipeline(),
            "pipeline_name": "p",
            "pipeline_version": "1.0",
            "current_step_index": 0,
            "pipeline_context": "{}",
            "last_step_output": null,
            "step_history": "[]",
            "error_message": if status == json!("failed") { json!(format!("TimeoutError: call {} exceeded 30s", self.rng.gen_range(0..9))) } else { Value::Null },
            "status": status,
            "created_at": self.stamp(now),
            "updated_at": self.stamp(now),
            "total_steps": 3,
            "execution_time_ms": self.exec(),
            "memory_usage_mb": null,
        })
    }

    fn python_op(&mut self, now: DateTime<Utc>) -> Value {
        let row = self.row(now);
        match self.rng.gen_range(0..20) {
            0..=6 => json!({"op": "replace", "row": row}),
            7 => {
                let mut row2 = self.row(now);
                row2["run_id"] = row["run_id"].clone();
                json!({"op": "replace_pair", "row": row, "row2": row2})
            }
            8 => json!({"op": "insert", "row": row}),
            9 => json!({"op": "ignore", "row": row}),
            10 | 11 => json!({"op": "upsert", "row": row}),
            12 => json!({"op": "upsert_nothing", "row": row}),
            13 => json!({"op": "upsert_where", "row": row}),
            14 | 15 => json!({"op": "update", "row": row}),
            16 => json!({"op": "update_many", "status": row["status"], "updated_at": row["updated_at"],
                         "pipeline_id": row["pipeline_id"]}),
            17 => {
                let or = ["", "OR REPLACE", "OR IGNORE"][self.rng.gen_range(0..3)];
                json!({"op": "rename", "or": or, "from": self.run_id(), "to": self.run_id()})
            }
            18 => json!({"op": "delete", "run_id": self.run_id()}),
            _ => json!({"op": "delete_many", "pipeline_id": self.pipeline()}),
        }
    }

    /// A run flowstate itself saves.
    fn state(&mut self, now: DateTime<Utc>) -> WorkflowState {
        let pipeline = ["invoice", "triage", "sql-agent", "hitl"][self.rng.gen_range(0..4)];
        let mut s = WorkflowState::new(self.run_id(), pipeline);
        s.status = Status::KNOWN[self.rng.gen_range(0..5)].clone();
        if s.status == Status::Failed {
            s.error_message = Some(format!("ValueError: row {} is bad", self.rng.gen_range(0..1000)));
        }
        let at = |g: &mut Self| now - Duration::seconds(g.rng.gen_range(-600..3 * 86_400));
        s.created_at = if self.rng.gen_bool(0.2) {
            None
        } else {
            Some(at(self))
        };
        s.updated_at = if self.rng.gen_bool(0.3) {
            None
        } else {
            Some(at(self))
        };
        s.execution_time_ms = match self.rng.gen_range(0..4) {
            0 => None,
            1 => Some(self.rng.gen_range(0..32)),
            _ => Some(self.rng.gen_range(0..5_000_000)),
        };
        s
    }
}

/// Random rounds of flowstate's writes and Python's, each followed by the full comparison.
async fn random_rounds(db: &Path, store: &Store, clock: &FixedClock, seed: u64, loose: bool) {
    let mut g = Gen {
        rng: StdRng::seed_from_u64(seed),
        loose,
    };
    let rounds = support::scale(6, 40);
    let (mut done, mut refused) = (0, 0);
    for round in 0..rounds {
        let now = store.now();
        // flowstate's own writes.
        for _ in 0..g.rng.gen_range(5..25) {
            match g.rng.gen_range(0..10) {
                0..=5 => store.save_state(&g.state(now)).await.unwrap(),
                6 | 7 => {
                    let batch: Vec<WorkflowState> =
                        (0..g.rng.gen_range(1..6)).map(|_| g.state(now)).collect();
                    store.save_many(&batch).await.unwrap();
                }
                8 => {
                    let id = g.run_id();
                    store.delete_state(&id).await.unwrap();
                }
                _ => {
                    let mut policy = CleanupPolicy::older_than_days(2);
                    if g.rng.gen_bool(0.5) {
                        policy.statuses = Status::KNOWN.to_vec();
                    }
                    store.cleanup_old_workflows(&policy).await.unwrap();
                }
            }
        }
        assert_counters_exact(
            store,
            db,
            now,
            &format!("seed {seed} round {round}, after flowstate"),
        )
        .await;
        // Another process's.
        let batches: Vec<Value> = (0..g.rng.gen_range(2..6))
            .map(|_| {
                let ops = (0..g.rng.gen_range(1..15)).map(|_| g.python_op(now)).collect();
                let mode = ["autocommit", "autocommit", "commit", "rollback"][g.rng.gen_range(0..4)];
                batch(g.rng.gen_bool(0.5), mode, ops)
            })
            .collect();
        let (d, r) = python_writes(db, &Value::Array(batches));
        done += d;
        refused += r;
        assert_counters_exact(
            store,
            db,
            now,
            &format!("seed {seed} round {round}, after python"),
        )
        .await;
        // Time passes (windows move across hour boundaries).
        clock.advance(Duration::minutes(g.rng.gen_range(1..200)));
    }
    assert!(done > 0, "Python wrote something");
    let _ = refused;
}

// ---------------------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn counters_stay_exact_under_flowstate_and_direct_sqlite_writes() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mixed.db");
    let (store, clock) = open_at(&db, at(NOW)).await;
    assert!(store.has_counters());
    for seed in [1, 2] {
        random_rounds(&db, &store, &clock, seed, false).await;
    }
    store.close().await;
}

#[tokio::test]
async fn counters_stay_exact_with_nulls_and_legacy_values() {
    // flujo's oldest table has no constraints: NULL statuses, pipelines and times, and statuses outside the five.
    let dir = tempfile::tempdir().unwrap();
    let db = copy_fixture("flujo-oldest-schema-null-pipeline-id.db", dir.path());
    let (store, clock) = open_at(&db, at(NOW)).await;
    assert_eq!(store.migration().from, SchemaKind::FlujoOldest);
    assert_counters_exact(&store, &db, at(NOW), "migrated oldest schema").await;
    random_rounds(&db, &store, &clock, 3, true).await;
    store.close().await;
}

/// One run saved by flowstate, then each kind of direct write, with recursive triggers off and on: the counters
/// follow exactly, and the figures say what happened.
#[tokio::test]
async fn each_kind_of_direct_write_is_counted_once() {
    let now = at(NOW);
    let row = |id: &str, status: &str, exec: Value| {
        json!({
            "run_id": id, "pipeline_id": "p", "pipeline_name": "p", "pipeline_version": "1", "current_step_index": 0,
            "pipeline_context": "{}", "last_step_output": null, "step_history": null, "status": status,
            "created_at": "2026-04-10T11:00:00", "updated_at": "2026-04-10T11:30:00.000001",
            "total_steps": 0, "error_message": null, "execution_time_ms": exec, "memory_usage_mb": null,
        })
    };
    // (what, operations, expected (status -> runs) afterwards, expected sum of times)
    type Case = (&'static str, Vec<Value>, Vec<(&'static str, i64)>, i64);
    let cases: Vec<Case> = vec![
        (
            "flujo's INSERT OR REPLACE of an existing run",
            vec![json!({"op": "replace", "row": row("a", "completed", json!(700))})],
            vec![("completed", 1)],
            700,
        ),
        (
            "INSERT OR REPLACE of a new run",
            vec![json!({"op": "replace", "row": row("b", "failed", json!(5))})],
            vec![("running", 1), ("failed", 1)],
            105,
        ),
        (
            "two rows with the same id in one INSERT OR REPLACE",
            vec![
                json!({"op": "replace_pair", "row": row("a", "paused", json!(1)), "row2": row("a", "failed", json!(2))}),
            ],
            vec![("failed", 1)],
            2,
        ),
        (
            "an UPSERT that updates",
            vec![json!({"op": "upsert", "row": row("a", "cancelled", json!(null))})],
            vec![("cancelled", 1)],
            0,
        ),
        (
            "an UPSERT whose update does nothing, INSERT OR IGNORE and DO NOTHING on a conflict",
            vec![
                json!({"op": "upsert_where", "row": row("a", "failed", json!(1))}),
                json!({"op": "ignore", "row": row("a", "failed", json!(1))}),
                json!({"op": "upsert_nothing", "row": row("a", "failed", json!(1))}),
            ],
            vec![("running", 1)],
            100,
        ),
        (
            "a plain UPDATE",
            vec![json!({"op": "update", "row": row("a", "completed", json!(40))})],
            vec![("completed", 1)],
            40,
        ),
        (
            "a run id renamed, and renamed over another run (UPDATE OR REPLACE)",
            vec![
                json!({"op": "replace", "row": row("b", "failed", json!(5))}),
                json!({"op": "rename", "or": "", "from": "a", "to": "c"}),
                json!({"op": "rename", "or": "OR REPLACE", "from": "c", "to": "b"}),
            ],
            vec![("running", 1)],
            100,
        ),
        (
            "a rename refused (the id is taken) and a statement that breaks the CHECK",
            vec![
                json!({"op": "replace", "row": row("b", "failed", json!(5))}),
                json!({"op": "rename", "or": "", "from": "a", "to": "b"}),
                json!({"op": "replace", "row": row("a", "bogus", json!(5))}),
            ],
            vec![("running", 1), ("failed", 1)],
            105,
        ),
        (
            "a DELETE",
            vec![json!({"op": "delete", "run_id": "a"})],
            vec![],
            0,
        ),
    ];
    for recursive in [false, true] {
        for mode in ["autocommit", "commit", "rollback"] {
            for (what, ops, expected, sum) in &cases {
                let dir = tempfile::tempdir().unwrap();
                let db = dir.path().join("case.db");
                let (store, _) = open_at(&db, now).await;
                let mut a = WorkflowState::new("a", "p");
                a.execution_time_ms = Some(100);
                store.save_state(&a).await.unwrap();
                python_writes(&db, &json!([batch(recursive, mode, ops.clone())]));
                let context = format!("{what} (recursive_triggers {recursive}, {mode})");
                assert_counters_exact(&store, &db, now, &context).await;
                let stats = store.get_workflow_stats().await.unwrap();
                let (want, want_sum): (BTreeMap<String, i64>, i64) = if mode == "rollback" {
                    ([("running".to_string(), 1)].into(), 100)
                } else {
                    (expected.iter().map(|(s, n)| (s.to_string(), *n)).collect(), *sum)
                };
                assert_eq!(stats.status_counts, want, "{context}");
                assert_eq!(stats.total_workflows, want.values().sum::<i64>(), "{context}");
                let timed = store.execution_percentiles(None).await.unwrap().count;
                let average = if timed > 0 {
                    want_sum as f64 / timed as f64
                } else {
                    0.0
                };
                assert_eq!(stats.average_execution_time_ms, average, "{context}");
                store.close().await;
            }
        }
    }
}

/// A file of schema 1 (the indexes, `flowstate_meta` and `flowstate_audit`, no counters), as flowstate 0.1 left it.
async fn schema_one_file(db: &Path) {
    let mut conn = raw_create(db).await;
    let created = instant_sql("created_at");
    let updated = instant_sql("updated_at");
    let mut statements = vec![
        "CREATE TABLE workflow_state (run_id TEXT PRIMARY KEY, pipeline_id TEXT NOT NULL, pipeline_name TEXT NOT NULL, \
         pipeline_version TEXT NOT NULL, current_step_index INTEGER NOT NULL DEFAULT 0, pipeline_context TEXT NOT NULL, \
         last_step_output TEXT, step_history TEXT, status TEXT NOT NULL CHECK (status IN ('running', 'paused', \
         'completed', 'failed', 'cancelled')), created_at TEXT NOT NULL, updated_at TEXT NOT NULL, total_steps INTEGER \
         DEFAULT 0, error_message TEXT, execution_time_ms INTEGER, memory_usage_mb REAL)"
            .to_string(),
    ];
    for (name, def) in [
        ("idx_workflow_state_status", "workflow_state(status)".to_string()),
        (
            "idx_workflow_state_pipeline_id",
            "workflow_state(pipeline_id)".to_string(),
        ),
        (
            "idx_workflow_state_created_at",
            "workflow_state(created_at)".to_string(),
        ),
        (
            "idx_workflow_state_updated_at",
            "workflow_state(updated_at)".to_string(),
        ),
        (
            "idx_workflow_state_status_updated",
            "workflow_state(status, updated_at)".to_string(),
        ),
        (
            "idx_workflow_state_pipeline_status",
            "workflow_state(pipeline_id, status)".to_string(),
        ),
        (
            "idx_flowstate_created",
            format!("workflow_state({created}, run_id)"),
        ),
        (
            "idx_flowstate_status_created",
            format!("workflow_state(status, {created}, run_id)"),
        ),
        (
            "idx_flowstate_pipeline_created",
            format!("workflow_state(pipeline_id, {created}, run_id)"),
        ),
        (
            "idx_flowstate_status_updated",
            format!("workflow_state(status, {updated}, run_id)"),
        ),
        (
            "idx_flowstate_exec",
            "workflow_state(execution_time_ms)".to_string(),
        ),
        (
            "idx_flowstate_pipeline_exec",
            "workflow_state(pipeline_id, execution_time_ms)".to_string(),
        ),
    ] {
        statements.push(format!("CREATE INDEX {name} ON {def}"));
    }
    statements.push("CREATE TABLE flowstate_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)".into());
    statements.push("INSERT INTO flowstate_meta VALUES ('schema_version', '1')".into());
    statements.push(
        "CREATE TABLE flowstate_audit (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, actor TEXT NOT NULL, \
         action TEXT NOT NULL, detail TEXT NOT NULL, matched INTEGER, affected INTEGER NOT NULL)"
            .into(),
    );
    for sql in statements {
        sqlx::query(&sql).execute(&mut conn).await.unwrap();
    }
    let mut g = Gen {
        rng: StdRng::seed_from_u64(11),
        loose: false,
    };
    let mut rows = 0;
    while rows < 400 {
        let r = g.row(at(NOW));
        if r["status"] == json!("bogus") || r["created_at"] == json!("yesterday") {
            continue;
        }
        let id = format!("v1-{rows}");
        sqlx::query(
            "INSERT INTO workflow_state (run_id, pipeline_id, pipeline_name, pipeline_version, pipeline_context, status, \
             created_at, updated_at, error_message, execution_time_ms) VALUES (?1, ?2, 'p', '1', '{}', ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(&id)
        .bind(r["pipeline_id"].as_str())
        .bind(r["status"].as_str())
        .bind(r["created_at"].as_str())
        .bind(r["updated_at"].as_str())
        .bind(r["error_message"].as_str())
        .bind(r["execution_time_ms"].as_i64())
        .execute(&mut conn)
        .await
        .unwrap();
        rows += 1;
    }
    use sqlx::Connection;
    conn.close().await.unwrap();
}

async fn raw_create(db: &Path) -> SqliteConnection {
    use sqlx::ConnectOptions;
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(db)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap()
}

async fn index_names(db: &Path) -> Vec<String> {
    let mut conn = raw(db).await;
    sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'idx_%' ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
}

fn read_only(now: DateTime<Utc>) -> StoreOptions {
    StoreOptions {
        read_only: true,
        clock: std::sync::Arc::new(FixedClock::new(now)),
        ..Default::default()
    }
}

#[tokio::test]
async fn schema_one_files_migrate_to_exact_counters_in_one_step() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("v1.db");
    schema_one_file(&db).await;
    let now = at(NOW);

    // Read-only, before the migration: no counters, the figures are counted from the rows.
    let ro = Store::open_with(&db, read_only(now)).await.unwrap();
    assert!(!ro.has_counters());
    assert_eq!(ro.migration().from, SchemaKind::Flowstate { version: 1 });
    let before = ro.get_workflow_stats().await.unwrap();
    assert_eq!(before.total_workflows, 400);
    let exact = ro.execution_percentiles(None).await.unwrap();
    assert_eq!(exact.relative_error, 0.0, "counted from the index: exact");
    let activity = ro.activity(Bucket::Hour, 80).await.unwrap();
    let rates = ro.failure_rates(now - Duration::hours(24)).await.unwrap();
    assert!(
        ro.verify_counters().await.is_err(),
        "nothing to verify without counters"
    );
    ro.close().await;

    let (store, _) = open_at(&db, now).await;
    let report = store.migration().clone();
    assert_eq!(report.from, SchemaKind::Flowstate { version: 1 });
    assert_eq!(report.to_version, flowstate_store::SCHEMA_VERSION);
    for wanted in [
        "dropped index idx_flowstate_status_updated",
        "created index idx_flowstate_status_activity",
        "created trigger flowstate_counters_ai",
        "filled the counters from the rows",
        "added column parent_run_id (",
        "recorded schema version 4",
    ] {
        assert!(
            report.changes.iter().any(|c| c.starts_with(wanted)),
            "{wanted:?} not in {:#?}",
            report.changes
        );
    }
    assert_counters_exact(&store, &db, now, "migrated from schema 1").await;
    assert_eq!(
        store.get_workflow_stats().await.unwrap(),
        before,
        "the same figures from the counters"
    );
    assert_eq!(store.activity(Bucket::Hour, 80).await.unwrap(), activity);
    assert_eq!(
        store.failure_rates(now - Duration::hours(24)).await.unwrap(),
        rates
    );
    let names = index_names(&db).await;
    assert!(
        !names.contains(&"idx_flowstate_status_updated".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"idx_flowstate_status_activity".to_string()),
        "{names:?}"
    );
    for seed in [
        "idx_workflow_state_status",
        "idx_workflow_state_created_at",
        "idx_workflow_state_pipeline_id",
    ] {
        assert!(names.contains(&seed.to_string()), "{seed} kept");
    }
    store.close().await;

    // Idempotent: the next open changes nothing; a read-only open now reads the counters.
    let (store, _) = open_at(&db, now).await;
    assert!(store.migration().is_noop(), "{:?}", store.migration());
    store.close().await;
    let ro = Store::open_with(&db, read_only(now)).await.unwrap();
    assert!(ro.has_counters());
    assert_eq!(ro.get_workflow_stats().await.unwrap(), before);
    ro.close().await;
}

#[tokio::test]
async fn flujo_files_migrate_to_exact_counters_and_read_only_opens_count_rows() {
    let now = at("2025-07-20T00:00:00Z");
    for fixture in [
        "flujo-0.4.35-sample-300.db",
        "flujo-oldest-schema.db",
        "flujo-oldest-schema-null-pipeline-id.db",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let db = copy_fixture(fixture, dir.path());
        let counted = if fixture.starts_with("flujo-0.4.35") {
            // flujo 0.4.35's own files are readable as they are: the figures are counted from the rows.
            let ro = Store::open_with(&db, read_only(now)).await.unwrap();
            assert!(!ro.has_counters(), "{fixture}");
            let figures = (
                ro.get_workflow_stats().await.unwrap(),
                ro.activity(Bucket::Day, 30).await.unwrap(),
                ro.failure_rates(now - Duration::days(400)).await.unwrap(),
                ro.pipelines().await.unwrap(),
            );
            ro.close().await;
            Some(figures)
        } else {
            None
        };
        let (store, _) = open_at(&db, now).await;
        assert!(
            store
                .migration()
                .changes
                .iter()
                .any(|c| c == "filled the counters from the rows"),
            "{fixture}: {:?}",
            store.migration()
        );
        assert_counters_exact(&store, &db, now, fixture).await;
        if let Some((stats, activity, rates, pipelines)) = counted {
            assert_eq!(store.get_workflow_stats().await.unwrap(), stats, "{fixture}");
            assert_eq!(
                store.activity(Bucket::Day, 30).await.unwrap(),
                activity,
                "{fixture}"
            );
            assert_eq!(
                store.failure_rates(now - Duration::days(400)).await.unwrap(),
                rates,
                "{fixture}"
            );
            assert_eq!(store.pipelines().await.unwrap(), pipelines, "{fixture}");
        }
        store.close().await;
    }
}

#[tokio::test]
async fn damaged_counters_are_reported_and_rebuilt_and_missing_triggers_restored() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("damaged.db");
    let now = at(NOW);
    let (store, clock) = open_at(&db, now).await;
    random_rounds(&db, &store, &clock, 7, false).await;
    let before = store.get_workflow_stats().await.unwrap();

    // Someone edits a counter: the check names it, the rebuild fixes it.
    let mut conn = raw(&db).await;
    sqlx::query(
        "UPDATE flowstate_counts SET runs = runs + 5 WHERE (status_key, pipeline_key) = \
         (SELECT status_key, pipeline_key FROM flowstate_counts LIMIT 1)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query("INSERT INTO flowstate_exec_hist VALUES ('=ghost', 64, 3)")
        .execute(&mut conn)
        .await
        .unwrap();
    let check = store.verify_counters().await.unwrap();
    assert!(!check.is_exact());
    assert_eq!(check.differences.len(), 2, "{:#?}", check.differences);
    assert!(check
        .differences
        .iter()
        .any(|d| d.table == "flowstate_exec_hist" && d.recounted.is_none()));
    let found = store.rebuild_counters().await.unwrap();
    assert_eq!(found, check, "the rebuild reports what it found");
    assert_counters_exact(&store, &db, store.now(), "rebuilt").await;
    assert_eq!(store.get_workflow_stats().await.unwrap(), before);

    // Someone drops a trigger, then writes: the next writable open restores the trigger and recounts.
    sqlx::query("DROP TRIGGER flowstate_counters_ad")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("DELETE FROM workflow_state WHERE rowid IN (SELECT rowid FROM workflow_state LIMIT 3)")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    assert!(
        !store.verify_counters().await.unwrap().is_exact(),
        "deletes went uncounted"
    );
    store.close().await;
    let ro = Store::open_with(&db, read_only(now)).await.unwrap();
    assert!(
        !ro.has_counters(),
        "without all its triggers a file's counters are not used"
    );
    let counted = ro.get_workflow_stats().await.unwrap();
    ro.close().await;
    let (store, _) = open_at(&db, now).await;
    assert!(store
        .migration()
        .changes
        .iter()
        .any(|c| c.starts_with("created trigger flowstate_counters_ad")));
    assert_counters_exact(&store, &db, now, "triggers restored").await;
    assert_eq!(store.get_workflow_stats().await.unwrap(), counted);
    store.close().await;
}

// The tests below run on both backends (SQLite's trigger-kept counters; PostgreSQL's statement triggers over
// slotted rows): the store's own recount (`verify_counters`) and an independent one through the lists must agree.

/// Counts per status and per pipeline, and the mean execution time, from listing every run (no counters involved).
async fn recount_by_listing(store: &Store) -> (BTreeMap<String, i64>, BTreeMap<String, i64>, Option<f64>) {
    let (mut statuses, mut pipelines) = (BTreeMap::new(), BTreeMap::new());
    let (mut sum, mut timed) = (0i64, 0i64);
    let mut q = ListQuery {
        limit: Some(1000),
        ..Default::default()
    };
    loop {
        let page = store.list_workflows(&q).await.unwrap();
        for r in &page.runs {
            *statuses.entry(r.status.as_str().to_string()).or_insert(0) += 1;
            *pipelines.entry(r.pipeline_id.clone()).or_insert(0) += 1;
            if let Some(ms) = r.execution_time_ms {
                sum += ms;
                timed += 1;
            }
        }
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => break,
        }
    }
    (
        statuses,
        pipelines,
        (timed > 0).then(|| sum as f64 / timed as f64),
    )
}

/// The counters agree with the store's recount and with a listing of every run.
async fn assert_counters_agree(store: &Store, context: &str) {
    let check = store.verify_counters().await.unwrap();
    assert!(check.is_exact(), "{context}: {:?}", check.differences);
    let (statuses, _, mean) = recount_by_listing(store).await;
    let stats = store.get_workflow_stats().await.unwrap();
    assert_eq!(stats.status_counts, statuses, "{context}");
    assert_eq!(stats.total_workflows, statuses.values().sum::<i64>(), "{context}");
    assert!(
        (stats.average_execution_time_ms - mean.unwrap_or(0.0)).abs() < 1e-9,
        "{context}: {} vs {mean:?}",
        stats.average_execution_time_ms
    );
    assert_eq!(check.rows, stats.total_workflows, "{context}");
}

both_backends! {
    /// The histogram's percentiles against exact nearest-rank values on a spread of times: within 1/32, exact below
    /// 32 ms, never above the (exact) longest time.
    async fn percentiles_from_the_histogram_are_within_their_stated_bound(db) {
        let (store, _) = db.open_at(at(NOW)).await;
        let mut rng = StdRng::seed_from_u64(5);
        let mut times: Vec<i64> = Vec::new();
        let mut batch = Vec::new();
        for i in 0..3000 {
            let mut s = WorkflowState::new(format!("r{i}"), if i % 3 == 0 { "slow" } else { "fast" });
            s.status = Status::Completed;
            // Log-uniform from 1 ms to about 3 hours.
            let t = (10f64.powf(rng.gen_range(0.0..7.0))) as i64;
            s.execution_time_ms = Some(t);
            times.push(t);
            batch.push(s);
        }
        store.save_many(&batch).await.unwrap();
        let p = store.execution_percentiles(None).await.unwrap();
        assert_eq!(p.relative_error, 1.0 / 32.0);
        times.sort();
        for (q, got) in [(0.5, p.p50), (0.95, p.p95), (0.99, p.p99)] {
            let exact = times[((q * times.len() as f64).ceil() as usize) - 1] as f64;
            let got = got.unwrap();
            assert!((got - exact).abs() <= exact / 32.0, "p{q}: {got} vs {exact}");
            assert!(got <= p.max.unwrap());
        }
        assert_eq!(p.max, Some(*times.last().unwrap() as f64));
        assert_counters_agree(&store, "percentiles").await;
        store.close().await;
    }

    /// Reads of the counters are all one read snapshot: a stats call racing saves never sees a half-applied change.
    async fn stats_stay_consistent_while_runs_change_status(db) {
        let (store, _) = db.open_at(at(NOW)).await;
        let runs: Vec<WorkflowState> = (0..50)
            .map(|i| WorkflowState::new(format!("r{i}"), "p"))
            .collect();
        store.save_many(&runs).await.unwrap();
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                for round in 0..20 {
                    for i in 0..50 {
                        let mut s = WorkflowState::new(format!("r{i}"), "p");
                        s.status = Status::KNOWN[(round + i) % 5].clone();
                        store.save_state(&s).await.unwrap();
                    }
                }
            })
        };
        while !writer.is_finished() {
            let stats = store.get_workflow_stats().await.unwrap();
            assert_eq!(stats.total_workflows, 50, "{stats:?}");
            assert_eq!(stats.status_counts.values().sum::<i64>(), 50);
        }
        writer.await.unwrap();
        assert_counters_agree(&store, "after the race").await;
        store.close().await;
    }

    /// Eight writers at once (saves that create runs, change their status, pipeline and execution time, deletes,
    /// batches), with another process writing the same runs as flujo does: every counter stays exact, and each
    /// figure equals a recount.
    async fn counters_stay_exact_under_concurrent_writers_and_another_process(db) {
        let (store, _) = db.open_at(at(NOW)).await;
        let mut tasks = Vec::new();
        for w in 0..8u64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut rng = StdRng::seed_from_u64(w);
                for i in 0..120 {
                    let id = format!("r{}", rng.gen_range(0..200));
                    match rng.gen_range(0..10) {
                        0 => {
                            store.delete_state(&id).await.unwrap();
                        }
                        1 => {
                            let batch: Vec<WorkflowState> = (0..5)
                                .map(|k| {
                                    let mut s = WorkflowState::new(format!("b{w}_{i}_{k}"), "batch");
                                    s.status = Status::KNOWN[k % 5].clone();
                                    s.execution_time_ms = Some(k as i64 * 7);
                                    s
                                })
                                .collect();
                            store.save_many(&batch).await.unwrap();
                        }
                        _ => {
                            let mut s = WorkflowState::new(id, format!("p{}", rng.gen_range(0..4)));
                            s.status = Status::KNOWN[rng.gen_range(0..5)].clone();
                            s.execution_time_ms = rng.gen_bool(0.8).then(|| rng.gen_range(0..100_000));
                            s.created_at = Some(at(NOW) - Duration::minutes(rng.gen_range(0..3000)));
                            s.updated_at = Some(at(NOW) - Duration::minutes(rng.gen_range(0..600)));
                            store.save_state(&s).await.unwrap();
                        }
                    }
                }
            }));
        }
        // Meanwhile, the other writer upserts and deletes some of the same runs.
        let mut rng = StdRng::seed_from_u64(99);
        for i in 0..60 {
            let id = format!("r{}", rng.gen_range(0..200));
            if i % 4 == 3 {
                db.other_writer_delete(&id).await;
            } else {
                let status = ["running", "completed", "failed"][i % 3];
                db.other_writer_save(&OtherRow {
                    run_id: &id,
                    pipeline_id: "flujo",
                    status,
                    created_at: "2026-04-10T01:00:00+00:00",
                    updated_at: "2026-04-10T11:00:00+00:00",
                    error_message: (status == "failed").then_some("boom"),
                    execution_time_ms: Some(i as i64 * 11),
                })
                .await;
            }
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_counters_agree(&store, "after concurrent writers").await;
        // Per-pipeline figures too: the percentiles' counts per pipeline and the pipelines listed.
        let (_, pipelines, _) = recount_by_listing(&store).await;
        let listed: Vec<String> = pipelines.keys().cloned().collect();
        assert_eq!(store.pipelines().await.unwrap(), listed);
        // A cleanup of everything terminal leaves exact counters as well.
        store
            .cleanup_old_workflows(&CleanupPolicy::older_than_days(1))
            .await
            .unwrap();
        assert_counters_agree(&store, "after a cleanup").await;
        store.close().await;
    }
}
