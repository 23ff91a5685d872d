//! The SQLite backend: opening a file, and the core queries (saves, lookups, lists, stats, cleanups). How a row is
//! encoded and decoded, and the statements that carry whole rows, are the row codec's ([`row`]); the dashboard's
//! figures are in [`insights`], the trigger-kept counters in [`counters`], the migration in [`schema`].

mod audit;
pub(crate) mod counters;
pub(crate) mod errors;
mod insights;
mod pipelines;
mod raw;
mod rawcheck;
pub(crate) mod rawcopy;
mod reader;
pub(crate) mod row;
pub(crate) mod schema;
mod space;
mod writer;

pub use writer::WriteStats;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, QueryBuilder, Row, Sqlite};

use self::errors::{code, extended, is_disk_full, map_err, sqlite_code, sqlite_extended_code};
use self::reader::Readers;
use self::row::{
    decode_state, decode_summary, lookup_sql, Columns, EncodedRow, SUMMARY_COLUMNS, SUMMARY_COLUMN_COUNT,
};
use self::writer::Writer;
use crate::bulk::BulkNote;
use crate::schema::MigrationReport;
use crate::store::{Durability, StoreOptions};
use crate::time::{self, instant_sql, UNKNOWN_INSTANT};
use crate::validate::{self, ValidCleanup, ValidList, ValidState};
use crate::{
    CleanupPreview, ListSort, Result, RunCount, RunSummary, RunView, Status, StoreError, TextColumn,
    TextHead, WorkflowState, WorkflowStats,
};

/// How much work a count of a list's runs may do ([`SqliteStore::count`]), in thousands of SQLite's virtual machine
/// instructions: 500,000, enough for 10,001 entries of an index range (about 1 ms), a few milliseconds of rows read
/// one by one (an error-text filter); past it the count says it could not count. Counted in instructions rather than time, so a count gives the same
/// answer on a busy machine.
pub const COUNT_STEPS: u32 = 500;

/// How long a count may read rows once past its first 50,000 instructions: rows read one by one from disk (an
/// error-text filter at 1M runs) cost far more time per instruction than an index range (71.6 ms within
/// [`COUNT_STEPS`] alone).
pub const COUNT_TIME: Duration = Duration::from_millis(20);

/// A time or memory bound matching at most this many runs is read from its own index and sorted
/// ([`SqliteStore::list`]).
const SPARSE: u64 = 2_000;

/// The expression a list sorts on, and whether it is a number ([`validate::real_key`]) rather than an instant.
fn sort_key(sort: ListSort) -> (String, bool) {
    match sort {
        ListSort::Newest => (instant_sql("created_at"), false),
        ListSort::Idle => (instant_sql("updated_at"), false),
        ListSort::Slowest => ("CAST(execution_time_ms AS REAL)".into(), true),
        ListSort::Heaviest => ("CAST(memory_usage_mb AS REAL)".into(), true),
    }
}

/// The column (or indexed expression) a list orders by.
fn sort_column(sort: ListSort) -> String {
    match sort {
        ListSort::Newest => instant_sql("created_at"),
        ListSort::Idle => instant_sql("updated_at"),
        ListSort::Slowest => "execution_time_ms".into(),
        ListSort::Heaviest => "memory_usage_mb".into(),
    }
}

/// Binds a cursor's key as the sort compares it.
fn push_key(qb: &mut QueryBuilder<'_, Sqlite>, key: i64, real: bool) {
    if real {
        qb.push_bind(validate::key_real(key));
    } else {
        qb.push_bind(key);
    }
}

/// A counter key: `'=' || value`, `''` for NULL.
fn counter_key(value: Option<&str>) -> String {
    value.map_or_else(String::new, |v| format!("={v}"))
}

/// The most rows deleted per transaction by a cleanup: small, so writers wait milliseconds, not seconds.
pub const CLEANUP_BATCH: i64 = 500;
/// How long one cleanup batch should take: the batch size halves when a batch takes longer, and doubles (up to
/// [`CLEANUP_BATCH`]) when it takes less than a quarter of it.
pub const CLEANUP_BATCH_TARGET: Duration = Duration::from_millis(15);

/// The write connection's settings while a bulk load's end builds the indexes: the sorter's temporary table on
/// disk rather than in memory, the file mapped (each index build reads every row, overflow pages and all: mapped,
/// without a system call per page), and a larger page cache for the sorter.
const FINISH_PRAGMAS: [&str; 3] = [
    "PRAGMA temp_store = file",
    "PRAGMA mmap_size = 17179869184",
    "PRAGMA cache_size = -262144",
];
/// The write connection's settings again once the indexes are built.
const FINISH_RESET: [&str; 3] = [
    "PRAGMA temp_store = memory",
    "PRAGMA mmap_size = 0",
    "PRAGMA cache_size = -2000",
];

/// The state backend over one SQLite file. Cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub(crate) struct SqliteStore {
    pool: SqlitePool,
    path: PathBuf,
    busy_ms: u64,
    read_only: bool,
    migration: Arc<MigrationReport>,
    /// The file has the trigger-kept counters ([`crate::counters`]): the overview reads them instead of counting.
    counters: bool,
    /// The file has the columns of [`crate::RunExtras`] (schema version 3); a file opened read-only before it was
    /// migrated may not, and then reads them as their defaults.
    extras: bool,
    /// The file has schema version 6's partial indexes of the failed runs (a scope's failure groups read one range
    /// of them); a file opened read-only before its upgrade may not.
    failure_indexes: bool,
    /// The write connection's `synchronous` level (from the store's durability), restored after a raw copy.
    synchronous: &'static str,
    /// Every save goes through it (group commit on a connection of its own); `None` when read-only.
    writer: Option<Writer>,
    /// Every [`Store::load_state`] goes through them (connections of their own, lookups sharing a statement).
    readers: Readers,
}

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path` with `options`, then migrates it (unless
    /// read-only).
    ///
    /// # Errors
    /// [`StoreError::UnsupportedFile`] for a file that is not a SQLite database or holds a table flowstate cannot
    /// migrate (the file is left byte-for-byte unchanged), or, read-only, a file that needs a migration;
    /// [`StoreError::CannotOpen`] for a missing folder or a permission problem; [`StoreError::Busy`] when another
    /// process holds the lock past the busy timeout.
    pub(crate) async fn open_with(path: &Path, options: &StoreOptions) -> Result<SqliteStore> {
        let path = path.to_path_buf();
        let busy_ms = options.busy_timeout.as_millis() as u64;
        let mut exists = check_file(&path, options.read_only)?;

        let base = SqliteConnectOptions::new()
            .filename(&path)
            .busy_timeout(options.busy_timeout)
            .foreign_keys(true)
            // A write inside a transaction that fires the counters' triggers keeps a statement journal (to undo
            // just that statement); at a few dozen pages it outgrows SQLite's 64 KiB in-memory limit and spills to
            // a temporary file, which made every save of a group commit about 0.5 ms slower. Keep it in memory.
            .pragma("temp_store", "memory")
            .log_statements(tracing::log::LevelFilter::Trace)
            // A migration's index builds and recounts (a bulk load's end) take seconds by design: not a warning.
            .log_slow_statements(tracing::log::LevelFilter::Debug, Duration::from_secs(1));

        if !exists && !options.read_only {
            create_new(&path, &base, busy_ms).await?;
            exists = check_file(&path, false)?;
        }

        if exists {
            // Look before writing anything: a file we cannot migrate must stay exactly as it was, so it is only
            // ever opened read-only until we know we can use it.
            let mut conn = base
                .clone()
                .read_only(true)
                .connect()
                .await
                .map_err(|e| open_error(&path, e, busy_ms))?;
            let inspection = self::schema::preflight(&mut conn)
                .await
                .map_err(|e| with_path(e, &path, busy_ms))?;
            let _ = conn.close().await;
            if options.read_only && !self::schema::is_readable(&inspection) {
                return Err(StoreError::UnsupportedFile {
                    path,
                    reason: format!(
                        "it needs a migration before it can be read (it holds {}) and was opened read-only; \
                         run `flowstate migrate` first",
                        inspection.kind.describe()
                    ),
                });
            }
        }

        let synchronous = match options.durability {
            Durability::Full => SqliteSynchronous::Full,
            Durability::Normal => SqliteSynchronous::Normal,
        };
        // A writable open migrates first, on a connection of its own that keeps the journal mode the file has: a
        // migration that fails (a full disk, a held lock, a kill) then leaves the file byte-for-byte as it was, and
        // only a file that is current is switched to WAL (by the pool's connections below), which rewrites its
        // header.
        let migrated = if options.read_only {
            None
        } else {
            let mut conn = base
                .clone()
                .create_if_missing(true)
                .synchronous(synchronous)
                // Filling the counters keeps a temporary table of one small row per run: on disk, not in memory.
                .pragma("temp_store", "file")
                .connect()
                .await
                .map_err(|e| open_error(&path, e, busy_ms))?;
            let report = self::schema::migrate(&mut conn, busy_ms).await;
            let _ = conn.close().await;
            Some(report.map_err(|e| with_path(e, &path, busy_ms))?)
        };

        let mut connect = base.read_only(options.read_only);
        if !options.read_only {
            connect = connect
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(synchronous);
        }
        // Saves have a connection of their own (see `writer`): one task writes every save on it, several
        // callers' saves sharing one statement and one commit.
        let writer = if options.read_only {
            None
        } else {
            let conn = connect
                .clone()
                .connect()
                .await
                .map_err(|e| open_error(&path, e, busy_ms))?;
            Some(Writer::start(conn, path.clone(), options.busy_timeout).map_err(thread_error)?)
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .min_connections(1)
            .acquire_timeout(options.busy_timeout + Duration::from_secs(5))
            .connect_with(connect.clone())
            .await
            .map_err(|e| open_error(&path, e, busy_ms))?;
        // A migrated file has the counters and the extra columns; a file opened read-only may not (flujo's, or an
        // older flowstate's).
        let (migration, counters, extras, failure_indexes) = match migrated {
            Some(report) => (report, true, true, true),
            None => {
                let mut conn = pool.acquire().await.map_err(|e| open_error(&path, e, busy_ms))?;
                let ins = self::schema::inspect(&mut conn)
                    .await
                    .map_err(|e| with_path(e, &path, busy_ms))?;
                let counters = self::schema::has_counters(&ins);
                let extras = ins.has_extras();
                let failure_indexes = ins.has_failure_indexes();
                let report = MigrationReport {
                    from: ins.kind,
                    to_version: crate::schema::SCHEMA_VERSION,
                    changes: Vec::new(),
                    timings: Vec::new(),
                };
                (report, counters, extras, failure_indexes)
            }
        };
        // Lookups by id have connections of their own too (see `reader`): one per core, at most 4, and no more
        // than the pool may hold.
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut reader_conns = Vec::new();
        for _ in 0..cores.min(4).min(options.max_connections.max(1) as usize) {
            reader_conns.push(
                connect
                    .clone()
                    .connect()
                    .await
                    .map_err(|e| open_error(&path, e, busy_ms))?,
            );
        }
        let readers = Readers::start(reader_conns, lookup_sql(extras)).map_err(thread_error)?;

        Ok(SqliteStore {
            synchronous: match options.durability {
                Durability::Full => "FULL",
                Durability::Normal => "NORMAL",
            },
            pool,
            path,
            busy_ms,
            read_only: options.read_only,
            migration: Arc::new(migration),
            counters,
            extras,
            failure_indexes,
            writer,
            readers,
        })
    }

    /// What opening this store changed in the file.
    pub(crate) fn migration(&self) -> &MigrationReport {
        &self.migration
    }

    /// Closes every connection (SQLite then checkpoints the WAL), and returns once they are closed. Saves already
    /// made (called before `close`) are written first; later ones, and every other call, fail as on a closed pool.
    pub(crate) async fn close(&self) {
        if let Some(writer) = &self.writer {
            writer.close().await;
        }
        self.readers.close().await;
        self.pool.close().await;
        // sqlx hands a used connection back to the pool in a spawned task, so `close` can return while the last
        // one is still open; a process that exits then leaves its writes in the -wal file instead of the
        // database file. Wait (boundedly) until every connection is really closed.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while self.pool.size() > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// How the saves of this store (this process) shared their commits since it was opened; all zero when
    /// read-only. For benchmarks and tests.
    pub(crate) fn write_stats(&self) -> WriteStats {
        self.writer.as_ref().map(Writer::stats).unwrap_or_default()
    }

    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// True when the overview figures come from the trigger-kept counters rather than from counting rows.
    pub(crate) fn has_counters(&self) -> bool {
        self.counters
    }

    /// True when a scope's failures are read from schema version 6's partial indexes of the failed runs.
    pub(crate) fn has_failure_indexes(&self) -> bool {
        self.failure_indexes
    }

    pub(crate) fn map(&self, context: &str) -> impl Fn(sqlx::Error) -> StoreError + '_ {
        self.err(context)
    }

    fn err(&self, context: &str) -> impl Fn(sqlx::Error) -> StoreError + '_ {
        let context = context.to_string();
        move |e| {
            if is_disk_full(&e) {
                return StoreError::DiskFull {
                    path: self.path.clone(),
                    context: context.clone(),
                };
            }
            map_err(e, self.busy_ms, &context)
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

    /// Saves whole rows: one through the writer's group commit, several in one transaction.
    pub(crate) async fn save(&self, rows: Vec<ValidState>, now: DateTime<Utc>) -> Result<()> {
        let writer = self.writer()?;
        let mut rows: Vec<EncodedRow> = rows.iter().map(|r| EncodedRow::new(r, now)).collect();
        if rows.len() == 1 {
            return writer.save(rows.pop().expect("one row")).await;
        }
        writer.save_many(rows).await
    }

    /// Drops the counters' triggers and every index of [`schema::indexes`] (a bulk load: [`crate::bulk`]), in
    /// one transaction on the write connection. The next migration (at [`SqliteStore::finish_bulk`], or at the
    /// next writable open should the loader die) creates them again and recounts the counters.
    pub(crate) async fn begin_bulk(&self) -> Result<()> {
        let writer = self.writer()?;
        let mut statements: Vec<String> = counters::TRIGGERS
            .iter()
            .map(|t| format!("DROP TRIGGER IF EXISTS {t}"))
            .collect();
        statements.extend(
            schema::indexes()
                .into_iter()
                .map(|(name, _, _)| format!("DROP INDEX IF EXISTS {name}")),
        );
        writer
            .exec(Box::new(move |conn| {
                Box::pin(async move {
                    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
                    for sql in &statements {
                        sqlx::query(sql).execute(&mut *tx).await?;
                    }
                    tx.commit().await?;
                    Ok(0)
                })
            }))
            .await?
            .map_err(self.err("starting a bulk load"))
            .map(|_| ())
    }

    /// A bulk batch and its note, in one transaction on the write connection.
    pub(crate) async fn bulk_write(
        &self,
        rows: Vec<ValidState>,
        now: DateTime<Utc>,
        note: Option<&BulkNote>,
    ) -> Result<()> {
        let writer = self.writer()?;
        let rows: Vec<EncodedRow> = rows.into_iter().map(|r| EncodedRow::from_valid(r, now)).collect();
        let note = note.map(|n| writer::BulkNoteRow {
            id: n.id,
            at: time::format_timestamp(&now),
            detail: n.detail.to_string(),
            matched: n.matched,
            affected: n.affected,
        });
        writer.bulk(rows, note).await
    }

    /// Ends a bulk load: the migration, on the write connection (indexes, triggers, counters recounted), with
    /// its temporary table of one small row per run on disk rather than in memory.
    pub(crate) async fn finish_bulk(&self) -> Result<MigrationReport> {
        let writer = self.writer()?;
        let busy_ms = self.busy_ms;
        let (report_tx, report_rx) = tokio::sync::oneshot::channel::<Result<MigrationReport>>();
        writer
            .exec(Box::new(move |conn| {
                Box::pin(async move {
                    for pragma in FINISH_PRAGMAS {
                        sqlx::query(pragma).execute(&mut *conn).await?;
                    }
                    let report = schema::migrate(conn, busy_ms).await;
                    let mut reset = Ok(());
                    for pragma in FINISH_RESET {
                        if let Err(e) = sqlx::query(pragma).execute(&mut *conn).await {
                            reset = Err(e);
                        }
                    }
                    let _ = report_tx.send(report);
                    reset.map(|()| 0)
                })
            }))
            .await?
            .map_err(self.err("finishing a bulk load"))?;
        report_rx
            .await
            .map_err(|_| StoreError::Database(sqlx::Error::WorkerCrashed))?
            .map_err(|e| with_path(e, &self.path, self.busy_ms))
    }

    /// Attaches a SQLite file read-only to the write connection for a raw copy ([`rawcopy`]); `None` when it
    /// cannot be copied raw (it is then detached again).
    pub(crate) async fn attach_source(&self, path: &Path) -> Result<Option<rawcopy::Source>> {
        let writer = self.writer()?;
        let path = path.to_path_buf();
        let (tx, rx) = tokio::sync::oneshot::channel();
        writer
            .exec(Box::new(move |conn| {
                Box::pin(async move {
                    let _ = tx.send(rawcopy::attach(conn, &path).await);
                    Ok(0)
                })
            }))
            .await?
            .map_err(self.err("attaching the source"))?;
        rx.await
            .map_err(|_| StoreError::Database(sqlx::Error::WorkerCrashed))?
            .map_err(self.err("attaching the source"))
    }

    /// One range of a raw copy from the attached source ([`rawcopy::copy_range`]).
    pub(crate) async fn copy_range(
        &self,
        source: rawcopy::Source,
        after: Option<String>,
        limit: u32,
        now: DateTime<Utc>,
        note: Option<crate::bulk::RangeNote>,
    ) -> Result<crate::bulk::CopiedRange> {
        let writer = self.writer()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        writer
            .exec(Box::new(move |conn| {
                Box::pin(async move {
                    let _ = tx.send(rawcopy::copy_range(conn, source, after, limit, now, note).await);
                    Ok(0)
                })
            }))
            .await?
            .map_err(self.err("copying a range of runs"))?;
        rx.await
            .map_err(|_| StoreError::Database(sqlx::Error::WorkerCrashed))?
            .map_err(self.err("copying a range of runs"))
    }

    /// Detaches the source of a raw copy.
    pub(crate) async fn detach_source(&self) -> Result<()> {
        let writer = self.writer()?;
        let synchronous = self.synchronous;
        writer
            .exec(Box::new(move |conn| {
                Box::pin(async move { rawcopy::detach(conn, synchronous).await.map(|_| 0) })
            }))
            .await?
            .map_err(self.err("detaching the source"))
            .map(|_| ())
    }

    fn writer(&self) -> Result<&Writer> {
        self.check_writable()?;
        // Only a read-only store has no writer.
        self.writer
            .as_ref()
            .ok_or_else(|| StoreError::Database(sqlx::Error::PoolClosed))
    }

    pub(crate) async fn load_state(&self, run_id: &str) -> Result<Option<WorkflowState>> {
        let row = self
            .readers
            .load(run_id)
            .await
            .map_err(self.err("loading a run"))?;
        Ok(row.map(|r| decode_state(r.as_slice())))
    }

    pub(crate) async fn load_run_view(&self, run_id: &str, max: i64) -> Result<Option<RunView>> {
        let head = |column: &str| format!("substr(CAST({column} AS TEXT), 1, ?2), octet_length({column})");
        let extras = if self.extras {
            format!(
                "{}, {}, (is_background_task IS 1), CAST(parent_run_id AS TEXT), CAST(task_id AS TEXT)",
                head("metadata"),
                head("background_error")
            )
        } else {
            "NULL, NULL, NULL, NULL, 0, NULL, NULL".to_string()
        };
        let sql = format!(
            "SELECT {}, {}, {}, {}, {}, {extras} FROM workflow_state WHERE run_id = ?1",
            *SUMMARY_COLUMNS,
            head("error_message"),
            head("pipeline_context"),
            head("last_step_output"),
            head("step_history"),
        );
        let row = sqlx::query(&sql)
            .bind(run_id)
            .bind(max)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err("loading a run's page"))?;
        Ok(row.map(|row| {
            let text_head = |i: usize| {
                row.text(i).map(|head| TextHead {
                    total_bytes: row.size(i + 1).unwrap_or(head.len() as u64),
                    head: head.to_string(),
                })
            };
            let at = SUMMARY_COLUMN_COUNT;
            RunView {
                summary: decode_summary(&row),
                error_message: text_head(at),
                pipeline_context: text_head(at + 2),
                last_step_output: text_head(at + 4),
                step_history: text_head(at + 6),
                metadata: text_head(at + 8),
                background_error: text_head(at + 10),
                is_background_task: row.int(at + 12) == Some(1),
                parent_run_id: row.text(at + 13).map(str::to_string),
                task_id: row.text(at + 14).map(str::to_string),
            }
        }))
    }

    pub(crate) async fn load_text_column(
        &self,
        run_id: &str,
        column: TextColumn,
    ) -> Result<Option<Option<String>>> {
        let extra = matches!(column, TextColumn::Metadata | TextColumn::BackgroundError);
        // A file without the extra columns (opened read-only before its migration) holds NULL in them.
        let value = if extra && !self.extras {
            "NULL".to_string()
        } else {
            format!("CAST({} AS TEXT)", column.sql_name())
        };
        let sql = format!("SELECT {value} FROM workflow_state WHERE run_id = ?1");
        let row: Option<(Option<String>,)> = sqlx::query_as(&sql)
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err("loading a run's column"))?;
        Ok(row.map(|(text,)| text))
    }

    /// Whole runs after `after` in run-id order (SQLite's `BINARY` collation: byte order), through the primary key.
    pub(crate) async fn export(&self, after: Option<&str>, limit: u32) -> Result<Vec<WorkflowState>> {
        let sql = format!(
            "SELECT {} FROM workflow_state WHERE ?1 IS NULL OR run_id > ?1 ORDER BY run_id LIMIT ?2",
            row::whole_columns(self.extras)
        );
        let rows = sqlx::query(&sql)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(self.err("exporting runs"))?;
        Ok(rows.iter().map(decode_state).collect())
    }

    pub(crate) async fn delete_state(&self, run_id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM workflow_state WHERE run_id = ?1")
            .bind(run_id)
            .execute(&self.pool)
            .await
            .map_err(self.err("deleting a run"))?;
        Ok(done.rows_affected() > 0)
    }

    pub(crate) async fn list(&self, list: &ValidList<'_>) -> Result<Vec<(i64, RunSummary)>> {
        // A time or memory bound on a list by instant (newest, idle): its order's index walked with the bound
        // checked per row reads every run when few match (437 ms at 100,000 runs with none over 5 minutes). When
        // at most SPARSE runs match (counted on the bound's own index, a range), the page reads that range and
        // sorts it instead.
        let q = list.query;
        let bounded = q.min_execution_ms.is_some()
            || q.max_execution_ms.is_some()
            || q.min_memory_mb.is_some()
            || q.max_memory_mb.is_some();
        let sparse = bounded
            && matches!(list.sort, ListSort::Newest | ListSort::Idle)
            && self.count_up_to(list, SPARSE).await?.is_some_and(|n| n <= SPARSE);
        let (key, real) = sort_key(list.sort);
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
            "SELECT {}, {key} FROM workflow_state WHERE 1 = 1",
            *SUMMARY_COLUMNS
        ));
        self.push_filters(&mut qb, list, true);
        let column = sort_column(list.sort);
        let backwards = list.backwards();
        // The forward order: descending, but for the longest idle (oldest update first).
        let descending = list.sort != ListSort::Idle;
        if let Some(c) = &list.cursor {
            // Spelled as a range on the key plus a tie-break, not as the row value `(key, run_id) < (?, ?)`:
            // SQLite turns only the former into a seek on the index. With the row value it walked the index from
            // the newest entry (1.6 s for page 10,000 of one pipeline at 1M runs; 0.2 ms this way).
            let (op, op_eq) = if c.before != descending {
                ("<", "<=")
            } else {
                (">", ">=")
            };
            qb.push(format!(" AND {column} {op_eq} "));
            push_key(&mut qb, c.key, real);
            qb.push(format!(" AND ({column} {op} "));
            push_key(&mut qb, c.key, real);
            qb.push(format!(" OR run_id {op} "))
                .push_bind(c.run_id.clone())
                .push(")");
        }
        let dir = if backwards == descending { "ASC" } else { "DESC" };
        // `+ 0`: the same order, which no index gives, so SQLite reads the bound's range and sorts it.
        let column = if sparse { format!("{column} + 0") } else { column };
        qb.push(format!(" ORDER BY {column} {dir}, run_id {dir} LIMIT "))
            .push_bind(i64::from(list.limit) + 1)
            .push(" OFFSET ")
            .push_bind(list.offset);

        let rows = qb
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(self.err("listing runs"))?;
        Ok(rows
            .iter()
            .map(|row| {
                let key = if real {
                    validate::real_key(row.get::<f64, _>(SUMMARY_COLUMN_COUNT))
                } else {
                    row.get::<i64, _>(SUMMARY_COLUMN_COUNT)
                };
                (key, decode_summary(row))
            })
            .collect())
    }

    /// Appends the list's filters (` AND ...`), and what its order implies (a run with the key it sorts on), to a
    /// `WHERE` clause.
    fn push_filters<'a>(&self, qb: &mut QueryBuilder<'a, Sqlite>, list: &ValidList<'_>, ordered: bool) {
        let query = list.query;
        let created = instant_sql("created_at");
        let updated = instant_sql("updated_at");
        // A page of an order other than newest first reads the index of its order (or the one that holds the
        // filter and the order: pipeline and execution time, status and last update): an equality on a column
        // whose index does not give the order is written `+column`, so SQLite does not read every run of that
        // status (or pipeline, or version) and sort them (a sort of every failed run at 10M). Counts keep the plain
        // spelling: they read the narrowest index.
        let plain = |column: &str, serves: bool| {
            if !ordered || serves || list.sort == ListSort::Newest {
                column.to_string()
            } else {
                format!("+{column}")
            }
        };
        let status = plain("status", list.sort == ListSort::Idle);
        let pipeline = plain("pipeline_id", list.sort == ListSort::Slowest);
        let version = plain("pipeline_version", false);
        if !query.statuses.is_empty() {
            let names: Vec<&Status> = query
                .statuses
                .iter()
                .filter(|s| !matches!(s, Status::Other(None)))
                .collect();
            let wants_null = query.statuses.iter().any(|s| matches!(s, Status::Other(None)));
            qb.push(format!(" AND ({status} IN ("));
            let mut sep = qb.separated(", ");
            for s in &names {
                sep.push_bind(s.as_str().to_string());
            }
            if names.is_empty() {
                sep.push("NULL");
            }
            qb.push(")");
            if wants_null {
                qb.push(format!(" OR {status} IS NULL"));
            }
            qb.push(")");
        }
        if let Some(p) = &query.pipeline_id {
            qb.push(format!(" AND {pipeline} = ")).push_bind(p.clone());
        }
        for (value, expr, op) in [
            (&query.created_after, &created, " >= "),
            (&query.created_before, &created, " < "),
            (&query.updated_after, &updated, " >= "),
            (&query.updated_before, &updated, " < "),
        ] {
            if let Some(at) = value {
                qb.push(format!(" AND {expr}{op}"))
                    .push_bind(time::instant_micros(at));
            }
        }
        if let Some(prefix) = &query.run_id_prefix {
            qb.push(" AND substr(run_id, 1, ")
                .push_bind(prefix.chars().count() as i64)
                .push(") = ")
                .push_bind(prefix.clone());
        }
        if let Some(text) = &query.error_contains {
            qb.push(" AND instr(lower(error_message), lower(")
                .push_bind(text.clone())
                .push(")) > 0");
        }
        // Spelled as the partial indexes' conditions imply, so SQLite reads them (a run is a background task when
        // `is_background_task` holds 1, as `decode_extras` reads it). A file without the columns (opened
        // read-only before its migration) has no background task and no parent run: every run has the defaults.
        if let Some(parent) = &query.parent_run_id {
            if self.extras {
                qb.push(" AND parent_run_id = ").push_bind(parent.clone());
            } else {
                qb.push(" AND 0");
            }
        }
        match (query.background, self.extras) {
            (Some(true), true) => {
                qb.push(" AND is_background_task = 1");
            }
            (Some(false), true) => {
                qb.push(" AND is_background_task IS NOT 1");
            }
            (Some(true), false) => {
                qb.push(" AND 0");
            }
            (Some(false), false) | (None, _) => {}
        }
        if let Some(v) = &query.pipeline_version {
            qb.push(format!(" AND {version} = ")).push_bind(v.clone());
        }
        // Only numbers: a text value (no writer stores one) sorts after every number in SQLite, and would match
        // every lower bound.
        let numeric = |c: &str| format!(" AND typeof({c}) IN ('integer', 'real')");
        if query.min_execution_ms.is_some() || list.sort == ListSort::Slowest {
            qb.push(numeric("execution_time_ms"));
        }
        if query.min_memory_mb.is_some() || list.sort == ListSort::Heaviest {
            qb.push(numeric("memory_usage_mb"));
        }
        if let Some(v) = query.min_execution_ms {
            qb.push(" AND execution_time_ms >= ").push_bind(v);
        }
        if let Some(v) = query.max_execution_ms {
            qb.push(" AND execution_time_ms <= ").push_bind(v);
        }
        if let Some(v) = query.min_memory_mb {
            qb.push(" AND memory_usage_mb >= ").push_bind(v);
        }
        if let Some(v) = query.max_memory_mb {
            qb.push(" AND memory_usage_mb <= ").push_bind(v);
        }
    }

    /// How many runs a list's filters match: from the counters when they answer it (statuses and a pipeline,
    /// newest, slowest or idle), otherwise counted from the rows up to [`RunCount::BOUND`] and within
    /// [`COUNT_STEPS`] (past either, "more than" what was counted).
    pub(crate) async fn count(&self, list: &ValidList<'_>) -> Result<RunCount> {
        let map = self.err("counting runs");
        if self.counters && list.only_counted_filters() && list.sort != ListSort::Heaviest {
            let column = if list.sort == ListSort::Slowest {
                "timed"
            } else {
                "runs"
            };
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(format!(
                "SELECT COALESCE(sum({column}), 0) FROM flowstate_counts WHERE 1 = 1"
            ));
            let query = list.query;
            if !query.statuses.is_empty() {
                qb.push(" AND status_key IN (");
                let mut sep = qb.separated(", ");
                for s in &query.statuses {
                    sep.push_bind(counter_key(match s {
                        Status::Other(None) => None,
                        s => Some(s.as_str()),
                    }));
                }
                qb.push(")");
            }
            if let Some(p) = &query.pipeline_id {
                qb.push(" AND pipeline_key = ")
                    .push_bind(counter_key(Some(p.as_str())));
            }
            let (n,): (i64,) = qb.build_query_as().fetch_one(&self.pool).await.map_err(&map)?;
            return Ok(RunCount {
                count: n.max(0) as u64,
                exact: true,
            });
        }
        Ok(match self.count_up_to(list, RunCount::BOUND).await? {
            Some(n) if n <= RunCount::BOUND => RunCount {
                count: n,
                exact: true,
            },
            Some(_) => RunCount {
                count: RunCount::BOUND,
                exact: false,
            },
            None => RunCount {
                count: 0,
                exact: false,
            },
        })
    }

    /// How many runs a list's filters match, counted up to `bound + 1` within [`COUNT_STEPS`]; `None` past the
    /// steps.
    async fn count_up_to(&self, list: &ValidList<'_>, bound: u64) -> Result<Option<u64>> {
        let map = self.err("counting runs");
        let mut qb: QueryBuilder<Sqlite> =
            QueryBuilder::new("SELECT count(*) FROM (SELECT 1 FROM workflow_state WHERE 1 = 1");
        self.push_filters(&mut qb, list, false);
        qb.push(" LIMIT ").push_bind(bound as i64 + 1).push(")");
        let mut conn = self.pool.acquire().await.map_err(&map)?;
        let mut steps = 0u32;
        let deadline = std::time::Instant::now() + COUNT_TIME;
        conn.lock_handle()
            .await
            .map_err(&map)?
            .set_progress_handler(1000, move || {
                steps += 1;
                // The time only past the first 50,000 instructions, so a small count always finishes however busy
                // the machine is.
                steps <= COUNT_STEPS && (steps < 50 || std::time::Instant::now() < deadline)
            });
        let counted: std::result::Result<(i64,), sqlx::Error> =
            qb.build_query_as().fetch_one(&mut *conn).await;
        conn.lock_handle()
            .await
            .map_err(&map)?
            .set_progress_handler(0, || true);
        match counted {
            Ok((n,)) => Ok(Some(n.max(0) as u64)),
            Err(e) if sqlite_code(&e) == Some(code::INTERRUPT) => Ok(None),
            Err(e) => Err(map(e)),
        }
    }

    /// The seed's four figures, from one read snapshot (a single read transaction).
    ///
    /// With the counters ([`crate::counters`]) this reads a few small rows whatever the size of the table: runs
    /// and execution-time sums per status from `flowstate_counts`, and the runs created in the last 24 hours from
    /// `flowstate_created_hourly` (whole hours) plus an index range of at most half an hour (the part of the hour
    /// the window starts in). Execution times that are not integers (a Python float) count rounded to the
    /// millisecond, as every reader shows them. Without counters (a flujo file opened read-only), it counts the
    /// rows.
    ///
    /// # Errors
    /// Database failures.
    pub(crate) async fn stats(&self, recent_since: DateTime<Utc>) -> Result<WorkflowStats> {
        let cutoff = time::instant_micros(&recent_since);
        let map = self.err("reading stats");
        let mut conn = self.pool.acquire().await.map_err(&map)?;
        let mut tx = conn.begin().await.map_err(&map)?;
        let per_status: Vec<(Option<String>, i64)>;
        let (recent, average): (i64, Option<f64>);
        if self.counters {
            let rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(counters::sql::COUNTS)
                .fetch_all(&mut *tx)
                .await
                .map_err(&map)?;
            recent = counters::created_since(&mut tx, cutoff).await.map_err(&map)?;
            let (mut timed, mut sum) = (0i64, 0i128);
            let mut statuses = Vec::with_capacity(rows.len());
            for (status_key, runs, t, hi, lo) in rows {
                timed += t;
                sum += counters::time_sum(hi, lo);
                statuses.push((counters::decode_key(&status_key), runs));
            }
            per_status = statuses;
            average = (timed > 0).then(|| sum as f64 / timed as f64);
        } else {
            per_status =
                sqlx::query_as("SELECT CAST(status AS TEXT), count(*) FROM workflow_state GROUP BY status")
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(&map)?;
            recent = sqlx::query_scalar(&format!(
                "SELECT count(*) FROM workflow_state WHERE {} >= ?1",
                instant_sql("created_at")
            ))
            .bind(cutoff)
            .fetch_one(&mut *tx)
            .await
            .map_err(&map)?;
            average = sqlx::query_scalar(
                "SELECT CAST(avg(execution_time_ms) AS REAL) FROM workflow_state WHERE execution_time_ms IS NOT NULL",
            )
            .fetch_one(&mut *tx)
            .await
            .map_err(&map)?;
        }
        tx.commit().await.map_err(&map)?;

        Ok(WorkflowStats::from_parts(per_status, recent, average))
    }

    pub(crate) async fn failed(&self, cutoff: DateTime<Utc>, limit: u32) -> Result<Vec<RunSummary>> {
        let updated = instant_sql("updated_at");
        let sql = format!(
            "SELECT {} FROM workflow_state WHERE status = 'failed' AND {updated} >= ?1 \
             ORDER BY {updated} DESC, run_id DESC LIMIT ?2",
            *SUMMARY_COLUMNS
        );
        let rows = sqlx::query(&sql)
            .bind(time::instant_micros(&cutoff))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(self.err("listing failed runs"))?;
        Ok(rows.iter().map(decode_summary).collect())
    }

    pub(crate) async fn preview_cleanup(&self, policy: &ValidCleanup) -> Result<CleanupPreview> {
        let cutoff = policy.cutoff;
        let mut qb = cleanup_filter(
            policy,
            &format!(
                "SELECT CAST(status AS TEXT), CAST(COALESCE(pipeline_id, '') AS TEXT), count(*), min({u}), max({u}) \
                 FROM workflow_state WHERE ",
                u = instant_sql("updated_at")
            ),
        );
        qb.push(" GROUP BY status, pipeline_id");
        let rows = qb
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(self.err("previewing a cleanup"))?;
        let mut preview = CleanupPreview {
            cutoff,
            matched: 0,
            by_status: BTreeMap::new(),
            by_pipeline: BTreeMap::new(),
            oldest_updated_at: None,
            newest_updated_at: None,
        };
        let (mut oldest, mut newest) = (i64::MAX, i64::MIN);
        for row in rows {
            let status = Status::from_stored(row.get::<Option<String>, _>(0));
            let pipeline: String = row.get(1);
            let count: i64 = row.get(2);
            oldest = oldest.min(row.get::<i64, _>(3));
            newest = newest.max(row.get::<i64, _>(4));
            preview.matched += count;
            *preview.by_status.entry(status.as_str().to_string()).or_insert(0) += count;
            *preview.by_pipeline.entry(pipeline).or_insert(0) += count;
        }
        if preview.matched > 0 {
            preview.oldest_updated_at = time::from_micros(oldest);
            preview.newest_updated_at = time::from_micros(newest);
        }
        Ok(preview)
    }

    /// Deletes the runs a policy matches, in small batches. The batches run on the store's write connection, in
    /// turn with the saves of this process: a save waits for at most one batch, in the queue rather than in
    /// SQLite's busy handler. Each batch is read ahead on a read connection first and checkpoints what it wrote
    /// before the next save, so the wait includes no disk read and no checkpoint of other writes.
    pub(crate) async fn cleanup(&self, policy: &ValidCleanup) -> Result<u64> {
        self.cleanup_batches(policy, None).await
    }

    /// [`SqliteStore::cleanup`], each batch also recording the run ids it deleted under audit entry `record`
    /// (and adding them to its `affected`) in the batch's own transaction, when given.
    pub(crate) async fn cleanup_batches(&self, policy: &ValidCleanup, record: Option<i64>) -> Result<u64> {
        let writer = self.writer()?;
        let mut deleted = 0u64;
        // Small at first: the first batch's pages are the least likely to be cached.
        let mut batch: i64 = 8;
        loop {
            let mut qb = match record {
                None => cleanup_filter(
                    policy,
                    "DELETE FROM workflow_state WHERE run_id IN (SELECT run_id FROM workflow_state WHERE ",
                ),
                // The batch's ids first, into a temporary table the delete and the record both read.
                Some(_) => cleanup_filter(
                    policy,
                    "INSERT INTO temp.flowstate_batch (run_id) SELECT run_id FROM workflow_state WHERE ",
                ),
            };
            qb.push(" LIMIT ").push_bind(batch);
            if record.is_none() {
                qb.push(")");
            }
            // Read the batch first, on a read connection and outside the write lock: on a file larger than memory
            // the oldest rows are on disk, and the delete would otherwise read them while every save waits behind
            // it (a 10M-run file gave saves 100 ms stalls). Not while the previous batch is deleted: a reader then
            // keeps the checkpoint from emptying the WAL, which grew to 20,000 pages and stalled saves 160 ms.
            let read_ahead = {
                let mut ahead = cleanup_read_ahead(policy, batch);
                let began = std::time::Instant::now();
                if let Err(e) = ahead.build().fetch_optional(&self.pool).await {
                    // Only a warm-up: the delete itself reports what is wrong.
                    tracing::debug!(error = %e, "reading a cleanup batch ahead");
                }
                began.elapsed()
            };
            let began = std::time::Instant::now();
            let done = writer
                .exec(Box::new(move |conn| {
                    Box::pin(async move {
                        let done = match record {
                            None => qb.build().execute(&mut *conn).await?.rows_affected(),
                            Some(audit_id) => audit::delete_recorded_batch(conn, qb, audit_id).await?,
                        };
                        // The batch copies what it wrote to the WAL into the database itself, in its own turn:
                        // otherwise SQLite does it inside whichever commit crosses 1,000 WAL pages, often a
                        // save's, which then waits for the checkpoint of several batches. Its time counts in the
                        // batch's, so the batches shrink when the disk is slow.
                        let t = std::time::Instant::now();
                        match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                            .fetch_all(&mut *conn)
                            .await
                        {
                            Ok(_) => tracing::debug!(
                                checkpoint_ms = t.elapsed().as_secs_f64() * 1e3,
                                "cleanup batch checkpointed"
                            ),
                            // Another connection checkpointing, or a lock: SQLite's own checkpoint takes over.
                            Err(e) => tracing::debug!(error = %e, "checkpoint after a cleanup batch"),
                        }
                        Ok(done)
                    })
                }))
                .await?;
            let took = began.elapsed();
            let done = done.map_err(self.err("cleaning up"))?;
            deleted += done;
            if done < batch as u64 {
                break;
            }
            tracing::debug!(
                rows = done,
                read_ahead_ms = read_ahead.as_secs_f64() * 1e3,
                delete_ms = took.as_secs_f64() * 1e3,
                "cleanup batch"
            );
            // Keep each batch near the target whatever the rows cost (their size, the indexes, the triggers, the
            // checkpoint).
            if took > CLEANUP_BATCH_TARGET {
                batch = (batch / 2).max(8);
            } else if took < CLEANUP_BATCH_TARGET / 4 {
                batch = (batch * 2).min(CLEANUP_BATCH);
            }
            tokio::task::yield_now().await;
        }
        tracing::info!(deleted, cutoff = %policy.cutoff, "cleanup finished");
        Ok(deleted)
    }
}

/// A statement that reads the next `limit` rows of a cleanup (those its delete will pick) and their entries in the
/// two indexes whose order has nothing to do with age (by execution time): the delete must find each row's entry
/// there, on pages spread over the whole index.
fn cleanup_read_ahead<'a>(policy: &ValidCleanup, limit: i64) -> QueryBuilder<'a, Sqlite> {
    let mut warm = cleanup_filter(
        policy,
        "WITH batch AS MATERIALIZED (SELECT pipeline_id AS p, execution_time_ms AS e, \
         length(pipeline_context) + length(step_history) + ifnull(length(last_step_output), 0) AS n \
         FROM workflow_state WHERE run_id IN (SELECT run_id FROM workflow_state WHERE ",
    );
    warm.push(" LIMIT ").push_bind(limit).push(format!(
        ")) SELECT (SELECT sum(n) FROM batch), \
             (SELECT count(*) FROM workflow_state INDEXED BY {} \
              WHERE execution_time_ms IN (SELECT e FROM batch)), \
             (SELECT count(*) FROM workflow_state INDEXED BY {} \
              WHERE (pipeline_id, execution_time_ms) IN (SELECT p, e FROM batch))",
        schema::TIMED_INDEX,
        schema::PIPELINE_TIMED_INDEX
    ));
    warm
}

/// `head` followed by the policy's condition: its statuses, last activity before the cutoff (a run whose last
/// activity cannot be read is never treated as old), its pipeline.
fn cleanup_filter<'a>(policy: &ValidCleanup, head: &str) -> QueryBuilder<'a, Sqlite> {
    let updated = instant_sql("updated_at");
    let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(head);
    qb.push("status IN (");
    let mut sep = qb.separated(", ");
    for s in &policy.statuses {
        sep.push_bind(s.as_str().to_string());
    }
    qb.push(format!(") AND {updated} < "))
        .push_bind(time::instant_micros(&policy.cutoff))
        .push(format!(" AND {updated} > {UNKNOWN_INSTANT}"));
    if let Some(p) = &policy.pipeline_id {
        qb.push(" AND pipeline_id = ").push_bind(p.clone());
    }
    qb
}

/// Checks the path before SQLite sees it. Returns whether the file exists.
fn check_file(path: &Path, read_only: bool) -> Result<bool> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Err(StoreError::CannotOpen {
            path: path.to_path_buf(),
            reason: "it is a directory, not a database file".into(),
        }),
        Ok(meta) => {
            if meta.len() == 0 {
                return Err(StoreError::UnsupportedFile {
                    path: path.to_path_buf(),
                    reason: "the file is empty, not a SQLite database; remove it or choose another path"
                        .into(),
                });
            }
            let mut header = [0u8; 16];
            let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut header));
            match read {
                Ok(()) if &header == SQLITE_MAGIC => {
                    if !read_only {
                        check_writable_file(path)?;
                    }
                    Ok(true)
                }
                Ok(()) => Err(StoreError::UnsupportedFile {
                    path: path.to_path_buf(),
                    reason: "not a SQLite database (its first bytes are not the SQLite header)".into(),
                }),
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(StoreError::UnsupportedFile {
                    path: path.to_path_buf(),
                    reason: "not a SQLite database (too short)".into(),
                }),
                Err(e) => Err(StoreError::CannotOpen {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                }),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if read_only {
                return Err(StoreError::CannotOpen {
                    path: path.to_path_buf(),
                    reason: "the file does not exist (opening read-only never creates one)".into(),
                });
            }
            let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
            if let Some(parent) = parent {
                if !parent.is_dir() {
                    return Err(StoreError::CannotOpen {
                        path: path.to_path_buf(),
                        reason: format!("the folder {} does not exist", parent.display()),
                    });
                }
            }
            Ok(false)
        }
        Err(e) => Err(StoreError::CannotOpen {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

/// Creates a new, empty database at `path` without another process ever seeing a half-made file there.
///
/// Letting SQLite create `path` itself leaves it empty (0 bytes) until the first page is written, and an empty
/// file is refused as "not a database": another process opening the same new path at that moment (workers
/// started together) failed, and a process killed in that moment left an empty file every later open refused.
/// So SQLite creates the database under a temporary name in the same folder (one page, in WAL mode), which is then
/// hard-linked to `path`: atomic, and it fails when `path` appeared meanwhile (another process won the race; its
/// file is used). A process killed meanwhile leaves only the hidden temporary file, never a file at `path`. Where
/// the file system has no hard links, SQLite creates `path` directly, as before.
async fn create_new(path: &Path, base: &SqliteConnectOptions, busy_ms: u64) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.flowstate-new-{}-{nonce}", std::process::id()));
    let made = async {
        let conn = base
            .clone()
            .filename(&tmp)
            .create_if_missing(true)
            // Before the first page is written (only a VACUUM changes it later): a new file gives the pages a
            // cleanup frees back in small steps (crate::space), never needing a blocking VACUUM.
            .auto_vacuum(sqlx::sqlite::SqliteAutoVacuum::Incremental)
            .journal_mode(SqliteJournalMode::Wal)
            .connect()
            .await
            .map_err(|e| open_error(path, e, busy_ms))?;
        conn.close().await.map_err(|e| open_error(path, e, busy_ms))
    }
    .await;
    if made.is_ok() {
        match std::fs::hard_link(&tmp, path) {
            // Ours, or another process's that got there first: either way a whole database is at `path`.
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                tracing::debug!(error = %e, "no hard link for a new database; SQLite creates it in place");
            }
        }
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut leftover = tmp.clone().into_os_string();
        leftover.push(suffix);
        let _ = std::fs::remove_file(leftover);
    }
    made
}

/// For a writable open: SQLite silently opens a file it cannot write (the database, or the -wal or -shm file
/// beside it, e.g. left by a service running as another user) read-only, and the first save then fails with
/// "attempt to write a readonly database". Say so at open instead. Opening for writing without writing changes
/// nothing in the files.
fn check_writable_file(path: &Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let file = PathBuf::from(file);
        match std::fs::OpenOptions::new().read(true).write(true).open(&file) {
            Ok(_) => {}
            Err(e) if !suffix.is_empty() && e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(StoreError::CannotOpen {
                    path: path.to_path_buf(),
                    reason: format!(
                        "{} is not writable by this user ({e}): fix its permissions, or open the database \
                         read-only to view it",
                        file.display()
                    ),
                })
            }
        }
    }
    Ok(())
}

fn open_error(path: &Path, err: sqlx::Error, busy_ms: u64) -> StoreError {
    match sqlite_code(&err) {
        Some(code::NOTADB) | Some(code::CORRUPT) => StoreError::UnsupportedFile {
            path: path.to_path_buf(),
            reason: format!("SQLite cannot read it ({err})"),
        },
        Some(code::CANTOPEN) | Some(code::READONLY) | Some(code::FULL) => cannot_open(path, &err),
        _ if is_disk_full(&err) => cannot_open(path, &err),
        _ => match err {
            sqlx::Error::Io(e) => StoreError::CannotOpen {
                path: path.to_path_buf(),
                reason: e.to_string(),
            },
            other => with_path(map_err(other, busy_ms, "opening the database"), path, busy_ms),
        },
    }
}

/// [`StoreError::CannotOpen`] with a reason that says what to do, for SQLite's "cannot open", "read-only" and
/// "full" failures at open (and during the migration that opening runs).
fn cannot_open(path: &Path, err: &sqlx::Error) -> StoreError {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.display().to_string(),
        _ => ".".to_string(),
    };
    let reason = if is_disk_full(err) {
        format!("the disk is full; nothing was changed: free some space and try again ({err})")
    } else if sqlite_extended_code(err) == Some(extended::READONLY_DIRECTORY) {
        format!(
            "the folder {folder} is not writable by this user, and SQLite must create the database's -wal and \
             -shm files there (even to read a database in WAL mode): make the folder writable ({err})"
        )
    } else if sqlite_code(err) == Some(code::READONLY) {
        format!("the file or its folder is read-only for this user: fix the permissions, or open read-only ({err})")
    } else {
        format!(
            "SQLite cannot open it: check that the file and its folder {folder} exist and are readable and \
             writable by this user ({err})"
        )
    };
    StoreError::CannotOpen {
        path: path.to_path_buf(),
        reason,
    }
}

fn with_path(err: StoreError, path: &Path, busy_ms: u64) -> StoreError {
    match err {
        StoreError::UnsupportedFile { reason, .. } => StoreError::UnsupportedFile {
            path: path.to_path_buf(),
            reason,
        },
        StoreError::Database(e) => match sqlite_code(&e) {
            Some(code::NOTADB) | Some(code::CORRUPT) => StoreError::UnsupportedFile {
                path: path.to_path_buf(),
                reason: format!("SQLite cannot read it ({e})"),
            },
            Some(code::READONLY) | Some(code::FULL) | Some(code::CANTOPEN) => cannot_open(path, &e),
            _ if is_disk_full(&e) => cannot_open(path, &e),
            _ => map_err(e, busy_ms, "opening the database"),
        },
        other => other,
    }
}

/// A thread of the store's could not be started (the process is out of threads or memory).
fn thread_error(e: std::io::Error) -> StoreError {
    StoreError::Database(sqlx::Error::Io(e))
}

impl crate::backend::Backend for SqliteStore {
    fn migration(&self) -> &MigrationReport {
        SqliteStore::migration(self)
    }
    fn has_counters(&self) -> bool {
        SqliteStore::has_counters(self)
    }
    async fn close(&self) {
        SqliteStore::close(self).await
    }
    async fn save(&self, rows: Vec<ValidState>, now: DateTime<Utc>) -> Result<()> {
        SqliteStore::save(self, rows, now).await
    }
    async fn begin_bulk(&self) -> Result<()> {
        SqliteStore::begin_bulk(self).await
    }
    async fn bulk_write(
        &self,
        rows: Vec<ValidState>,
        now: DateTime<Utc>,
        note: Option<&BulkNote>,
    ) -> Result<()> {
        SqliteStore::bulk_write(self, rows, now, note).await
    }
    async fn finish_bulk(&self) -> Result<MigrationReport> {
        SqliteStore::finish_bulk(self).await
    }
    async fn load_state(&self, run_id: &str) -> Result<Option<WorkflowState>> {
        SqliteStore::load_state(self, run_id).await
    }
    async fn load_run_view(&self, run_id: &str, max_chars: i64) -> Result<Option<RunView>> {
        SqliteStore::load_run_view(self, run_id, max_chars).await
    }
    async fn load_text_column(&self, run_id: &str, column: TextColumn) -> Result<Option<Option<String>>> {
        SqliteStore::load_text_column(self, run_id, column).await
    }
    async fn export(&self, after: Option<&str>, limit: u32) -> Result<Vec<WorkflowState>> {
        SqliteStore::export(self, after, limit).await
    }
    async fn delete_state(&self, run_id: &str) -> Result<bool> {
        SqliteStore::delete_state(self, run_id).await
    }
    async fn list(&self, list: &ValidList<'_>) -> Result<Vec<(i64, RunSummary)>> {
        SqliteStore::list(self, list).await
    }
    async fn count(&self, list: &ValidList<'_>) -> Result<RunCount> {
        SqliteStore::count(self, list).await
    }
    async fn stats(&self, recent_since: DateTime<Utc>) -> Result<WorkflowStats> {
        SqliteStore::stats(self, recent_since).await
    }
    async fn failed(&self, since: DateTime<Utc>, limit: u32) -> Result<Vec<RunSummary>> {
        SqliteStore::failed(self, since, limit).await
    }
    async fn preview_cleanup(&self, cleanup: &ValidCleanup) -> Result<CleanupPreview> {
        SqliteStore::preview_cleanup(self, cleanup).await
    }
    async fn cleanup(&self, cleanup: &ValidCleanup) -> Result<u64> {
        SqliteStore::cleanup(self, cleanup).await
    }
    async fn stuck_runs(&self, idle_since: DateTime<Utc>, limit: u32) -> Result<crate::StuckRuns> {
        SqliteStore::stuck_runs(self, idle_since, limit).await
    }
    async fn execution_percentiles(&self, pipeline_id: Option<&str>) -> Result<crate::Percentiles> {
        SqliteStore::execution_percentiles(self, pipeline_id).await
    }
    async fn execution_percentiles_by_pipeline(&self) -> Result<Vec<(String, crate::Percentiles)>> {
        SqliteStore::execution_percentiles_by_pipeline(self).await
    }
    async fn pipelines(&self) -> Result<Vec<String>> {
        SqliteStore::pipelines(self).await
    }
    async fn activity(
        &self,
        bucket: crate::Bucket,
        first: DateTime<Utc>,
        buckets: u32,
    ) -> Result<Vec<crate::ActivityBucket>> {
        SqliteStore::activity(self, bucket, first, buckets).await
    }
    async fn group_failures(
        &self,
        since: DateTime<Utc>,
        samples: usize,
        only_key: Option<&str>,
        scope: &crate::insights::FailureScope,
    ) -> Result<crate::FailureReport> {
        SqliteStore::group_failures(self, since, samples, only_key, scope).await
    }
    async fn version_counts(
        &self,
        since: DateTime<Utc>,
        pipeline: &str,
    ) -> Result<Vec<crate::insights::VersionCount>> {
        SqliteStore::version_counts(self, since, pipeline).await
    }
    async fn count_failed_since(&self, since: DateTime<Utc>) -> Result<i64> {
        SqliteStore::count_failed_since(self, since).await
    }
    async fn failure_counts(&self, since: DateTime<Utc>) -> Result<Vec<crate::insights::FailureCount>> {
        SqliteStore::failure_counts(self, since).await
    }
    async fn pipeline_window(&self, first_hour: i64, first_day: i64) -> Result<crate::pipelines::WindowRows> {
        SqliteStore::pipeline_window(self, first_hour, first_day).await
    }
    async fn pipeline_trend(
        &self,
        first_day: i64,
        last_day: i64,
        pipeline_id: Option<&str>,
    ) -> Result<crate::pipelines::TrendRows> {
        SqliteStore::pipeline_trend(self, first_day, last_day, pipeline_id).await
    }
    async fn last_runs(
        &self,
        pipelines: &[String],
    ) -> Result<std::collections::BTreeMap<String, (String, Option<DateTime<Utc>>)>> {
        SqliteStore::last_runs(self, pipelines).await
    }
    async fn verify_counters(&self) -> Result<crate::CounterCheck> {
        SqliteStore::verify_counters(self).await
    }
    async fn rebuild_counters(&self) -> Result<crate::CounterCheck> {
        SqliteStore::rebuild_counters(self).await
    }
    async fn record_audit(
        &self,
        at: DateTime<Utc>,
        actor: &str,
        action: &str,
        detail: &serde_json::Value,
        matched: Option<i64>,
        affected: i64,
    ) -> Result<i64> {
        SqliteStore::record_audit(self, at, actor, action, detail, matched, affected).await
    }
    async fn audit_log(&self, limit: u32) -> Result<Vec<crate::AuditEntry>> {
        SqliteStore::audit_log(self, limit).await
    }
    async fn cleanup_recorded(&self, cleanup: &ValidCleanup, audit_id: i64) -> Result<(u64, Option<i64>)> {
        Ok((
            SqliteStore::cleanup_batches(self, cleanup, Some(audit_id)).await?,
            None,
        ))
    }
    async fn delete_recorded(
        &self,
        run_id: &str,
        at: DateTime<Utc>,
        actor: &str,
        action: &str,
        detail: &serde_json::Value,
    ) -> Result<Option<i64>> {
        SqliteStore::delete_recorded(self, run_id, at, actor, action, detail).await
    }
    async fn audit_run_ids(&self, audit_id: i64, after: Option<&str>, limit: u32) -> Result<Vec<String>> {
        SqliteStore::audit_run_ids(self, audit_id, after, limit).await
    }
    async fn set_audit_detail(&self, audit_id: i64, detail: &serde_json::Value) -> Result<()> {
        SqliteStore::set_audit_detail(self, audit_id, detail).await
    }
    async fn space_use(&self) -> Result<crate::space::SpaceUse> {
        SqliteStore::space_use(self).await
    }
    async fn estimate_cleanup_bytes(
        &self,
        cleanup: &ValidCleanup,
        matched: i64,
    ) -> Result<crate::space::CleanupBytes> {
        SqliteStore::estimate_cleanup_bytes(self, cleanup, matched).await
    }
    async fn reclaim_space(&self) -> Result<crate::space::Reclaimed> {
        SqliteStore::reclaim_space(self).await
    }
}
