//! One test, both backends: [`both_backends!`] turns each test written once against a [`TestDb`] into two tests,
//! `sqlite::NAME` (a temporary file) and `postgres::NAME` (a fresh database on the server named by
//! `FLOWSTATE_TEST_PG`, which `./x test` starts; without it the PostgreSQL twin prints `SKIPPED <why>` and passes).
//!
//! A [`TestDb`] is an empty database of either kind. Tests open the store on it ([`TestDb::open_at`]) and write as
//! another process would ([`TestDb::other_writer_save`]: flujo's own statement for that backend), so what they
//! assert holds whoever writes the table.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use flowstate_store::{BackendKind, FixedClock, Store, StoreOptions};
use sqlx::{Connection, PgConnection};

/// An empty database for one test: a file in a temporary folder, or a database of its own on the test server.
pub struct TestDb {
    /// Which backend.
    pub kind: BackendKind,
    /// What `Store::open` takes: the file's path, or the database's URL.
    pub location: String,
    _dir: Option<tempfile::TempDir>,
}

/// A run as another writer (flujo) saves it: every column, timestamps as RFC 3339 instants.
#[derive(Debug, Clone)]
pub struct OtherRow<'a> {
    pub run_id: &'a str,
    pub pipeline_id: &'a str,
    pub status: &'a str,
    pub created_at: &'a str,
    pub updated_at: &'a str,
    pub error_message: Option<&'a str>,
    pub execution_time_ms: Option<i64>,
}

impl TestDb {
    /// An empty database of `kind`, or `None` (after printing `SKIPPED <why>`) when that backend cannot run here.
    pub async fn new(kind: BackendKind, test: &str) -> Option<TestDb> {
        match kind {
            BackendKind::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary folder");
                let path = dir.path().join(format!("{test}.db"));
                Some(TestDb {
                    kind,
                    location: path.to_string_lossy().into_owned(),
                    _dir: Some(dir),
                })
            }
            BackendKind::Postgres => {
                let location = flowstate_testkit::pg::fresh_database_or_skip(test).await?;
                Some(TestDb {
                    kind,
                    location,
                    _dir: None,
                })
            }
        }
    }

    /// True on PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.kind == BackendKind::Postgres
    }

    /// The store on this database with its clock at `now`.
    pub async fn open_at(&self, now: DateTime<Utc>) -> (Store, FixedClock) {
        let clock = FixedClock::new(now);
        let store = self
            .open_with(StoreOptions {
                clock: Arc::new(clock.clone()),
                ..Default::default()
            })
            .await;
        (store, clock)
    }

    /// The store on this database with `options`.
    pub async fn open_with(&self, options: StoreOptions) -> Store {
        let store = Store::open_with(&self.location, options)
            .await
            .unwrap_or_else(|e| panic!("opening {}: {e}", self.location));
        assert_eq!(store.backend(), self.kind);
        store
    }

    /// Saves a whole row as flujo does on this backend, on a connection of its own: `INSERT OR REPLACE` with
    /// text timestamps on SQLite (flujo 0.4.35), `INSERT ... ON CONFLICT (run_id) DO UPDATE` of every column
    /// but the creation time on PostgreSQL (flujo's PostgresBackend).
    pub async fn other_writer_save(&self, row: &OtherRow<'_>) {
        match self.kind {
            BackendKind::Sqlite => {
                let mut conn = super::raw(std::path::Path::new(&self.location)).await;
                sqlx::query(
                    "INSERT OR REPLACE INTO workflow_state (run_id, pipeline_id, pipeline_name, pipeline_version, \
                     current_step_index, pipeline_context, last_step_output, status, created_at, updated_at, \
                     total_steps, error_message, execution_time_ms, memory_usage_mb, step_history) \
                     VALUES (?1, ?2, ?2, '1.0', 1, '{\"k\": 1}', NULL, ?3, ?4, ?5, 3, ?6, ?7, 1.5, '[]')",
                )
                .bind(row.run_id)
                .bind(row.pipeline_id)
                .bind(row.status)
                .bind(row.created_at)
                .bind(row.updated_at)
                .bind(row.error_message)
                .bind(row.execution_time_ms)
                .execute(&mut conn)
                .await
                .unwrap();
                conn.close().await.unwrap();
            }
            BackendKind::Postgres => {
                let mut conn = PgConnection::connect(&self.location).await.unwrap();
                sqlx::query(
                    "INSERT INTO workflow_state (run_id, pipeline_id, pipeline_name, pipeline_version, \
                     current_step_index, pipeline_context, last_step_output, step_history, status, created_at, \
                     updated_at, total_steps, error_message, execution_time_ms, memory_usage_mb, metadata, \
                     is_background_task, parent_run_id, task_id, background_error) \
                     VALUES ($1, $2, $2, '1.0', 1, '{\"k\": 1}', NULL, '[]', $3, $4::timestamptz, $5::timestamptz, \
                     3, $6, $7, 1.5, NULL, FALSE, NULL, NULL, NULL) \
                     ON CONFLICT (run_id) DO UPDATE SET pipeline_id = EXCLUDED.pipeline_id, \
                     pipeline_name = EXCLUDED.pipeline_name, pipeline_version = EXCLUDED.pipeline_version, \
                     current_step_index = EXCLUDED.current_step_index, pipeline_context = EXCLUDED.pipeline_context, \
                     last_step_output = EXCLUDED.last_step_output, step_history = EXCLUDED.step_history, \
                     status = EXCLUDED.status, updated_at = EXCLUDED.updated_at, total_steps = EXCLUDED.total_steps, \
                     error_message = EXCLUDED.error_message, execution_time_ms = EXCLUDED.execution_time_ms, \
                     memory_usage_mb = EXCLUDED.memory_usage_mb, metadata = EXCLUDED.metadata, \
                     is_background_task = EXCLUDED.is_background_task, parent_run_id = EXCLUDED.parent_run_id, \
                     task_id = EXCLUDED.task_id, background_error = EXCLUDED.background_error",
                )
                .bind(row.run_id)
                .bind(row.pipeline_id)
                .bind(row.status)
                .bind(row.created_at)
                .bind(row.updated_at)
                .bind(row.error_message)
                .bind(row.execution_time_ms.map(|v| v as i32))
                .execute(&mut conn)
                .await
                .unwrap();
                conn.close().await.unwrap();
            }
        }
    }

    /// Deletes a run as another writer does (`DELETE ... WHERE run_id = ?`).
    pub async fn other_writer_delete(&self, run_id: &str) {
        match self.kind {
            BackendKind::Sqlite => {
                let mut conn = super::raw(std::path::Path::new(&self.location)).await;
                sqlx::query("DELETE FROM workflow_state WHERE run_id = ?1")
                    .bind(run_id)
                    .execute(&mut conn)
                    .await
                    .unwrap();
                conn.close().await.unwrap();
            }
            BackendKind::Postgres => {
                let mut conn = PgConnection::connect(&self.location).await.unwrap();
                sqlx::query("DELETE FROM workflow_state WHERE run_id = $1")
                    .bind(run_id)
                    .execute(&mut conn)
                    .await
                    .unwrap();
                conn.close().await.unwrap();
            }
        }
    }
}

/// Writes each test once for both backends: `both_backends! { async fn name(db) { ... } ... }` makes
/// `sqlite::name` and `postgres::name`, each with `db: TestDb` empty.
#[macro_export]
macro_rules! both_backends {
    ($( $(#[$meta:meta])* async fn $name:ident($db:ident) $body:block )*) => {
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(
                $(#[$meta])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let $db = common::backends::TestDb::new(flowstate_store::BackendKind::Sqlite, stringify!($name))
                        .await
                        .expect("SQLite always runs");
                    $body
                }
            )*
        }
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $(
                $(#[$meta])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some($db) =
                        common::backends::TestDb::new(flowstate_store::BackendKind::Postgres, stringify!($name)).await
                    else {
                        return;
                    };
                    $body
                }
            )*
        }
    };
}
