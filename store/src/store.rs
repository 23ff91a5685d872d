//! The store: one API over two backends, chosen by where the database is. A path (or `sqlite:PATH`) is a SQLite
//! file ([`crate::sqlite`]); a `postgres://` or `postgresql://` URL is a PostgreSQL database ([`crate::postgres`]).
//!
//! Every public method validates its arguments here ([`crate::validate`]), once for both backends, then hands the
//! call to the backend ([`crate::backend::Backend`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::backend::Backend;
use crate::bulk::{BulkBatch, BulkNote, BulkSource, CopiedRange, RangeNote};
use crate::insights::{
    ActivityBucket, AuditEntry, Bucket, FailureGroup, FailureReport, FailureScope, PipelineFailureRate,
    StuckRuns, VersionFailureRate, FAILURE_SAMPLES,
};
use crate::postgres::PgStore;
use crate::space::{CleanupBytes, Reclaimed, SpaceUse};
use crate::sqlite::SqliteStore;
use crate::time::{Clock, SystemClock};
use crate::validate::{self, ValidCleanup, ValidList, ValidState};
use crate::{
    CleanupPolicy, CleanupPreview, CounterCheck, ListQuery, ListSort, MigrationReport, Page, Percentiles,
    Result, RunCount, RunSummary, RunView, StoreError, TextColumn, WorkflowState, WorkflowStats,
};

pub use crate::sqlite::{WriteStats, CLEANUP_BATCH, CLEANUP_BATCH_TARGET};

/// What a recorded cleanup did ([`Store::cleanup_recorded`]): its audit entry, the runs it deleted and the
/// space it freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RecordedChange {
    /// The audit entry written for it (its `affected` is `deleted`).
    pub audit_id: i64,
    /// Runs deleted.
    pub deleted: u64,
    /// SQLite: the bytes of the pages the deleted runs took (pages in use before, less after, times the page
    /// size: exact). PostgreSQL: the stored size of the deleted rows, measured as they were deleted; reusable
    /// once VACUUM has passed.
    pub bytes_freed: i64,
    /// Bytes the database's size went down by (a SQLite file with `auto_vacuum` `INCREMENTAL`; 0 otherwise).
    pub bytes_returned: i64,
    /// The space before (`None` when it could not be read).
    pub before: Option<SpaceUse>,
    /// The space after.
    pub after: Option<SpaceUse>,
}

impl RecordedChange {
    /// The space figures as the audit entry and `--json` carry them.
    pub fn space_json(&self) -> Value {
        serde_json::json!({
            "bytes_freed": self.bytes_freed,
            "bytes_returned": self.bytes_returned,
            "bytes_before": self.before.map(|s| s.bytes),
            "bytes_after": self.after.map(|s| s.bytes),
            "free_bytes_after": self.after.and_then(|s| s.free_bytes),
            "incremental": self.after.and_then(|s| s.incremental),
        })
    }
}

/// How hard SQLite works to make each commit durable. (On PostgreSQL, durability is the server's setting.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=FULL`: a committed save survives power loss. The default: these are durable workflows.
    #[default]
    Full,
    /// `synchronous=NORMAL`: a committed save survives a process crash, but the last commits may be lost on
    /// power loss. Faster.
    Normal,
}

/// How to open a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Durability of commits on SQLite (default [`Durability::Full`]).
    pub durability: Durability,
    /// How long to wait for another process's lock (SQLite), or for a connection or a lock (PostgreSQL), before
    /// giving up with [`StoreError::Busy`] (default 5 s).
    pub busy_timeout: Duration,
    /// Pooled connections (default 8).
    pub max_connections: u32,
    /// Open without writing anything: no migration, no saves. The database must already be current.
    pub read_only: bool,
    /// Where "now" comes from (default the system clock).
    pub clock: Arc<dyn Clock>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            durability: Durability::Full,
            busy_timeout: Duration::from_secs(5),
            max_connections: 8,
            read_only: false,
            clock: Arc::new(SystemClock),
        }
    }
}

/// Which kind of database a store is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
}

/// Where a database is: a SQLite file, or a PostgreSQL URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file at this path.
    Sqlite(PathBuf),
    /// A PostgreSQL database at this URL (`postgres://` or `postgresql://`).
    Postgres(String),
}

impl Location {
    /// Reads `--db`/`FLOWSTATE_DB`: `postgres://...` or `postgresql://...` is PostgreSQL; `sqlite://PATH`,
    /// `sqlite:PATH` or any other text is a SQLite file's path.
    pub fn parse(text: impl AsRef<Path>) -> Location {
        let path = text.as_ref();
        let Some(s) = path.to_str() else {
            return Location::Sqlite(path.to_path_buf());
        };
        let lower = s.get(..13).unwrap_or(s).to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return Location::Postgres(s.to_string());
        }
        if let Some(rest) = s.strip_prefix("sqlite://").or_else(|| s.strip_prefix("sqlite:")) {
            return Location::Sqlite(PathBuf::from(rest));
        }
        Location::Sqlite(path.to_path_buf())
    }
}

#[derive(Debug, Clone)]
enum Inner {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// Runs `$body` with `$b` bound to whichever backend the store has.
macro_rules! on_backend {
    ($self:expr, $b:ident => $body:expr) => {
        match &$self.inner {
            Inner::Sqlite($b) => $body,
            Inner::Postgres($b) => $body,
        }
    };
}

/// The state backend over one database: a SQLite file or a PostgreSQL database. Cheap to clone (the
/// connections are shared).
#[derive(Debug, Clone)]
pub struct Store {
    inner: Inner,
    /// The file's path, or the URL without its password.
    location: PathBuf,
    clock: Arc<dyn Clock>,
    read_only: bool,
}

impl Store {
    /// Opens (creating if missing) the database at `location` with default options, then migrates it.
    ///
    /// `location` is a SQLite file's path (or `sqlite:PATH`), or a `postgres://` / `postgresql://` URL.
    ///
    /// # Errors
    /// [`StoreError::UnsupportedFile`] for a file that is not a SQLite database or holds a table flowstate cannot
    /// migrate (the file is left byte-for-byte unchanged); [`StoreError::CannotOpen`] for a missing folder, a
    /// permission problem or a server that cannot be reached; [`StoreError::Busy`] when another process holds the
    /// lock past the busy timeout.
    pub async fn open(location: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(location, StoreOptions::default()).await
    }

    /// Opens the database at `location` with `options`. See [`Store::open`].
    ///
    /// # Errors
    /// As [`Store::open`]; with `read_only`, also [`StoreError::UnsupportedFile`] when the database needs a
    /// migration.
    pub async fn open_with(location: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        let clock = options.clock.clone();
        let read_only = options.read_only;
        let (inner, location) = match Location::parse(location) {
            Location::Sqlite(path) => {
                let store = SqliteStore::open_with(&path, &options).await?;
                (Inner::Sqlite(store), path)
            }
            Location::Postgres(url) => {
                let store = PgStore::open(&url, &options).await?;
                let shown = PathBuf::from(store.display_url());
                (Inner::Postgres(store), shown)
            }
        };
        Ok(Store {
            inner,
            location,
            clock,
            read_only,
        })
    }

    /// What opening this store changed in the database.
    pub fn migration(&self) -> &MigrationReport {
        on_backend!(self, b => b.migration())
    }

    /// The database: a SQLite file's path, or a PostgreSQL URL without its password.
    pub fn path(&self) -> &Path {
        &self.location
    }

    /// Which kind of database this is.
    pub fn backend(&self) -> BackendKind {
        match self.inner {
            Inner::Sqlite(_) => BackendKind::Sqlite,
            Inner::Postgres(_) => BackendKind::Postgres,
        }
    }

    /// True when opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The store's idea of now.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Closes every connection, and returns once they are closed. Saves already made (called before `close`) are
    /// written first; later ones, and every other call, fail as on a closed pool.
    pub async fn close(&self) {
        on_backend!(self, b => b.close().await)
    }

    /// How the saves of this store (this process) shared their commits since it was opened (SQLite's group
    /// commit); all zero when read-only or on PostgreSQL. For benchmarks and tests.
    pub fn write_stats(&self) -> WriteStats {
        match &self.inner {
            Inner::Sqlite(s) => s.write_stats(),
            Inner::Postgres(_) => WriteStats::default(),
        }
    }

    /// True when the overview figures come from counters kept on each write rather than from counting rows.
    pub fn has_counters(&self) -> bool {
        on_backend!(self, b => b.has_counters())
    }

    /// The SQLite backend, for the backend's own unit tests.
    #[cfg(test)]
    pub(crate) fn sqlite(&self) -> Option<&SqliteStore> {
        match &self.inner {
            Inner::Sqlite(s) => Some(s),
            Inner::Postgres(_) => None,
        }
    }

    fn check_writable(&self) -> Result<()> {
        if self.read_only {
            return Err(StoreError::Conflict(
                "the store was opened read-only; nothing can be changed".into(),
            ));
        }
        Ok(())
    }

    /// Saves the whole row of a run (insert, or replace every column of an existing run), and returns once it is
    /// committed.
    ///
    /// `created_at: None` keeps the stored creation time (or uses now for a new run); `updated_at: None` uses now.
    ///
    /// On SQLite, saves made at the same time from several tasks share one statement and one commit (group
    /// commit); each is still all or nothing, and each caller gets its own result.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] naming the field for an empty or overlong id, an unknown status, a negative
    /// or out-of-range counter, a non-finite number, NUL characters, JSON over [`crate::MAX_JSON_BYTES`] or
    /// nested deeper than [`crate::MAX_JSON_DEPTH`]; a timestamp outside years 1..=9999; [`StoreError::Busy`]
    /// when another connection held the lock for the whole busy timeout; [`StoreError::DiskFull`].
    pub async fn save_state(&self, state: &WorkflowState) -> Result<()> {
        self.check_writable()?;
        let row = ValidState::new(state)?;
        on_backend!(self, b => b.save(vec![row], self.clock.now()).await)
    }

    /// Saves many runs in one transaction (all or none); much faster than one [`Store::save_state`] each.
    ///
    /// # Errors
    /// As [`Store::save_state`]; every row is validated before anything is written.
    pub async fn save_many(&self, states: &[WorkflowState]) -> Result<()> {
        self.check_writable()?;
        let rows = states.iter().map(ValidState::new).collect::<Result<Vec<_>>>()?;
        if rows.is_empty() {
            return Ok(());
        }
        on_backend!(self, b => b.save(rows, self.clock.now()).await)
    }

    /// Starts a bulk load ([`crate::bulk`]): drops the counters' triggers and every index but the primary key, so
    /// that [`Store::bulk_write`] writes into the bare table. For a database no one else uses meanwhile (a new
    /// copy): until [`Store::finish_bulk_load`], the overview figures are stale and lists slow. Killed before it
    /// finishes, the next writable open of the database finishes it by itself.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] on a read-only store; [`StoreError::Busy`]; database failures.
    pub async fn begin_bulk_load(&self) -> Result<()> {
        self.check_writable()?;
        on_backend!(self, b => b.begin_bulk().await)
    }

    /// Writes the runs of a [`BulkBatch`] (validated when it was made) in one transaction, with `note` (an audit
    /// entry's new detail) in the same transaction. Runs already present are replaced, as by a save. Between
    /// [`Store::begin_bulk_load`] and [`Store::finish_bulk_load`] only.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] on a read-only store; [`StoreError::Busy`]; [`StoreError::DiskFull`]; database
    /// failures (nothing of the batch, nor the note, is written then).
    pub async fn bulk_write(&self, batch: BulkBatch, note: Option<&BulkNote>) -> Result<()> {
        self.check_writable()?;
        if batch.rows.is_empty() && note.is_none() {
            return Ok(());
        }
        on_backend!(self, b => b.bulk_write(batch.rows, self.clock.now(), note).await)
    }

    /// Ends a bulk load: builds the indexes, creates the triggers and counts the counters from the rows, in one
    /// transaction (the store's migration). Returns what it changed.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] on a read-only store; [`StoreError::Busy`]; database failures.
    pub async fn finish_bulk_load(&self) -> Result<MigrationReport> {
        self.check_writable()?;
        on_backend!(self, b => b.finish_bulk().await)
    }

    /// Loads every column of a run.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for an empty id; database failures.
    pub async fn load_state(&self, run_id: &str) -> Result<Option<WorkflowState>> {
        validate::lookup_id(run_id)?;
        on_backend!(self, b => b.load_state(run_id).await)
    }

    /// Loads a run for its page without reading its large columns whole into the process: the summary, and at
    /// most `max_chars` characters of the error message and of each JSON column, as stored, with each value's
    /// whole size. Nothing is parsed: a 50 MB context costs `max_chars` here, not a tree of 50 MB.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for an empty id; database failures.
    pub async fn load_run_view(&self, run_id: &str, max_chars: usize) -> Result<Option<RunView>> {
        validate::lookup_id(run_id)?;
        let max = i64::try_from(max_chars).unwrap_or(i64::MAX).max(1);
        on_backend!(self, b => b.load_run_view(run_id, max).await)
    }

    /// Reads one large text column of a run whole, as stored (`Ok(None)`: no such run; `Ok(Some(None))`: NULL).
    /// Callers bound how many of these run at once: the value is in memory whole.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for an empty id; database failures.
    pub async fn load_text_column(&self, run_id: &str, column: TextColumn) -> Result<Option<Option<String>>> {
        validate::lookup_id(run_id)?;
        on_backend!(self, b => b.load_text_column(run_id, column).await)
    }

    /// Attaches the SQLite file `path` read-only to this SQLite store's write connection, for a raw copy of its
    /// runs during a bulk load ([`Store::bulk_copy_range`]). `Ok(None)` when its runs cannot be copied raw (a run
    /// id that is not UTF-8 text) or this store is not SQLite: copy through [`Store::bulk_write`] instead.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] for a read-only store; database failures (the file cannot be attached).
    pub async fn attach_bulk_source(&self, path: &std::path::Path) -> Result<Option<BulkSource>> {
        self.check_writable()?;
        match &self.inner {
            Inner::Sqlite(b) => Ok(b.attach_source(path).await?.map(BulkSource)),
            Inner::Postgres(_) => Ok(None),
        }
    }

    /// Copies the next runs of an attached source ([`Store::attach_bulk_source`]) after the run id `after` (from
    /// the first when `None`), at most `limit` of them, in one transaction with the progress note `note` makes:
    /// each run the per-run path would store unchanged is moved inside SQLite (`INSERT ... SELECT`, no decoding),
    /// every other one read, validated and written as [`Store::bulk_write`] writes it, or refused with the reason
    /// a save gives. Between [`Store::begin_bulk_load`] and [`Store::finish_bulk_load`] only; `read` is 0 once
    /// the source holds no run after `after`.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] for a read-only store; database failures (nothing of the range is written).
    pub async fn bulk_copy_range(
        &self,
        source: &BulkSource,
        after: Option<&str>,
        limit: u32,
        note: Option<RangeNote>,
    ) -> Result<CopiedRange> {
        self.check_writable()?;
        match &self.inner {
            Inner::Sqlite(b) => {
                b.copy_range(source.0, after.map(str::to_string), limit, self.clock.now(), note)
                    .await
            }
            Inner::Postgres(_) => Err(StoreError::Conflict(
                "a raw copy needs a SQLite destination".into(),
            )),
        }
    }

    /// Detaches the source of a raw copy (nothing when none is attached).
    ///
    /// # Errors
    /// Database failures.
    pub async fn detach_bulk_source(&self) -> Result<()> {
        match &self.inner {
            Inner::Sqlite(b) if !self.read_only => b.detach_source().await,
            _ => Ok(()),
        }
    }

    /// Whole runs in run-id order (byte order), the first `limit` (1..=[`ListQuery::MAX_LIMIT`]) after the run id
    /// `after`, or from the first run: reads a whole table in keyset batches (`flowstate copy`).
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for a limit out of range; database failures.
    pub async fn export_runs(&self, after: Option<&str>, limit: u32) -> Result<Vec<WorkflowState>> {
        validate::limit(limit)?;
        on_backend!(self, b => b.export(after, limit).await)
    }

    /// Deletes a run; true when it existed.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for an empty id; [`StoreError::Busy`]; database failures.
    pub async fn delete_state(&self, run_id: &str) -> Result<bool> {
        self.check_writable()?;
        validate::lookup_id(run_id)?;
        on_backend!(self, b => b.delete_state(run_id).await)
    }

    /// Lists runs newest first (by the real creation instant, run id breaking ties), with filters and pages.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for a limit of 0 or above [`ListQuery::MAX_LIMIT`], an unreadable cursor, or
    /// an empty filter value.
    pub async fn list_workflows(&self, query: &ListQuery) -> Result<Page> {
        let list = ValidList::new(query)?;
        let rows = on_backend!(self, b => b.list(&list).await)?;
        Ok(list.page(rows))
    }

    /// How many runs a list's filters match (its order matters too: a slowest-first list holds only runs with
    /// a time, a most-memory-first one only runs with a memory figure; the page fields are ignored). Exact from
    /// the counters when they answer it (statuses and a pipeline); otherwise counted from the rows, exactly up to
    /// [`RunCount::BOUND`] and within a bounded amount of work, and "more than" what was counted past either (0 and not
    /// exact: not counted at all): never a scan of the whole table.
    ///
    /// # Errors
    /// As [`Store::list_workflows`].
    pub async fn count_runs(&self, query: &ListQuery) -> Result<RunCount> {
        let list = ValidList::new(query)?;
        on_backend!(self, b => b.count(&list).await)
    }

    /// The runs just before and just after `run_id` in the list `query` describes (its filters and order; its
    /// page fields are ignored): what the run page's "previous" and "next" links lead to. `None` when the run does
    /// not exist or has no place in that order (no execution time in a slowest-first list, no memory figure in a
    /// most-memory-first one); either neighbour is `None` at an end of the list. Two pages of one run each, on the
    /// list's own index.
    ///
    /// # Errors
    /// As [`Store::list_workflows`].
    pub async fn list_neighbours(
        &self,
        query: &ListQuery,
        run_id: &str,
    ) -> Result<Option<(Option<RunSummary>, Option<RunSummary>)>> {
        validate::lookup_id(run_id)?;
        let Some(view) = self.load_run_view(run_id, 1).await? else {
            return Ok(None);
        };
        let run = view.summary;
        let instant = |at: Option<DateTime<Utc>>| {
            at.map_or(crate::time::UNKNOWN_INSTANT, |at| {
                crate::time::instant_micros(&at)
            })
        };
        let key = match query.sort {
            ListSort::Newest => Some(instant(run.created_at)),
            ListSort::Idle => Some(instant(run.updated_at)),
            ListSort::Slowest => run.execution_time_ms.map(|ms| validate::real_key(ms as f64)),
            // PostgreSQL's REAL reads back as its shortest decimal: the list compares the stored 32-bit value.
            ListSort::Heaviest => run.memory_usage_mb.map(|mb| {
                validate::real_key(if self.backend() == BackendKind::Postgres {
                    f64::from(mb as f32)
                } else {
                    mb
                })
            }),
        };
        let Some(key) = key else {
            return Ok(None);
        };
        let mut out = [None, None];
        for (i, before) in [true, false].into_iter().enumerate() {
            let cursor = validate::Cursor {
                sort: query.sort,
                key,
                run_id: run.run_id.clone(),
                before,
            };
            let q = ListQuery {
                limit: Some(1),
                offset: None,
                cursor: Some(cursor.encode()),
                ..query.clone()
            };
            out[i] = self.list_workflows(&q).await?.runs.into_iter().next();
        }
        let [prev, next] = out;
        Ok(Some((prev, next)))
    }

    /// The seed's four figures, from one read snapshot.
    ///
    /// With the counters this reads a few small rows whatever the size of the table. Execution times that are
    /// not integers (a Python float) count rounded to the millisecond, as every reader shows them. Without
    /// counters (a flujo database opened read-only), it counts the rows.
    ///
    /// # Errors
    /// Database failures.
    pub async fn get_workflow_stats(&self) -> Result<WorkflowStats> {
        let since = self.clock.now() - chrono::Duration::hours(24);
        on_backend!(self, b => b.stats(since).await)
    }

    /// Failed runs whose last update lies within the last `hours_back` hours, newest update first.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for 0 hours, more than ten years, or a limit outside 1..=[`ListQuery::MAX_LIMIT`].
    pub async fn get_failed_workflows(&self, hours_back: u32, limit: u32) -> Result<Vec<RunSummary>> {
        validate::hours_back(hours_back)?;
        validate::limit(limit)?;
        let since = self.clock.now() - chrono::Duration::hours(i64::from(hours_back));
        on_backend!(self, b => b.failed(since, limit).await)
    }

    /// What [`Store::cleanup_old_workflows`] would delete with the same policy, now.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for an invalid policy.
    pub async fn preview_cleanup(&self, policy: &CleanupPolicy) -> Result<CleanupPreview> {
        let cleanup = ValidCleanup::new(policy, self.clock.now())?;
        on_backend!(self, b => b.preview_cleanup(&cleanup).await)
    }

    /// Deletes the runs a policy matches, in small batches (at most [`CLEANUP_BATCH`] rows, fewer when a batch
    /// takes longer than [`CLEANUP_BATCH_TARGET`]) so concurrent writers are never blocked for long. One cutoff,
    /// taken when the cleanup starts, for every batch; each batch re-checks the policy, so a run updated
    /// meanwhile (made recent) is kept. Returns the number of rows actually deleted.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for an invalid policy; [`StoreError::Busy`]. Batches already committed stay
    /// deleted when a later batch fails.
    pub async fn cleanup_old_workflows(&self, policy: &CleanupPolicy) -> Result<u64> {
        self.check_writable()?;
        let cleanup = ValidCleanup::new(policy, self.clock.now())?;
        on_backend!(self, b => b.cleanup(&cleanup).await)
    }

    /// Running or paused runs whose last update is older than `idle_for`: the count, and the `limit` longest idle.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for a non-positive threshold or a limit above [`ListQuery::MAX_LIMIT`].
    pub async fn stuck_runs(&self, idle_for: chrono::Duration, limit: u32) -> Result<StuckRuns> {
        if idle_for <= chrono::Duration::zero() {
            return Err(StoreError::invalid("idle_for", "must be positive"));
        }
        if limit > ListQuery::MAX_LIMIT {
            return Err(StoreError::invalid(
                "limit",
                format!("must be at most {}", ListQuery::MAX_LIMIT),
            ));
        }
        let idle_since = self.now() - idle_for;
        on_backend!(self, b => b.stuck_runs(idle_since, limit).await)
    }

    /// Execution-time percentiles over all runs, or one pipeline's.
    ///
    /// With the counters, reads the execution-time histogram (a few hundred rows at most) and the longest time
    /// from an index: p50, p95 and p99 are then within [`Percentiles::relative_error`] (1/32) of the exact
    /// values, and exact below 32 ms. Without them, reads the exact values from the index.
    ///
    /// # Errors
    /// Database failures.
    pub async fn execution_percentiles(&self, pipeline_id: Option<&str>) -> Result<Percentiles> {
        on_backend!(self, b => b.execution_percentiles(pipeline_id).await)
    }

    /// Execution-time percentiles of every pipeline, busiest first (as [`Store::execution_percentiles`]).
    ///
    /// # Errors
    /// Database failures.
    pub async fn execution_percentiles_by_pipeline(&self) -> Result<Vec<(String, Percentiles)>> {
        on_backend!(self, b => b.execution_percentiles_by_pipeline().await)
    }

    /// Every pipeline id in the table, sorted (for filter menus). With the counters, read from them.
    ///
    /// # Errors
    /// Database failures.
    pub async fn pipelines(&self) -> Result<Vec<String>> {
        on_backend!(self, b => b.pipelines().await)
    }

    /// Runs created per bucket and status, for the `buckets` buckets ending with the current one (oldest first;
    /// buckets with no runs are included with empty counts).
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for 0 or more than 1000 buckets.
    pub async fn activity(&self, bucket: Bucket, buckets: u32) -> Result<Vec<ActivityBucket>> {
        if buckets == 0 || buckets > 1000 {
            return Err(StoreError::invalid("buckets", "must be between 1 and 1000"));
        }
        let first = crate::insights::first_bucket(self.now(), bucket, buckets)?;
        on_backend!(self, b => b.activity(bucket, first, buckets).await)
    }

    /// Failed runs last updated at or after `since`, grouped by [`crate::insights::error_signature`], largest
    /// group first, each with up to [`FAILURE_SAMPLES`] sample runs. Reads at most
    /// [`crate::insights::MAX_FAILURE_SCAN`] of the newest failures (and says so in `truncated`).
    ///
    /// # Errors
    /// Database failures.
    pub async fn failure_groups(&self, since: DateTime<Utc>) -> Result<FailureReport> {
        self.failure_groups_in(since, &FailureScope::default()).await
    }

    /// [`Store::failure_groups`] of the runs `scope` covers (one pipeline, one `pipeline_version`, or both).
    /// `total_failed` counts the scope's failures.
    ///
    /// # Errors
    /// Database failures.
    pub async fn failure_groups_in(
        &self,
        since: DateTime<Utc>,
        scope: &FailureScope,
    ) -> Result<FailureReport> {
        on_backend!(self, b => b.group_failures(since, FAILURE_SAMPLES, None, scope).await)
    }

    /// Runs, finished runs and failures of each version of `pipeline` among runs last updated at or after
    /// `since`, the version with the newest run first: "did the deploy break it?".
    ///
    /// # Errors
    /// Database failures.
    pub async fn failures_by_version(
        &self,
        since: DateTime<Utc>,
        pipeline: &str,
    ) -> Result<Vec<VersionFailureRate>> {
        let rows = on_backend!(self, b => b.version_counts(since, pipeline).await)?;
        Ok(crate::insights::version_rates_of(rows))
    }

    /// One group of [`Store::failure_groups`], found by its [`FailureGroup::key`], with up to `samples` sample
    /// runs (newest first) instead of [`FAILURE_SAMPLES`]; `None` when no failure of the window has that key.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for more samples than [`ListQuery::MAX_LIMIT`]; database failures.
    pub async fn failure_group(
        &self,
        since: DateTime<Utc>,
        key: &str,
        samples: usize,
    ) -> Result<Option<FailureGroup>> {
        self.failure_group_in(since, key, samples, &FailureScope::default())
            .await
    }

    /// [`Store::failure_group`] among the runs `scope` covers.
    ///
    /// # Errors
    /// As [`Store::failure_group`].
    pub async fn failure_group_in(
        &self,
        since: DateTime<Utc>,
        key: &str,
        samples: usize,
        scope: &FailureScope,
    ) -> Result<Option<FailureGroup>> {
        if samples > ListQuery::MAX_LIMIT as usize {
            return Err(StoreError::invalid(
                "samples",
                format!("must be at most {}", ListQuery::MAX_LIMIT),
            ));
        }
        let report = on_backend!(self, b => b.group_failures(since, samples, Some(key), scope).await)?;
        Ok(report.groups.into_iter().next())
    }

    /// How many runs failed (by their last update) at or after `since`: the overview's "failed in the last
    /// 24 h". Counts what [`Store::failure_groups`] groups, without reading the rows.
    ///
    /// # Errors
    /// Database failures.
    pub async fn count_failed_since(&self, since: DateTime<Utc>) -> Result<i64> {
        on_backend!(self, b => b.count_failed_since(since).await)
    }

    /// Runs and failures per pipeline among runs last updated at or after `since`, highest failure rate first.
    ///
    /// # Errors
    /// Database failures.
    pub async fn failure_rates(&self, since: DateTime<Utc>) -> Result<Vec<PipelineFailureRate>> {
        let counts = on_backend!(self, b => b.failure_counts(since).await)?;
        Ok(crate::insights::rates_of(counts))
    }

    /// Every pipeline with runs last updated since `since` (rounded down to its hour), with its figures: see
    /// [`crate::pipelines`]. Reads the counters of schema version 4 (a few rows per pipeline, day and bucket) and
    /// one index step per pipeline, never the rows.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for a start in the future; [`StoreError::Conflict`] when the database has no
    /// such counters (opened read-only before being migrated); database failures.
    pub async fn pipeline_report(&self, since: DateTime<Utc>) -> Result<crate::pipelines::PipelineReport> {
        let now = self.now();
        if since > now {
            return Err(StoreError::invalid("since", "must not be in the future"));
        }
        let since = crate::pipelines::hour_floor(since);
        let (first_hour, first_day) = crate::pipelines::window_span(since);
        let rows = on_backend!(self, b => b.pipeline_window(first_hour, first_day).await)?;
        let mut names: Vec<String> = rows
            .statuses
            .iter()
            .filter_map(|(pk, _, _)| crate::counters::decode_key(pk))
            .collect();
        names.sort_unstable();
        names.dedup();
        let last = on_backend!(self, b => b.last_runs(&names).await)?;
        Ok(crate::pipelines::report(since, rows, last))
    }

    /// Daily figures of the last `days` days (today included) of one pipeline or all, against the `days` days
    /// before: see [`crate::pipelines`].
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for `days` outside 1..=366 or a pipeline id longer than
    /// [`crate::MAX_NAME_BYTES`]; [`StoreError::Conflict`] without the counters; database failures.
    pub async fn pipeline_trend(
        &self,
        days: u32,
        pipeline_id: Option<&str>,
    ) -> Result<crate::pipelines::Trend> {
        if days == 0 || days > 366 {
            return Err(StoreError::invalid("days", "must be between 1 and 366"));
        }
        if pipeline_id.is_some_and(|p| p.len() > crate::MAX_NAME_BYTES) {
            return Err(StoreError::invalid(
                "pipeline_id",
                "is longer than a pipeline id can be",
            ));
        }
        let now = self.now();
        let (prev_first, _, today) = crate::pipelines::trend_days(now, days);
        let rows = on_backend!(self, b => b.pipeline_trend(prev_first, today, pipeline_id).await)?;
        Ok(crate::pipelines::trend(
            pipeline_id.map(str::to_string),
            now,
            days,
            rows,
        ))
    }

    /// Recounts every counter from the table and reports each one that differs (none, unless something wrote
    /// the table with the counters' triggers missing). Reads the whole table: a check for operators, not pages.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the database has no counters (opened read-only before being migrated);
    /// database failures.
    pub async fn verify_counters(&self) -> Result<CounterCheck> {
        if !self.has_counters() {
            return Err(StoreError::Conflict(
                "the database has no counters (it was opened read-only before being migrated)".into(),
            ));
        }
        on_backend!(self, b => b.verify_counters().await)
    }

    /// Empties the counters and fills them again from the table, in one transaction. Returns what
    /// [`Store::verify_counters`] found before.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] on a read-only store; [`StoreError::Busy`]; database failures.
    pub async fn rebuild_counters(&self) -> Result<CounterCheck> {
        if self.is_read_only() {
            return Err(StoreError::Conflict("the store was opened read-only".into()));
        }
        on_backend!(self, b => b.rebuild_counters().await)
    }

    /// Records a change in the audit table and returns its id (the dashboard links to the entry it wrote).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] on a read-only store; database failures.
    pub async fn record_audit(
        &self,
        actor: &str,
        action: &str,
        detail: &Value,
        matched: Option<i64>,
        affected: i64,
    ) -> Result<i64> {
        if self.is_read_only() {
            return Err(StoreError::Conflict("the store was opened read-only".into()));
        }
        on_backend!(self, b => b.record_audit(self.now(), actor, action, detail, matched, affected).await)
    }

    /// The newest `limit` audit entries, newest first.
    ///
    /// # Errors
    /// Database failures.
    pub async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>> {
        on_backend!(self, b => b.audit_log(limit.min(ListQuery::MAX_LIMIT)).await)
    }

    /// [`Store::cleanup_old_workflows`], recorded: an audit entry (`actor`, `action` `cleanup`, `detail`,
    /// `matched`) is written first with 0 affected, then every delete batch, in its own transaction, also writes
    /// the run ids it deleted under that entry (`flowstate_audit_run`, read with [`Store::audit_run_ids`]) and
    /// adds them to its `affected`. So the entry always says exactly what was deleted, even when a later batch
    /// fails or the process is killed: the runs of committed batches, and only those.
    ///
    /// # Errors
    /// As [`Store::cleanup_old_workflows`]; [`StoreError::Conflict`] on a read-only store. Batches already
    /// committed stay deleted and recorded when a later batch fails.
    pub async fn cleanup_recorded(
        &self,
        policy: &CleanupPolicy,
        actor: &str,
        detail: &Value,
        matched: Option<i64>,
    ) -> Result<RecordedChange> {
        self.check_writable()?;
        let cleanup = ValidCleanup::new(policy, self.clock.now())?;
        let before = on_backend!(self, b => b.space_use().await)
            .inspect_err(|e| tracing::debug!(error = %e, "reading the space before a cleanup"))
            .ok();
        let audit_id =
            on_backend!(self, b => b.record_audit(self.now(), actor, "cleanup", detail, matched, 0).await)?;
        let (deleted, measured) = on_backend!(self, b => b.cleanup_recorded(&cleanup, audit_id).await)?;
        // SQLite: free pages given back now when the file is incremental (in steps; writers take turns). On
        // PostgreSQL the space is reusable after (auto)vacuum: `reclaim_space` runs VACUUM when asked.
        let mut returned = 0;
        if deleted > 0 && self.backend() == BackendKind::Sqlite {
            match on_backend!(self, b => b.reclaim_space().await) {
                Ok(r) => returned = r.bytes_returned(),
                Err(e) => tracing::warn!(error = %e, "cleanup done, but its free pages were not given back"),
            }
        }
        let after = on_backend!(self, b => b.space_use().await).ok();
        let bytes_freed = match (measured, before, after) {
            (Some(bytes), _, _) => bytes,
            (None, Some(b), Some(a)) => {
                let used = |s: SpaceUse| s.bytes - s.free_bytes.unwrap_or(0);
                (used(b) - used(a)).max(0)
            }
            _ => 0,
        };
        let change = RecordedChange {
            audit_id,
            deleted,
            bytes_freed,
            bytes_returned: returned,
            before,
            after,
        };
        // The entry says what the cleanup freed too (the dashboard's result reads it there).
        if let Value::Object(fields) = detail {
            let mut fields = fields.clone();
            fields.insert("space".into(), serde_json::json!(change.space_json()));
            if let Err(e) = on_backend!(self, b => b.set_audit_detail(audit_id, &Value::Object(fields)).await)
            {
                tracing::warn!(error = %e, audit_id, "cleanup done, but the space it freed was not recorded");
            }
        }
        Ok(change)
    }

    /// How much space the database takes now: the SQLite file's size and its free pages, or PostgreSQL's
    /// `pg_total_relation_size` of `workflow_state` ([`crate::space`]).
    ///
    /// # Errors
    /// Database failures.
    pub async fn space_use(&self) -> Result<SpaceUse> {
        on_backend!(self, b => b.space_use().await)
    }

    /// What a cleanup with `policy` would free: the stored size of the runs it matches now (SQLite: the bytes of
    /// their values, as `octet_length` reads them from each record's header, plus 40 a row; PostgreSQL:
    /// `pg_column_size` of every column plus the row header, TOASTed values at their stored size). The oldest
    /// [`crate::space::ESTIMATE_RUNS`] matched runs are measured, the others counted at their average. Index
    /// entries and page slack are not counted: the space a cleanup frees in the file is usually somewhat more.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for an invalid policy; database failures.
    pub async fn estimate_cleanup_bytes(&self, policy: &CleanupPolicy, matched: i64) -> Result<CleanupBytes> {
        let cleanup = ValidCleanup::new(policy, self.clock.now())?;
        on_backend!(self, b => b.estimate_cleanup_bytes(&cleanup, matched).await)
    }

    /// Gives freed space back without blocking writers: on SQLite, the file's free pages in small
    /// `incremental_vacuum` steps when its `auto_vacuum` is `INCREMENTAL` (nothing otherwise: see
    /// [`Store::convert_to_incremental`]); on PostgreSQL, `VACUUM workflow_state`.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] on a read-only store; database failures.
    pub async fn reclaim_space(&self) -> Result<Reclaimed> {
        self.check_writable()?;
        on_backend!(self, b => b.reclaim_space().await)
    }

    /// SQLite only: makes the file's `auto_vacuum` `INCREMENTAL` with one `VACUUM`, which rewrites the whole file
    /// **holding the write lock throughout** (every writer waits; flujo's give up after their busy timeout) and
    /// needs free disk about the file's size. Afterwards cleanups give their space back by themselves. Run it
    /// with the writers stopped.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] on a read-only store or a PostgreSQL database; [`StoreError::Busy`]; database
    /// failures (the file is left as it was).
    pub async fn convert_to_incremental(&self) -> Result<Reclaimed> {
        self.check_writable()?;
        match &self.inner {
            Inner::Sqlite(b) => b.convert_to_incremental().await,
            Inner::Postgres(_) => Err(StoreError::Conflict(
                "only a SQLite file has an auto_vacuum mode to convert; on PostgreSQL, reclaim runs VACUUM"
                    .into(),
            )),
        }
    }

    /// Deletes a run and records it in the same transaction: an audit entry (`actor`, `action`, `detail`;
    /// matched and affected 1) and the run's id under it. The entry's id, or `None` (nothing recorded) when there
    /// was no such run.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for an empty id; [`StoreError::Conflict`] on a read-only store;
    /// [`StoreError::Busy`]; database failures (nothing is deleted then).
    pub async fn delete_run_recorded(
        &self,
        run_id: &str,
        actor: &str,
        action: &str,
        detail: &Value,
    ) -> Result<Option<i64>> {
        self.check_writable()?;
        validate::lookup_id(run_id)?;
        on_backend!(self, b => b.delete_recorded(run_id, self.now(), actor, action, detail).await)
    }

    /// The run ids audit entry `audit_id` deleted (a recorded cleanup's or deletion's), in run-id order, the
    /// first `limit` (1..=[`ListQuery::MAX_LIMIT`]) after `after`: a keyset page, so a cleanup of millions of runs
    /// is read a page at a time. Its entry's `affected` is how many there are. Empty for entries written before
    /// schema 4 (and for other actions).
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for a limit out of range; database failures.
    pub async fn audit_run_ids(&self, audit_id: i64, after: Option<&str>, limit: u32) -> Result<Vec<String>> {
        validate::limit(limit)?;
        on_backend!(self, b => b.audit_run_ids(audit_id, after, limit).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_told_apart_by_their_scheme() {
        assert_eq!(
            Location::parse("postgres://u@h/db"),
            Location::Postgres("postgres://u@h/db".into())
        );
        assert_eq!(
            Location::parse("PostgreSQL://u@h/db"),
            Location::Postgres("PostgreSQL://u@h/db".into())
        );
        assert_eq!(
            Location::parse("sqlite:runs.db"),
            Location::Sqlite("runs.db".into())
        );
        assert_eq!(
            Location::parse("sqlite:///tmp/runs.db"),
            Location::Sqlite("/tmp/runs.db".into())
        );
        assert_eq!(
            Location::parse("postgres.db"),
            Location::Sqlite("postgres.db".into())
        );
        assert_eq!(
            Location::parse("./postgres://x"),
            Location::Sqlite("./postgres://x".into())
        );
    }
}
