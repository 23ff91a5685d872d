//! # flowstate-store
//!
//! The state backend for durable workflow runs: one table, `workflow_state`, exactly as the Python framework
//! flujo lays it out, in a SQLite file (flujo 0.4.35's layout) or a PostgreSQL database (flujo's
//! `PostgresBackend` layout), so flowstate and flujo can share a database in both directions, with the parts flujo
//! gets wrong done right:
//!
//! - every time window (last 24 h, older than N days, a range) counts by the **real instant**, whatever spelling
//!   or offset the stored text has ([`time`]);
//! - lists are ordered by that instant with the run id as tie-breaker, in keyset pages;
//! - a cleanup measures age on **last activity** and deletes only terminal runs unless told otherwise, in small
//!   batches, after a preview with the same policy;
//! - a file that cannot be used is an error and is **never** renamed, moved, truncated or replaced.
//!
//! ```no_run
//! use flowstate_store::{CleanupPolicy, ListQuery, Status, Store, WorkflowState};
//!
//! # async fn demo() -> Result<(), flowstate_store::StoreError> {
//! let store = Store::open("workflow_state.db").await?; // creates, sets WAL, migrates
//!
//! let mut run = WorkflowState::new("run_1", "invoice-extraction");
//! run.status = Status::Failed;
//! run.error_message = Some("TimeoutError: agent call exceeded 30s".into());
//! store.save_state(&run).await?;
//!
//! let failed = store
//!     .list_workflows(&ListQuery { statuses: vec![Status::Failed], ..Default::default() })
//!     .await?;
//! println!("{} failed runs on the first page", failed.runs.len());
//!
//! let stats = store.get_workflow_stats().await?;
//! println!("{} runs, {} in the last 24 h", stats.total_workflows, stats.recent_workflows_24h);
//!
//! let policy = CleanupPolicy::older_than_days(30);
//! let preview = store.preview_cleanup(&policy).await?;
//! println!("a cleanup would delete {} runs", preview.matched);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod backend;
pub mod bulk;
pub mod counters;
pub mod demo;
mod error;
pub mod insights;
mod model;
pub mod pipelines;
pub mod postgres;
pub mod schema;
pub mod space;
mod sqlite;
mod store;
pub mod time;
mod validate;

pub use bulk::{BulkBatch, BulkNote, BulkSource, CopiedRange, RangeNote};
pub use counters::{CounterCheck, CounterDifference};
pub use error::{Result, StoreError};
pub use flowstate_model::limits::{
    MAX_ERROR_BYTES, MAX_JSON_BYTES, MAX_JSON_DEPTH, MAX_LOOKUP_ID_BYTES, MAX_NAME_BYTES, MAX_RUN_ID_BYTES,
};
pub use insights::{
    ActivityBucket, AuditEntry, Bucket, FailureGroup, FailureReport, FailureScope, Percentiles,
    PipelineFailureRate, StuckRuns, VersionFailureRate,
};
pub use model::{
    CleanupPolicy, CleanupPreview, ListQuery, ListSort, Page, RunCount, RunExtras, RunSummary, RunView,
    Status, TextColumn, TextHead, UnknownStatus, WorkflowState, WorkflowStats,
};
pub use schema::{MigrationReport, SchemaKind, SCHEMA_VERSION};
pub use space::{CleanupBytes, Reclaimed, SpaceUse};
pub use store::{
    BackendKind, Durability, Location, RecordedChange, Store, StoreOptions, WriteStats, CLEANUP_BATCH,
    CLEANUP_BATCH_TARGET,
};
pub use time::{Clock, FixedClock, SystemClock};
