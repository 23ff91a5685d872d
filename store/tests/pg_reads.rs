//! The PostgreSQL backend's reads return exactly what the SQLite backend returns for the same rows: the same runs
//! are saved through a SQLite store and written into flujo's PostgreSQL table, and every read (runs, pages, text
//! columns, exports, lists with every filter and cursors both ways, failed runs, cleanup previews, stuck runs,
//! percentiles, pipelines, activity, failure groups, counts and rates, the audit log) is compared, with and without
//! the counters.
//!
//! Runs when `FLOWSTATE_TEST_PG` is a PostgreSQL server URL whose role may `CREATE DATABASE` (each test makes a
//! database of its own and drops it at the end); prints `SKIPPED <why>` otherwise.

mod common;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use common::at;
use flowstate_store::{
    Bucket, CleanupPolicy, FixedClock, ListQuery, Page, RunExtras, Status, Store, StoreOptions, TextColumn,
    WorkflowState,
};
use serde_json::{json, Value};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Executor;

/// flujo's `workflow_state` on PostgreSQL, exactly, with its indexes.
const FLUJO_TABLE: &str = "CREATE TABLE IF NOT EXISTS workflow_state (
    run_id TEXT PRIMARY KEY, pipeline_id TEXT NOT NULL, pipeline_name TEXT NOT NULL,
    pipeline_version TEXT NOT NULL, current_step_index INTEGER NOT NULL, pipeline_context JSONB,
    last_step_output JSONB, step_history JSONB, status TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL, total_steps INTEGER DEFAULT 0, error_message TEXT, execution_time_ms INTEGER,
    memory_usage_mb REAL, metadata JSONB, is_background_task BOOLEAN DEFAULT FALSE, parent_run_id TEXT,
    task_id TEXT, background_error TEXT);
    CREATE INDEX IF NOT EXISTS idx_workflow_state_status ON workflow_state (status);
    CREATE INDEX IF NOT EXISTS idx_workflow_state_pipeline_id ON workflow_state (pipeline_id);
    CREATE INDEX IF NOT EXISTS idx_workflow_state_parent_run_id ON workflow_state (parent_run_id);
    CREATE INDEX IF NOT EXISTS idx_workflow_state_created_at ON workflow_state (created_at);";

/// The store's clock in every test.
fn now() -> DateTime<Utc> {
    at("2026-03-10T12:34:56.789012Z")
}

/// A database of the test's own on the server of `FLOWSTATE_TEST_PG`, dropped by [`Db::drop_now`].
struct Db {
    admin: PgPool,
    name: String,
    url: String,
    pool: PgPool,
}

impl Db {
    async fn fresh(test: &str) -> Option<Db> {
        let Some(base) = std::env::var("FLOWSTATE_TEST_PG")
            .ok()
            .filter(|u| !u.trim().is_empty())
        else {
            // Straight to stderr, past libtest's capture: a skip is never silent.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED pg_reads {test}: FLOWSTATE_TEST_PG is not set (a PostgreSQL URL whose role may CREATE \
                 DATABASE)"
            );
            return None;
        };
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&base)
            .await
            .unwrap_or_else(|e| panic!("FLOWSTATE_TEST_PG={base} cannot be reached: {e}"));
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!("pgread_{}_{}_{nonce}", test, std::process::id());
        // A locale whose order is not byte order and whose `lower` is not ASCII-only (ICU's English), when the
        // server has ICU: reads must not depend on the database's collation.
        let icu = format!(
            "CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C.UTF-8' \
             LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
        );
        if admin.execute(icu.as_str()).await.is_err() {
            admin
                .execute(format!("CREATE DATABASE \"{name}\"").as_str())
                .await
                .unwrap();
        }
        let mut url = url::Url::parse(&base).unwrap();
        url.set_path(&format!("/{name}"));
        let url = url.to_string();
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect(&url)
            .await
            .unwrap();
        pool.execute(FLUJO_TABLE).await.unwrap();
        Some(Db {
            admin,
            name,
            url,
            pool,
        })
    }

    async fn open(&self, read_only: bool) -> Store {
        Store::open_with(
            &self.url,
            StoreOptions {
                clock: Arc::new(FixedClock::new(now())),
                read_only,
                ..Default::default()
            },
        )
        .await
        .expect("open the PostgreSQL store")
    }

    async fn drop_now(self) {
        self.pool.close().await;
        let _ = self
            .admin
            .execute(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name).as_str())
            .await;
    }
}

/// Writes runs into flujo's table with plain SQL, as another writer would.
async fn insert(pool: &PgPool, states: &[WorkflowState]) {
    for s in states {
        let json = |v: &Value| serde_json::to_string(v).unwrap();
        sqlx::query(
            "INSERT INTO workflow_state (run_id, pipeline_id, pipeline_name, pipeline_version, current_step_index, \
             pipeline_context, last_step_output, step_history, status, created_at, updated_at, total_steps, \
             error_message, execution_time_ms, memory_usage_mb, metadata, is_background_task, parent_run_id, \
             task_id, background_error) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8::jsonb, $9, $10, $11, \
             $12, $13, $14, $15, $16::jsonb, $17, $18, $19, $20)",
        )
        .bind(&s.run_id)
        .bind(&s.pipeline_id)
        .bind(&s.pipeline_name)
        .bind(&s.pipeline_version)
        .bind(s.current_step_index as i32)
        .bind(json(&s.pipeline_context))
        .bind(s.last_step_output.as_ref().map(json))
        .bind((!s.step_history.is_null()).then(|| json(&s.step_history)))
        .bind(s.status.as_str())
        .bind(s.created_at.unwrap())
        .bind(s.updated_at.unwrap())
        .bind(s.total_steps as i32)
        .bind(&s.error_message)
        .bind(s.execution_time_ms.map(|v| v as i32))
        .bind(s.memory_usage_mb)
        .bind(s.extras.metadata.as_ref().map(json))
        .bind(s.extras.is_background_task)
        .bind(&s.extras.parent_run_id)
        .bind(&s.extras.task_id)
        .bind(&s.extras.background_error)
        .execute(pool)
        .await
        .unwrap_or_else(|e| panic!("inserting {}: {e}", s.run_id));
    }
}

/// Zero-sum noise in the counters' folded tables: keys whose slots cancel out (as a delete counted in another slot than
/// the insert leaves them), which every read must ignore.
async fn add_counter_noise(pool: &PgPool) {
    let hour = now().timestamp_micros().div_euclid(3_600_000_000);
    for (slot, n) in [(0i16, 2i64), (1, -2)] {
        for sql in [
            "INSERT INTO flowstate_counts_base (status_key, pipeline_key, slot, runs, timed, time_sum) \
             VALUES ('=ghost', '=ghostpipe', $1, $2, $2, $2 * 10 + $3 * 0)",
            "INSERT INTO flowstate_created_hourly_base (hour, status_key, slot, runs) VALUES ($3, '=ghost', $1, $2)",
            "INSERT INTO flowstate_updated_hourly_base (hour, pipeline_key, status_key, slot, runs) \
             VALUES ($3, '=ghostpipe', '=failed', $1, $2)",
            "INSERT INTO flowstate_exec_hist_base (pipeline_key, bucket, slot, runs) \
             VALUES ('=ghostpipe', 64 + $3 * 0, $1, $2)",
        ] {
            sqlx::query(sql)
                .bind(slot)
                .bind(n)
                .bind(hour)
                .execute(pool)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run(
    id: &str,
    pipeline: &str,
    status: Status,
    created: &str,
    updated: &str,
    error: Option<&str>,
    exec: Option<i64>,
) -> WorkflowState {
    let mut s = WorkflowState::new(id, pipeline);
    s.status = status;
    s.created_at = Some(at(created));
    s.updated_at = Some(at(updated));
    s.error_message = error.map(str::to_string);
    s.execution_time_ms = exec;
    s
}

/// Runs with every oddity both backends must read alike.
fn runs() -> Vec<WorkflowState> {
    use Status::*;
    let long_error = format!("ValueError: bad row {} — {}", "é".repeat(1500), "x".repeat(2000));
    let tie = "2026-03-10T10:00:00.000001Z";
    let mut out = vec![
        run(
            "run_a",
            "invoice",
            Completed,
            tie,
            "2026-03-10T10:05:00Z",
            None,
            Some(120),
        ),
        run(
            "run_B",
            "invoice",
            Completed,
            tie,
            "2026-03-10T10:06:00Z",
            None,
            Some(31),
        ),
        run(
            "run_Z",
            "invoice",
            Failed,
            tie,
            "2026-03-10T10:07:00Z",
            Some("TimeoutError: agent call exceeded 30s"),
            Some(30_000),
        ),
        run(
            "ärger-1",
            "Invoice",
            Failed,
            tie,
            "2026-03-10T11:00:00Z",
            Some("ÉCHEC: Timeout in step 'x'"),
            Some(32),
        ),
        run(
            "日本-run",
            "ünï",
            Running,
            "2026-03-10T12:00:00Z",
            "2026-03-10T12:30:00Z",
            None,
            None,
        ),
        run(
            "日本-2",
            "ünï",
            Paused,
            "2026-03-01T00:00:00Z",
            "2026-03-02T00:00:00Z",
            None,
            Some(0),
        ),
        run(
            "long",
            "invoice",
            Failed,
            "2026-03-09T12:01:00Z",
            "2026-03-09T12:05:00Z",
            Some(&long_error),
            Some(i64::from(i32::MAX)),
        ),
        run(
            "h1",
            "etl",
            Failed,
            "2026-03-09T11:00:00Z",
            "2026-03-09T12:20:00Z",
            Some("TimeoutError: agent call exceeded 5s"),
            Some(999),
        ),
        run(
            "h2",
            "etl",
            Failed,
            "2026-03-09T11:00:00Z",
            "2026-03-09T12:40:00Z",
            Some("RateLimitError: 429 (retry after 3s)"),
            Some(1000),
        ),
        run(
            "h3",
            "etl",
            Failed,
            "2026-03-09T11:00:00Z",
            "2026-03-09T12:59:59.999999Z",
            Some("RateLimitError: 429 (retry after 25s)"),
            Some(1001),
        ),
        run(
            "h4",
            "etl",
            Failed,
            "2026-03-09T11:00:00Z",
            "2026-03-09T13:00:00Z",
            Some(""),
            Some(5000),
        ),
        run(
            "h5",
            "etl",
            Completed,
            "2026-03-09T11:00:00Z",
            "2026-03-09T12:10:00Z",
            None,
            Some(64),
        ),
        run(
            "h6",
            "etl",
            Running,
            "2026-03-09T11:00:00Z",
            "2026-03-09T12:50:00Z",
            None,
            Some(65),
        ),
        run(
            "old-completed",
            "etl",
            Completed,
            "2026-01-01T00:00:00Z",
            "2026-01-02T00:00:00Z",
            None,
            Some(7),
        ),
        run(
            "old-failed",
            "invoice",
            Failed,
            "2026-01-01T00:00:00Z",
            "2026-02-01T00:00:00Z",
            Some("KeyError: 'total'"),
            Some(8),
        ),
        run(
            "old-cancelled",
            "invoice",
            Cancelled,
            "2025-12-01T00:00:00Z",
            "2025-12-01T00:00:00Z",
            None,
            None,
        ),
        run(
            "old-running",
            "etl",
            Running,
            "2025-12-01T00:00:00Z",
            "2025-12-02T00:00:00Z",
            None,
            None,
        ),
        run(
            "before-1970",
            "etl",
            Completed,
            "1969-12-31T23:59:59.999999Z",
            "1969-12-31T23:59:59.999999Z",
            None,
            Some(3),
        ),
        run(
            "year-1",
            "etl",
            Cancelled,
            "0001-01-01T00:00:00Z",
            "0001-01-01T00:00:00Z",
            None,
            None,
        ),
        run(
            "year-9999",
            "etl",
            Completed,
            "9999-12-31T23:59:59.999999Z",
            "9999-12-31T23:59:59.999999Z",
            None,
            Some(4),
        ),
    ];
    // Ties on the last update, ordered by run id in byte order ("tie_B" < "tie_Z" < "tie_a"): failed runs, live
    // runs (stuck), and runs a cleanup preview groups.
    for id in ["tie_a", "tie_B", "tie_Z"] {
        for (status, suffix) in [(Failed, "f"), (Running, "r"), (Paused, "p")] {
            out.push(run(
                &format!("{id}-{suffix}"),
                "ties",
                status.clone(),
                "2026-03-08T00:00:00Z",
                "2026-03-10T09:00:00Z",
                (status == Failed).then_some("Boom: 'x'"),
                None,
            ));
        }
    }
    // JSON of every shape.
    out[0].pipeline_context = json!({"b": 1, "a": [1, 2.5, {"x": null}], "s": "é\n\"q\"\t\\", "big": 12345678901234567890u64,
        "neg": -9223372036854775807i64, "small": 1.5e-7, "tenth": 0.1, "empty": {}, "list": []});
    out[0].last_step_output = Some(Value::Null);
    out[0].step_history = json!([{"name": "step", "output": {"k": [true, false]}}]);
    out[1].pipeline_context = Value::String("plain".into());
    out[1].last_step_output = Some(json!("text"));
    out[1].step_history = Value::Null;
    out[2].pipeline_context = Value::Null;
    out[3].pipeline_context = json!([1, "two", 3.25]);
    out[4].pipeline_context = json!({"large": "y".repeat(100_000)});
    let mut deep = json!(1);
    for _ in 0..90 {
        deep = json!([deep]);
    }
    out[5].pipeline_context = deep;
    for (s, m) in out.iter_mut().zip([12.5, 0.1, 256.3, 0.001, 1024.0, 3.75]) {
        s.memory_usage_mb = Some(m);
    }
    out[6].current_step_index = 7;
    out[6].total_steps = 9;
    out[6].pipeline_name = "Invoice Extraction ✓".into();
    out[6].pipeline_version = "2.0.0-β".into();
    // Many runs of one pipeline, for percentiles and pages.
    for i in 0..25 {
        out.push(run(
            &format!("bulk-{i:02}"),
            "bulk",
            if i % 5 == 0 {
                Status::Failed
            } else {
                Status::Completed
            },
            &format!("2026-03-{:02}T{:02}:00:00Z", 1 + i % 9, i % 24),
            &format!("2026-03-{:02}T{:02}:30:00Z", 1 + i % 9, i % 24),
            (i % 5 == 0).then_some("ConnectionError: host 10.0.0.1 unreachable"),
            Some(i * i * 37),
        ));
    }
    out
}

async fn sqlite_store(dir: &std::path::Path, states: &[WorkflowState]) -> Store {
    let (store, _) = common::open_at(&dir.join("ref.db"), now()).await;
    store.save_many(states).await.unwrap();
    store
}

/// Lists every page of `query` forward with cursors, then back from the last with `prev_cursor`s.
async fn walk(store: &Store, query: &ListQuery) -> Vec<Page> {
    let mut pages = Vec::new();
    let mut q = query.clone();
    loop {
        let page = store.list_workflows(&q).await.unwrap();
        let next = page.next_cursor.clone();
        pages.push(page);
        match next {
            Some(c) if pages.len() < 50 => q.cursor = Some(c),
            _ => break,
        }
    }
    let mut back = pages.last().and_then(|p| p.prev_cursor.clone());
    while let Some(c) = back {
        q.cursor = Some(c);
        let page = store.list_workflows(&q).await.unwrap();
        back = page.prev_cursor.clone();
        pages.push(page);
        if pages.len() > 100 {
            break;
        }
    }
    pages
}

fn queries() -> Vec<ListQuery> {
    let q = ListQuery::default;
    let mut out = vec![
        q(),
        ListQuery {
            limit: Some(3),
            ..q()
        },
        ListQuery {
            limit: Some(1),
            ..q()
        },
        ListQuery {
            limit: Some(4),
            offset: Some(2),
            ..q()
        },
        ListQuery {
            statuses: vec![Status::Failed],
            limit: Some(2),
            ..q()
        },
        ListQuery {
            statuses: vec![Status::Failed, Status::Cancelled],
            ..q()
        },
        ListQuery {
            statuses: vec![Status::Other(None)],
            ..q()
        },
        ListQuery {
            statuses: vec![Status::Other(None), Status::Running],
            ..q()
        },
        ListQuery {
            statuses: vec![Status::Other(Some("pending".into()))],
            ..q()
        },
        ListQuery {
            pipeline_id: Some("invoice".into()),
            limit: Some(2),
            ..q()
        },
        ListQuery {
            pipeline_id: Some("Invoice".into()),
            ..q()
        },
        ListQuery {
            pipeline_id: Some("ünï".into()),
            ..q()
        },
        ListQuery {
            created_after: Some(at("2026-03-09T11:00:00Z")),
            limit: Some(5),
            ..q()
        },
        ListQuery {
            created_before: Some(at("2026-03-09T11:00:00Z")),
            limit: Some(5),
            ..q()
        },
        ListQuery {
            updated_after: Some(at("2026-03-09T12:20:00Z")),
            updated_before: Some(at("2026-03-09T13:00:00Z")),
            ..q()
        },
        ListQuery {
            run_id_prefix: Some("run_".into()),
            limit: Some(2),
            ..q()
        },
        ListQuery {
            run_id_prefix: Some("日本".into()),
            ..q()
        },
        ListQuery {
            run_id_prefix: Some("ä".into()),
            ..q()
        },
        ListQuery {
            run_id_prefix: Some("RUN_".into()),
            ..q()
        },
        ListQuery {
            run_id_prefix: Some("%".into()),
            ..q()
        },
        ListQuery {
            error_contains: Some("timeout".into()),
            ..q()
        },
        ListQuery {
            error_contains: Some("TIMEOUT".into()),
            ..q()
        },
        ListQuery {
            error_contains: Some("échec".into()),
            ..q()
        },
        ListQuery {
            error_contains: Some("ÉCHEC".into()),
            ..q()
        },
        ListQuery {
            error_contains: Some("_".into()),
            ..q()
        },
        ListQuery {
            error_contains: Some("xxxxx".into()),
            ..q()
        },
        // (The background and parent filters need flujo's PostgreSQL-only columns, which the SQLite file of
        // this build lacks: `flujos_postgres_only_columns_are_read_and_filtered` checks them.)
        ListQuery {
            statuses: vec![Status::Completed],
            pipeline_id: Some("bulk".into()),
            created_after: Some(at("2026-03-02T00:00:00Z")),
            limit: Some(3),
            offset: Some(1),
            ..q()
        },
    ];
    for limit in [2, 5] {
        out.push(ListQuery {
            pipeline_id: Some("bulk".into()),
            limit: Some(limit),
            ..q()
        });
    }
    out
}

fn sinces() -> Vec<DateTime<Utc>> {
    vec![
        now() - Duration::hours(24),
        at("2026-03-09T12:00:00Z"),
        at("2026-03-09T12:10:00Z"),
        at("2026-03-09T12:40:00Z"),
        at("2026-03-09T13:00:00Z"),
        now() - Duration::minutes(30),
        now() - Duration::days(90),
        at("1960-01-01T00:00:00Z"),
    ]
}

/// The JSON of a head or a whole column as a value (the text differs: PostgreSQL's JSONB spelling).
fn value_of(text: Option<&str>) -> Option<Value> {
    text.map(|t| serde_json::from_str(t).unwrap_or_else(|e| panic!("{e}: {t}")))
}

/// Every read of `pg` against the same read of `sqlite`.
async fn compare(sqlite: &Store, pg: &Store, states: &[WorkflowState]) {
    // Whole runs.
    for s in states {
        let want = sqlite.load_state(&s.run_id).await.unwrap();
        assert_eq!(
            pg.load_state(&s.run_id).await.unwrap(),
            want,
            "load_state {}",
            s.run_id
        );
        assert!(want.is_some(), "the SQLite store keeps {}", s.run_id);
    }
    assert_eq!(pg.load_state("missing").await.unwrap(), None);
    // Pages and columns.
    for s in states {
        for max in [5usize, 1_000_000] {
            let want = sqlite.load_run_view(&s.run_id, max).await.unwrap().unwrap();
            let got = pg.load_run_view(&s.run_id, max).await.unwrap().unwrap();
            assert_eq!(got.summary, want.summary, "summary of {}", s.run_id);
            assert_eq!(
                got.error_message, want.error_message,
                "error head of {} at {max}",
                s.run_id
            );
            assert_eq!(
                (
                    got.is_background_task,
                    &got.parent_run_id,
                    &got.task_id,
                    &got.metadata,
                    &got.background_error
                ),
                (false, &None, &None, &None, &None)
            );
            for (g, w) in [
                (&got.pipeline_context, &want.pipeline_context),
                (&got.last_step_output, &want.last_step_output),
                (&got.step_history, &want.step_history),
            ] {
                assert_eq!(g.is_some(), w.is_some(), "{}", s.run_id);
                if let (Some(g), Some(w)) = (g, w) {
                    assert!(g.head.chars().count() <= max);
                    assert_eq!(g.is_whole(), w.is_whole(), "{}: {g:?} / {w:?}", s.run_id);
                    if g.is_whole() {
                        assert_eq!(value_of(Some(&g.head)), value_of(Some(&w.head)));
                    }
                }
            }
        }
        for column in [
            TextColumn::Context,
            TextColumn::LastOutput,
            TextColumn::StepHistory,
            TextColumn::ErrorMessage,
            TextColumn::Metadata,
            TextColumn::BackgroundError,
        ] {
            let got = pg.load_text_column(&s.run_id, column).await.unwrap().unwrap();
            let want = match column {
                TextColumn::Metadata | TextColumn::BackgroundError => None,
                _ => sqlite.load_text_column(&s.run_id, column).await.unwrap().unwrap(),
            };
            if column == TextColumn::ErrorMessage {
                assert_eq!(got, want);
            } else {
                assert_eq!(
                    value_of(got.as_deref()),
                    value_of(want.as_deref()),
                    "{column:?} of {}",
                    s.run_id
                );
            }
        }
    }
    assert_eq!(pg.load_run_view("missing", 10).await.unwrap(), None);
    assert_eq!(
        pg.load_text_column("missing", TextColumn::Context).await.unwrap(),
        None
    );
    // Exports, in batches.
    for batch in [1u32, 4, 1000] {
        let mut after: Option<String> = None;
        loop {
            let got = pg.export_runs(after.as_deref(), batch).await.unwrap();
            let want = sqlite.export_runs(after.as_deref(), batch).await.unwrap();
            assert_eq!(got, want, "export after {after:?} by {batch}");
            match got.last() {
                Some(last) => after = Some(last.run_id.clone()),
                None => break,
            }
        }
    }
    // Lists, every page both ways.
    for q in queries() {
        assert_eq!(walk(pg, &q).await, walk(sqlite, &q).await, "{q:?}");
    }
    // Failed runs.
    for (hours, limit) in [(1, 10), (24, 2), (24, 100), (24 * 365, 1000)] {
        assert_eq!(
            pg.get_failed_workflows(hours, limit).await.unwrap(),
            sqlite.get_failed_workflows(hours, limit).await.unwrap(),
            "failed {hours} h"
        );
    }
    // Cleanup previews.
    for policy in [
        CleanupPolicy::older_than_days(1),
        CleanupPolicy::older_than_days(30),
        CleanupPolicy::older_than_days(10_000),
        CleanupPolicy {
            statuses: vec![Status::Running, Status::Paused],
            ..CleanupPolicy::older_than_days(1)
        },
        CleanupPolicy {
            pipeline_id: Some("invoice".into()),
            ..CleanupPolicy::older_than_days(1)
        },
        CleanupPolicy {
            statuses: Status::KNOWN.to_vec(),
            ..CleanupPolicy::older_than_days(2)
        },
    ] {
        assert_eq!(
            pg.preview_cleanup(&policy).await.unwrap(),
            sqlite.preview_cleanup(&policy).await.unwrap(),
            "{policy:?}"
        );
    }
    // Stuck runs.
    for (idle, limit) in [
        (Duration::hours(1), 10),
        (Duration::minutes(30), 1),
        (Duration::days(100), 10),
    ] {
        assert_eq!(
            pg.stuck_runs(idle, limit).await.unwrap(),
            sqlite.stuck_runs(idle, limit).await.unwrap()
        );
    }
    // Pipelines and activity.
    assert_eq!(pg.pipelines().await.unwrap(), sqlite.pipelines().await.unwrap());
    for (bucket, n) in [
        (Bucket::Hour, 48),
        (Bucket::Hour, 1),
        (Bucket::Day, 40),
        (Bucket::Day, 1000),
    ] {
        assert_eq!(
            pg.activity(bucket, n).await.unwrap(),
            sqlite.activity(bucket, n).await.unwrap(),
            "{bucket:?} × {n}"
        );
    }
    // Failures: groups, one group, counts, rates.
    for since in sinces() {
        let want = sqlite.failure_groups(since).await.unwrap();
        assert_eq!(
            pg.failure_groups(since).await.unwrap(),
            want,
            "groups since {since}"
        );
        for g in &want.groups {
            for samples in [0, 2, 100] {
                assert_eq!(
                    pg.failure_group(since, &g.key, samples).await.unwrap(),
                    sqlite.failure_group(since, &g.key, samples).await.unwrap()
                );
            }
        }
        assert_eq!(pg.failure_group(since, "nope", 5).await.unwrap(), None);
        assert_eq!(
            pg.count_failed_since(since).await.unwrap(),
            sqlite.count_failed_since(since).await.unwrap(),
            "failed since {since}"
        );
        assert_eq!(
            pg.failure_rates(since).await.unwrap(),
            sqlite.failure_rates(since).await.unwrap(),
            "rates since {since}"
        );
    }
}

/// Nearest-rank percentiles computed here, from the runs.
fn exact(states: &[WorkflowState], pipeline: Option<&str>) -> flowstate_store::Percentiles {
    let mut v: Vec<i64> = states
        .iter()
        .filter(|s| pipeline.is_none_or(|p| s.pipeline_id == p))
        .filter_map(|s| s.execution_time_ms)
        .collect();
    v.sort_unstable();
    let count = v.len() as i64;
    if count == 0 {
        return Default::default();
    }
    let at = |p: f64| {
        let rank = flowstate_model::percentiles::nearest_rank(p, count).unwrap();
        Some(v[rank as usize - 1] as f64)
    };
    flowstate_store::Percentiles {
        count,
        p50: at(0.5),
        p95: at(0.95),
        p99: at(0.99),
        max: v.last().map(|m| *m as f64),
        relative_error: 0.0,
    }
}

/// Percentiles from the histogram: the same figures as SQLite's.
async fn same_histogram_percentiles(sqlite: &Store, pg: &Store) {
    for pipeline in [
        None,
        Some("bulk"),
        Some("etl"),
        Some("invoice"),
        Some("ünï"),
        Some("nope"),
    ] {
        assert_eq!(
            pg.execution_percentiles(pipeline).await.unwrap(),
            sqlite.execution_percentiles(pipeline).await.unwrap(),
            "{pipeline:?}"
        );
    }
    assert_eq!(
        pg.execution_percentiles_by_pipeline().await.unwrap(),
        sqlite.execution_percentiles_by_pipeline().await.unwrap()
    );
}

#[tokio::test]
async fn every_read_matches_sqlite_with_the_counters() {
    let Some(db) = Db::fresh("counters").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let states = runs();
    let sqlite = sqlite_store(dir.path(), &states).await;
    // Half the runs are flujo's, there before flowstate migrates the database (the migration counts them), half
    // are saved through the store (the triggers count them).
    let (before, after) = states.split_at(states.len() / 2);
    insert(&db.pool, before).await;
    let pg = db.open(false).await;
    assert!(pg.has_counters());
    pg.save_many(after).await.unwrap();
    add_counter_noise(&db.pool).await;
    compare(&sqlite, &pg, &states).await;
    same_histogram_percentiles(&sqlite, &pg).await;
    // A cleanup deletes what its preview showed, on both; the counters follow the deletes, and every read still
    // matches over the runs left.
    for policy in [
        CleanupPolicy::older_than_days(30),
        CleanupPolicy {
            statuses: vec![Status::Failed],
            ..CleanupPolicy::older_than_days(1)
        },
    ] {
        let preview = pg.preview_cleanup(&policy).await.unwrap();
        assert_eq!(preview, sqlite.preview_cleanup(&policy).await.unwrap());
        assert!(preview.matched > 0, "{policy:?}");
        assert_eq!(
            pg.cleanup_old_workflows(&policy).await.unwrap(),
            preview.matched as u64
        );
        assert_eq!(
            sqlite.cleanup_old_workflows(&policy).await.unwrap(),
            preview.matched as u64
        );
    }
    let mut left = Vec::new();
    for s in &states {
        if sqlite.load_state(&s.run_id).await.unwrap().is_some() {
            left.push(s.clone());
        }
    }
    assert!(left.len() < states.len());
    compare(&sqlite, &pg, &left).await;
    same_histogram_percentiles(&sqlite, &pg).await;
    pg.close().await;
    sqlite.close().await;
    db.drop_now().await;
}

#[tokio::test]
async fn every_read_matches_sqlite_without_the_counters() {
    let Some(db) = Db::fresh("plain").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let states = runs();
    let sqlite = sqlite_store(dir.path(), &states).await;
    insert(&db.pool, &states).await;
    // flujo's database opened read-only: nothing added, so no counters.
    let pg = db.open(true).await;
    assert!(!pg.has_counters());
    compare(&sqlite, &pg, &states).await;
    // Exact percentiles from the index.
    for pipeline in [
        None,
        Some("bulk"),
        Some("etl"),
        Some("invoice"),
        Some("ünï"),
        Some("nope"),
    ] {
        assert_eq!(
            pg.execution_percentiles(pipeline).await.unwrap(),
            exact(&states, pipeline),
            "{pipeline:?}"
        );
    }
    let mut want: Vec<(String, flowstate_store::Percentiles)> = ["bulk", "etl", "invoice", "Invoice", "ünï"]
        .iter()
        .map(|p| (p.to_string(), exact(&states, Some(p))))
        .filter(|(_, p)| p.count > 0)
        .collect();
    want.sort_by(|a, b| b.1.count.cmp(&a.1.count).then_with(|| a.0.cmp(&b.0)));
    assert_eq!(pg.execution_percentiles_by_pipeline().await.unwrap(), want);
    // No audit table: an empty log.
    assert_eq!(pg.audit_log(10).await.unwrap(), vec![]);
    pg.close().await;
    sqlite.close().await;
    db.drop_now().await;
}

#[tokio::test]
async fn flujos_postgres_only_columns_are_read_and_filtered() {
    let Some(db) = Db::fresh("extras").await else {
        return;
    };
    let mut parent = run(
        "parent",
        "p",
        Status::Running,
        "2026-03-10T10:00:00Z",
        "2026-03-10T10:00:00Z",
        None,
        None,
    );
    parent.extras.metadata = Some(json!({"owner": "ops", "tags": ["a", "b"], "n": 1.5}));
    let mut child = run(
        "child",
        "p",
        Status::Failed,
        "2026-03-10T10:01:00Z",
        "2026-03-10T10:02:00Z",
        Some("boom"),
        None,
    );
    child.extras = RunExtras {
        metadata: None,
        is_background_task: true,
        parent_run_id: Some("parent".into()),
        task_id: Some("task-7".into()),
        background_error: Some("BackgroundError: ".to_string() + &"ü".repeat(50)),
    };
    let plain = run(
        "plain",
        "p",
        Status::Completed,
        "2026-03-10T10:03:00Z",
        "2026-03-10T10:03:00Z",
        None,
        None,
    );
    let states = vec![parent.clone(), child.clone(), plain.clone()];
    insert(&db.pool, &states).await;
    // A row another writer left with is_background_task NULL reads as false.
    sqlx::query("UPDATE workflow_state SET is_background_task = NULL WHERE run_id = 'plain'")
        .execute(&db.pool)
        .await
        .unwrap();
    let pg = db.open(true).await;
    for s in &states {
        assert_eq!(pg.load_state(&s.run_id).await.unwrap().as_ref(), Some(s));
    }
    let view = pg.load_run_view("child", 10).await.unwrap().unwrap();
    assert!(view.is_background_task);
    assert_eq!(view.parent_run_id.as_deref(), Some("parent"));
    assert_eq!(view.task_id.as_deref(), Some("task-7"));
    let bg = view.background_error.unwrap();
    assert_eq!(bg.head, "Background");
    assert_eq!(bg.total_bytes, 17 + 100);
    let view = pg.load_run_view("parent", 1000).await.unwrap().unwrap();
    let meta = view.metadata.unwrap();
    assert!(meta.is_whole());
    assert_eq!(value_of(Some(&meta.head)), parent.extras.metadata);
    assert_eq!(
        value_of(
            pg.load_text_column("parent", TextColumn::Metadata)
                .await
                .unwrap()
                .unwrap()
                .as_deref()
        ),
        parent.extras.metadata
    );
    assert_eq!(
        pg.load_text_column("child", TextColumn::BackgroundError)
            .await
            .unwrap()
            .unwrap(),
        child.extras.background_error
    );
    let store = &pg;
    let list = |q: ListQuery| async move {
        let page = store.list_workflows(&q).await.unwrap();
        page.runs.into_iter().map(|r| r.run_id).collect::<Vec<_>>()
    };
    assert_eq!(
        list(ListQuery {
            background: Some(true),
            ..Default::default()
        })
        .await,
        ["child"]
    );
    assert_eq!(
        list(ListQuery {
            background: Some(false),
            ..Default::default()
        })
        .await,
        ["plain", "parent"]
    );
    assert_eq!(
        list(ListQuery {
            parent_run_id: Some("parent".into()),
            ..Default::default()
        })
        .await,
        ["child"]
    );
    assert_eq!(pg.export_runs(None, 10).await.unwrap().len(), 3);
    pg.close().await;
    db.drop_now().await;
}

#[tokio::test]
async fn timestamps_no_instant_can_hold_read_as_unknown_and_page_through() {
    let Some(db) = Db::fresh("infinity").await else {
        return;
    };
    let states: Vec<WorkflowState> = (0..4)
        .map(|i| {
            run(
                &format!("r{i}"),
                "p",
                Status::Completed,
                "2026-03-10T10:00:00Z",
                "2026-03-01T00:00:00Z",
                None,
                Some(i),
            )
        })
        .collect();
    insert(&db.pool, &states).await;
    // Another client (psql) can store what no DateTime holds: the infinities, a year past chrono's range.
    sqlx::query(
        "UPDATE workflow_state SET created_at = CASE run_id WHEN 'r0' THEN 'infinity'::timestamptz \
         WHEN 'r1' THEN '-infinity' WHEN 'r2' THEN '280000-01-01' ELSE created_at END, \
         updated_at = CASE WHEN run_id IN ('r0', 'r1') THEN '-infinity'::timestamptz ELSE updated_at END",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let pg = db.open(true).await;
    let r0 = pg.load_state("r0").await.unwrap().unwrap();
    assert_eq!((r0.created_at, r0.updated_at), (None, None));
    assert_eq!(pg.load_state("r2").await.unwrap().unwrap().created_at, None);
    // Newest first: infinity, year 280000, 2026, -infinity; one per page, forward then back, nothing repeated.
    let q = ListQuery {
        limit: Some(1),
        ..Default::default()
    };
    let pages = walk(&pg, &q).await;
    let order: Vec<&str> = pages
        .iter()
        .flat_map(|p| p.runs.iter().map(|r| r.run_id.as_str()))
        .collect();
    assert_eq!(order, ["r0", "r2", "r3", "r1", "r3", "r2", "r0"]);
    // A run last updated at -infinity is never old enough to clean up, nor stuck.
    let preview = pg
        .preview_cleanup(&CleanupPolicy::older_than_days(1))
        .await
        .unwrap();
    assert_eq!(preview.matched, 2);
    assert_eq!(preview.oldest_updated_at, Some(at("2026-03-01T00:00:00Z")));
    // A hostile cursor key far outside any instant is no error.
    for key in [i64::MIN, i64::MAX, -1] {
        let cursor = base64_cursor(key, "r1");
        assert!(pg
            .list_workflows(&ListQuery {
                cursor: Some(cursor),
                ..Default::default()
            })
            .await
            .is_ok());
    }
    pg.close().await;
    db.drop_now().await;
}

/// A cursor as the store spells it (`v2:a:<key>:<run id>`, URL-safe base64 without padding).
fn base64_cursor(key: i64, run_id: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("v2:a:{key}:{run_id}"))
}

#[tokio::test]
async fn the_audit_log_reads_newest_first() {
    let Some(db) = Db::fresh("audit").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sqlite = sqlite_store(dir.path(), &[]).await;
    db.pool
        .execute(
            "CREATE TABLE IF NOT EXISTS flowstate_audit (id bigserial PRIMARY KEY, at timestamptz, actor text, \
             action text, detail jsonb, matched int8, affected int8)",
        )
        .await
        .unwrap();
    let entries = [
        (
            "admin",
            "cleanup",
            json!({"older_than_days": 30, "statuses": ["failed"]}),
            Some(12),
            12,
        ),
        ("cli", "delete_run", json!({"run_id": "日本"}), None, 1),
        ("local", "cleanup", json!(null), Some(0), 0),
    ];
    for (actor, action, detail, matched, affected) in &entries {
        sqlite
            .record_audit(actor, action, detail, *matched, *affected)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO flowstate_audit (at, actor, action, detail, matched, affected) VALUES ($1, $2, $3, $4::jsonb, $5, $6)",
        )
        .bind(now())
        .bind(actor)
        .bind(action)
        .bind(detail.to_string())
        .bind(matched)
        .bind(affected)
        .execute(&db.pool)
        .await
        .unwrap();
    }
    let pg = db.open(true).await;
    for limit in [1, 2, 10] {
        assert_eq!(
            pg.audit_log(limit).await.unwrap(),
            sqlite.audit_log(limit).await.unwrap()
        );
    }
    pg.close().await;
    sqlite.close().await;
    db.drop_now().await;
}
