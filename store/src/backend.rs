//! The contract between the facade ([`crate::Store`]) and a backend ([`crate::sqlite`], [`crate::postgres`]).
//!
//! The facade validates every argument ([`crate::validate`]) and then calls one of these methods; a backend
//! receives only values that passed, and owns nothing but its SQL, its connections and its way of keeping the
//! counters. Every method means the same on both backends: the store's test suite runs each test on both.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::bulk::BulkNote;
use crate::insights::{ActivityBucket, AuditEntry, Bucket, FailureReport, StuckRuns};
use crate::space::{CleanupBytes, Reclaimed, SpaceUse};
use crate::validate::{ValidCleanup, ValidList, ValidState};
use crate::{
    CleanupPreview, CounterCheck, MigrationReport, Percentiles, Result, RunCount, RunSummary, RunView,
    TextColumn, WorkflowState, WorkflowStats,
};

/// What every backend does. Implemented by `SqliteStore` and `PgStore`; the facade dispatches on an enum of the
/// two, so these futures keep their concrete types (and are `Send`).
///
/// The trait is the compile-time contract: each backend implements it by forwarding to inherent methods of the same
/// names, which are what the facade's calls resolve to (so rustc may see the trait's own methods as unused).
#[allow(async_fn_in_trait, dead_code)]
pub(crate) trait Backend {
    /// What opening it changed in the database.
    fn migration(&self) -> &MigrationReport;
    /// The overview figures come from counters kept on each write, not from counting rows.
    fn has_counters(&self) -> bool;
    /// Closes every connection; saves already made are written first.
    async fn close(&self);

    /// Inserts or replaces whole rows, all in one transaction (one row: a plain save). `now` fills a missing
    /// `updated_at`, and `created_at` of a new run when none is given; an existing run keeps its creation time
    /// unless one is given. The rows are of distinct runs.
    async fn save(&self, rows: Vec<ValidState>, now: DateTime<Utc>) -> Result<()>;
    /// Drops the counters' triggers and every index but the primary key, for a bulk load ([`crate::bulk`]).
    async fn begin_bulk(&self) -> Result<()>;
    /// Inserts or replaces whole rows into the bare table in one transaction, with `note` (an audit entry's new
    /// detail and counts) in the same transaction.
    async fn bulk_write(
        &self,
        rows: Vec<ValidState>,
        now: DateTime<Utc>,
        note: Option<&BulkNote>,
    ) -> Result<()>;
    /// Builds the indexes, triggers and counters a bulk load left out (the migration); what it changed.
    async fn finish_bulk(&self) -> Result<MigrationReport>;
    /// Every column of a run.
    async fn load_state(&self, run_id: &str) -> Result<Option<WorkflowState>>;
    /// A run for its page, large columns cut at `max_chars` characters.
    async fn load_run_view(&self, run_id: &str, max_chars: i64) -> Result<Option<RunView>>;
    /// One large column whole, as stored.
    async fn load_text_column(&self, run_id: &str, column: TextColumn) -> Result<Option<Option<String>>>;
    /// Whole runs in run-id order (byte order of the id), the first `limit` after `after` (from the start when
    /// `None`): what `flowstate copy` moves, in keyset batches.
    async fn export(&self, after: Option<&str>, limit: u32) -> Result<Vec<WorkflowState>>;
    /// Deletes a run; true when it existed.
    async fn delete_state(&self, run_id: &str) -> Result<bool>;
    /// At most `limit + 1` runs of a page, each with its cursor key (creation instant in microseconds), newest
    /// first (oldest first when the cursor goes back).
    async fn list(&self, list: &ValidList<'_>) -> Result<Vec<(i64, RunSummary)>>;
    /// How many runs the list's filters match (exact, or a lower bound past a bound or a time budget).
    async fn count(&self, list: &ValidList<'_>) -> Result<RunCount>;
    /// The overview's four figures from one snapshot; `recent_since` bounds "recent".
    async fn stats(&self, recent_since: DateTime<Utc>) -> Result<WorkflowStats>;
    /// Failed runs updated at or after `since`, newest update first.
    async fn failed(&self, since: DateTime<Utc>, limit: u32) -> Result<Vec<RunSummary>>;
    /// What a cleanup would delete now.
    async fn preview_cleanup(&self, cleanup: &ValidCleanup) -> Result<CleanupPreview>;
    /// Deletes what a cleanup matches, in short batches; the number deleted.
    async fn cleanup(&self, cleanup: &ValidCleanup) -> Result<u64>;

    /// Running or paused runs last updated before `idle_since`.
    async fn stuck_runs(&self, idle_since: DateTime<Utc>, limit: u32) -> Result<StuckRuns>;
    /// Execution-time percentiles, overall or of one pipeline.
    async fn execution_percentiles(&self, pipeline_id: Option<&str>) -> Result<Percentiles>;
    /// Every pipeline's percentiles, busiest first.
    async fn execution_percentiles_by_pipeline(&self) -> Result<Vec<(String, Percentiles)>>;
    /// Every pipeline id, sorted.
    async fn pipelines(&self) -> Result<Vec<String>>;
    /// Runs created per bucket and status: `buckets` buckets of `bucket`, the first starting at `first`.
    async fn activity(
        &self,
        bucket: Bucket,
        first: DateTime<Utc>,
        buckets: u32,
    ) -> Result<Vec<ActivityBucket>>;
    /// Failures grouped by signature (only the group `only_key` when given), `samples` sample runs per group,
    /// of the runs `scope` covers.
    async fn group_failures(
        &self,
        since: DateTime<Utc>,
        samples: usize,
        only_key: Option<&str>,
        scope: &crate::insights::FailureScope,
    ) -> Result<FailureReport>;
    /// Per version of `pipeline`: `(version, status key, runs, newest update in µs)` among runs last updated at
    /// or after `since`.
    async fn version_counts(
        &self,
        since: DateTime<Utc>,
        pipeline: &str,
    ) -> Result<Vec<crate::insights::VersionCount>>;
    /// Runs failed (by last update) at or after `since`.
    async fn count_failed_since(&self, since: DateTime<Utc>) -> Result<i64>;
    /// Per pipeline: runs, finished runs and failed runs among those last updated at or after `since` (any
    /// order).
    async fn failure_counts(&self, since: DateTime<Utc>) -> Result<Vec<crate::insights::FailureCount>>;
    /// The Pipelines page's counter rows of a window: hours `[first_hour, first_day * 24)`, days from `first_day`.
    async fn pipeline_window(&self, first_hour: i64, first_day: i64) -> Result<crate::pipelines::WindowRows>;
    /// A trend's counter rows of the days `[first_day, last_day]`, of one pipeline or all.
    async fn pipeline_trend(
        &self,
        first_day: i64,
        last_day: i64,
        pipeline_id: Option<&str>,
    ) -> Result<crate::pipelines::TrendRows>;
    /// The newest run (by creation) of each pipeline: run id and creation time.
    async fn last_runs(
        &self,
        pipelines: &[String],
    ) -> Result<std::collections::BTreeMap<String, (String, Option<DateTime<Utc>>)>>;
    /// Recounts the counters and reports each difference.
    async fn verify_counters(&self) -> Result<CounterCheck>;
    /// Refills the counters from the table; what a check found before.
    async fn rebuild_counters(&self) -> Result<CounterCheck>;
    /// Appends an audit entry; its id.
    async fn record_audit(
        &self,
        at: DateTime<Utc>,
        actor: &str,
        action: &str,
        detail: &Value,
        matched: Option<i64>,
        affected: i64,
    ) -> Result<i64>;
    /// The newest `limit` audit entries, newest first.
    async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>>;

    /// [`Backend::cleanup`], each batch also writing the run ids it deleted under audit entry `audit_id` and
    /// adding them to its `affected`, in the batch's own transaction (schema 4).
    /// The rows deleted, and their stored size when the backend measures it as it deletes (PostgreSQL).
    async fn cleanup_recorded(&self, cleanup: &ValidCleanup, audit_id: i64) -> Result<(u64, Option<i64>)>;
    /// Deletes a run and records it (an audit entry and its id) in one transaction; the entry's id, `None` when
    /// there was no such run.
    async fn delete_recorded(
        &self,
        run_id: &str,
        at: DateTime<Utc>,
        actor: &str,
        action: &str,
        detail: &Value,
    ) -> Result<Option<i64>>;
    /// The run ids an audit entry deleted, in run-id order, the first `limit` after `after`.
    async fn audit_run_ids(&self, audit_id: i64, after: Option<&str>, limit: u32) -> Result<Vec<String>>;
    /// Replaces an audit entry's detail.
    async fn set_audit_detail(&self, audit_id: i64, detail: &Value) -> Result<()>;
    /// How much space the database takes now ([`crate::space`]).
    async fn space_use(&self) -> Result<SpaceUse>;
    /// The stored size of the runs a cleanup matches (`matched` of them).
    async fn estimate_cleanup_bytes(&self, cleanup: &ValidCleanup, matched: i64) -> Result<CleanupBytes>;
    /// Gives freed space back as far as it can without blocking writers.
    async fn reclaim_space(&self) -> Result<Reclaimed>;
}
