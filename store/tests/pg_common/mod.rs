//! PostgreSQL helpers of pgcore's tests: a fresh database per test on the server `FLOWSTATE_TEST_PG` names (any
//! database URL of a superuser), flujo's table as flujo creates it. (The `flowstate-testkit` crate does the same
//! for the suite; these tests keep their own small copy until it is merged.)
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::{Connection, PgConnection};

/// The test server's URL, or `None` after printing `SKIPPED <why>`.
pub fn server_or_skip(test: &str) -> Option<String> {
    match std::env::var("FLOWSTATE_TEST_PG")
        .ok()
        .filter(|u| !u.trim().is_empty())
    {
        Some(url) => Some(url),
        None => {
            println!("SKIPPED {test}: FLOWSTATE_TEST_PG is not set (the URL of a PostgreSQL test server)");
            None
        }
    }
}

/// `url` with its database replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let mut u = url::Url::parse(url).expect("FLOWSTATE_TEST_PG is a URL");
    u.set_path(&format!("/{name}"));
    u.to_string()
}

/// A new, empty database on the test server; its URL.
pub async fn fresh_database(server: &str, hint: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let name = format!(
        "fs_{}_{}_{}_{nanos}",
        hint.chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(20)
            .collect::<String>()
            .to_lowercase(),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let mut conn = PgConnection::connect(server)
        .await
        .expect("the test server answers");
    sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .expect("CREATE DATABASE");
    conn.close().await.ok();
    with_database(server, &name)
}

/// A fresh database, or `None` (SKIPPED printed) without a test server.
pub async fn fresh_or_skip(test: &str) -> Option<String> {
    let server = server_or_skip(test)?;
    Some(fresh_database(&server, test).await)
}

/// Drops a test database (its sessions closed first).
pub async fn drop_database(url: &str) {
    let name = url::Url::parse(url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_string();
    if let Ok(mut conn) = PgConnection::connect(&with_database(url, "postgres")).await {
        let _ = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut conn)
            .await;
    }
}

/// A connection of the test's own (a superuser's), for raw SQL.
pub async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url).await.expect("connect")
}

/// flujo 0.6.11's `workflow_state` DDL and indexes, as its PostgresBackend runs them (written out here from the
/// facts of its layout, not from flowstate's code), plus its bookkeeping table.
pub const FLUJO_DDL: &str = r#"
CREATE TABLE IF NOT EXISTS flujo_schema_versions (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS workflow_state (
    run_id TEXT PRIMARY KEY,
    pipeline_id TEXT NOT NULL,
    pipeline_name TEXT NOT NULL,
    pipeline_version TEXT NOT NULL,
    current_step_index INTEGER NOT NULL,
    pipeline_context JSONB,
    last_step_output JSONB,
    step_history JSONB,
    status TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    total_steps INTEGER DEFAULT 0,
    error_message TEXT,
    execution_time_ms INTEGER,
    memory_usage_mb REAL,
    metadata JSONB,
    is_background_task BOOLEAN DEFAULT FALSE,
    parent_run_id TEXT,
    task_id TEXT,
    background_error TEXT
);
CREATE INDEX IF NOT EXISTS idx_workflow_state_status ON workflow_state(status);
CREATE INDEX IF NOT EXISTS idx_workflow_state_pipeline_id ON workflow_state(pipeline_id);
CREATE INDEX IF NOT EXISTS idx_workflow_state_parent_run_id ON workflow_state(parent_run_id);
CREATE INDEX IF NOT EXISTS idx_workflow_state_created_at ON workflow_state(created_at);
CREATE INDEX IF NOT EXISTS idx_runs_context_gin ON workflow_state USING GIN (pipeline_context);
CREATE INDEX IF NOT EXISTS idx_workflow_state_metadata_gin ON workflow_state USING GIN (metadata);
INSERT INTO flujo_schema_versions (version, applied_at) VALUES (1, now()) ON CONFLICT DO NOTHING;
"#;

/// flujo's save: one `INSERT ... ON CONFLICT (run_id) DO UPDATE` of every column but run_id and created_at.
pub const FLUJO_UPSERT: &str = "INSERT INTO workflow_state (run_id, pipeline_id, pipeline_name, pipeline_version, \
    current_step_index, pipeline_context, last_step_output, step_history, status, created_at, updated_at, \
    total_steps, error_message, execution_time_ms, memory_usage_mb, metadata, is_background_task, parent_run_id, \
    task_id, background_error) VALUES ($1, $2, $2, '1', 0, '{}'::jsonb, NULL, '[]'::jsonb, $3, $4, $5, 0, $6, $7, \
    NULL, NULL, FALSE, NULL, NULL, NULL) ON CONFLICT (run_id) DO UPDATE SET pipeline_id = EXCLUDED.pipeline_id, \
    pipeline_name = EXCLUDED.pipeline_name, pipeline_version = EXCLUDED.pipeline_version, \
    current_step_index = EXCLUDED.current_step_index, pipeline_context = EXCLUDED.pipeline_context, \
    last_step_output = EXCLUDED.last_step_output, step_history = EXCLUDED.step_history, status = EXCLUDED.status, \
    updated_at = EXCLUDED.updated_at, total_steps = EXCLUDED.total_steps, error_message = EXCLUDED.error_message, \
    execution_time_ms = EXCLUDED.execution_time_ms, memory_usage_mb = EXCLUDED.memory_usage_mb, \
    metadata = EXCLUDED.metadata, is_background_task = EXCLUDED.is_background_task, \
    parent_run_id = EXCLUDED.parent_run_id, task_id = EXCLUDED.task_id, background_error = EXCLUDED.background_error";
