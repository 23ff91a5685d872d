//! The PostgreSQL backend: flujo's `PostgresBackend` table (`workflow_state`), shared with it.
//!
//! - [`schema`]: flujo's table exactly, what flowstate adds beside it, the migration under flowstate's own
//!   advisory lock;
//! - [`counters`]: the overview's counters, kept by triggers that only append to a log of deltas,
//!   folded now and then into the counts (no row any writer waits for);
//! - [`failures`]: the failed runs in a small table of their own, kept by triggers, for the failure groups;
//! - `write`: saves (`INSERT ... ON CONFLICT`, many rows in one statement over arrays), deletes, cleanups in short
//!   batches, the audit record, the counters' check and rebuild, the overview figures;
//! - `read` and `insights`: lookups, lists, exports, the dashboard's figures.
//!
//! Connections come from one pool. Each connection starts with `lock_timeout` = the busy timeout (a lock held
//! longer gives [`StoreError::Busy`]), a `statement_timeout`, an `idle_in_transaction_session_timeout`, and, when
//! read-only, `default_transaction_read_only`. A connection is checked before each use, so a restarted server is
//! reconnected to by itself; while the server cannot be reached, calls fail with [`StoreError::Unavailable`] once
//! the busy timeout is spent, never hang.

mod audit;
mod bulk;
pub(crate) mod counters;
pub(crate) mod failures;
mod insights;
mod pipelines;
mod read;
pub(crate) mod schema;
mod space;
mod write;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection};

use crate::backend::Backend;
use crate::insights::{ActivityBucket, AuditEntry, Bucket, FailureReport, StuckRuns};
use crate::store::StoreOptions;
use crate::validate::{ValidCleanup, ValidList, ValidState};
use crate::{
    CleanupPreview, CounterCheck, MigrationReport, Percentiles, Result, RunCount, RunSummary, RunView,
    StoreError, TextColumn, WorkflowState, WorkflowStats,
};

/// `COPY`'s text format as the bulk load writes it, for the bench's loader (bench/src/pg.rs): not a stable API.
#[doc(hidden)]
pub use bulk::{copy_instant, copy_opt, copy_text};
pub use counters::FOLD_LOCK;
pub use schema::{MIGRATION_LOCK, PG_SCHEMA_VERSION};

/// The longest a statement may run (the server cancels it then): far above any page's query, below forever.
/// The migration and a rebuild of the counters lift it for their own transaction.
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(300);

/// A transaction left open by a client that went away is ended by the server after this long, releasing its
/// locks.
pub const IDLE_IN_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(60);

/// A store on a PostgreSQL database. Cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub(crate) struct PgStore {
    /// Every statement's connections.
    pub(crate) pool: PgPool,
    /// The database is migrated: the counters exist and are kept by their triggers.
    pub(crate) counters: bool,
    /// `flowstate_failure` exists and is kept by its triggers (schema version 3): the failure groups read it.
    pub(crate) failures: bool,
    /// Schema version 4's counters of the Pipelines page exist ([`counters::PIPELINE_TABLES`]).
    pub(crate) pipelines: bool,
    /// Schema version 5's counter of runs per pipeline, hour, version and status exists
    /// ([`counters::VERSION_TABLES`]).
    pub(crate) versions: bool,
    migration: Arc<MigrationReport>,
    /// The URL without its password.
    shown: String,
    /// The schema holding `workflow_state`, quoted for SQL.
    schema: String,
    busy_ms: u64,
    read_only: bool,
    /// Single saves' own connections.
    savers: Arc<write::Savers>,
}

impl PgStore {
    /// Connects, looks at the database and (unless read-only) migrates it.
    ///
    /// # Errors
    /// [`StoreError::CannotOpen`] (with what to do) for a URL that cannot be read, a server that cannot be
    /// reached, a login or a database the server refuses, a role that may not migrate;
    /// [`StoreError::UnsupportedFile`] for a `workflow_state` that is not flujo's table, a database written by a
    /// newer flowstate, or (read-only) a database without `workflow_state`; [`StoreError::Busy`] when another
    /// migration or a transaction holds the table past the busy timeout.
    pub(crate) async fn open(url: &str, options: &StoreOptions) -> Result<PgStore> {
        let shown = redact(url);
        let cannot = |reason: String| StoreError::CannotOpen {
            path: shown.clone().into(),
            reason,
        };
        let base = PgConnectOptions::from_str(url)
            .map_err(|e| cannot(format!("it is not a PostgreSQL URL flowstate can use ({e})")))?;
        let busy = options.busy_timeout;
        let busy_ms = busy.as_millis().min(i32::MAX as u128) as u64;
        let mut settings: Vec<(&str, String)> = vec![
            ("lock_timeout", busy_ms.max(1).to_string()),
            ("statement_timeout", STATEMENT_TIMEOUT.as_millis().to_string()),
            (
                "idle_in_transaction_session_timeout",
                IDLE_IN_TRANSACTION_TIMEOUT.as_millis().to_string(),
            ),
        ];
        if options.read_only {
            settings.push(("default_transaction_read_only", "on".to_string()));
        }
        let mut connect = base
            .options(settings)
            .log_statements(tracing::log::LevelFilter::Trace)
            .log_slow_statements(tracing::log::LevelFilter::Debug, Duration::from_secs(1));
        if connect.get_application_name().is_none() {
            connect = connect.application_name("flowstate");
        }
        let target = describe_target(&connect);

        // One connection first: a server that cannot be reached, a login refused, a database missing are told at
        // once and in words, not as a pool timeout.
        let mut conn = match tokio::time::timeout(busy + Duration::from_secs(1), PgConnection::connect_with(&connect))
            .await
        {
            Err(_) => {
                return Err(cannot(format!(
                    "the PostgreSQL server at {target} did not answer within {} ms: check that it is running and \
                     reachable from here (host, port, firewall)",
                    busy_ms
                )))
            }
            Ok(Err(e)) => return Err(cannot(connect_failure(&e, &target, &connect))),
            Ok(Ok(conn)) => conn,
        };
        let with_url = |e: StoreError| with_url(e, &shown, busy_ms);
        let (migration, counters, failures, pipelines, versions, schema) = if options.read_only {
            let ins = schema::inspect(&mut conn).await.map_err(with_url)?;
            if !ins.is_readable() {
                let _ = conn.close().await;
                return Err(StoreError::UnsupportedFile {
                    path: shown.clone().into(),
                    reason: "the database has no workflow_state table, and a read-only store never creates one: \
                             point flowstate at flujo's database, or open it once writable (`flowstate migrate`)"
                        .into(),
                });
            }
            let report = MigrationReport {
                from: ins.kind.clone(),
                to_version: PG_SCHEMA_VERSION,
                changes: Vec::new(),
                timings: Vec::new(),
            };
            let pipelines = ins.pipeline_counters_current;
            (
                report,
                ins.counters_exact(),
                ins.failures_current,
                pipelines,
                ins.version_counters_current,
                ins.schema,
            )
        } else {
            let report = schema::migrate(&mut conn, busy_ms.max(1)).await.map_err(|e| match e {
                StoreError::Database(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42501") => {
                    cannot(format!(
                        "this role may not change the database's schema ({}): let the database's owner open it \
                         once (`flowstate migrate`), or open it read-only",
                        db.message()
                    ))
                }
                StoreError::Database(sqlx::Error::Database(db)) if db.code().as_deref() == Some("25006") => {
                    cannot(format!(
                        "the server only allows reading ({}): open the database read-only",
                        db.message()
                    ))
                }
                other => with_url(other),
            })?;
            let ins = schema::inspect(&mut conn).await.map_err(with_url)?;
            (report, true, true, true, true, ins.schema)
        };
        let _ = conn.close().await;

        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .min_connections(0)
            .acquire_timeout(busy)
            // A connection is checked before each use: after a server restart the dead ones are replaced. (Single
            // saves, the hot path, have connections of their own: `write::Savers`.)
            .test_before_acquire(true)
            .idle_timeout(Duration::from_secs(300))
            .connect_lazy_with(connect.clone());
        let savers = write::Savers::new(
            connect,
            if options.read_only {
                1
            } else {
                options.max_connections.max(1)
            },
            busy,
        );

        Ok(PgStore {
            pool,
            counters,
            failures,
            pipelines,
            versions,
            migration: Arc::new(migration),
            shown,
            schema,
            busy_ms,
            read_only: options.read_only,
            savers: Arc::new(savers),
        })
    }

    /// The URL without its password, for messages and `/healthz`.
    pub(crate) fn display_url(&self) -> String {
        self.shown.clone()
    }

    /// True when the overview figures come from the trigger-kept counters rather than from counting rows.
    pub(crate) fn has_counters(&self) -> bool {
        self.counters
    }

    /// Maps a driver error met while doing `context` to the store's error.
    pub(crate) fn err(&self, context: &str) -> impl Fn(sqlx::Error) -> StoreError + '_ {
        let context = context.to_string();
        move |e| {
            if matches!(e, sqlx::Error::PoolTimedOut) {
                // Every connection busy (the pool is full) or none could be opened (the server is down).
                if self.pool.size() >= self.pool.options().get_max_connections() && !self.pool.is_closed() {
                    return StoreError::Busy {
                        timeout_ms: self.busy_ms,
                        context: format!("{context}: no free connection"),
                    };
                }
                return StoreError::Unavailable {
                    context: context.clone(),
                    reason: format!(
                        "no connection to the server could be made within {} ms (is it running?)",
                        self.busy_ms
                    ),
                };
            }
            map_err(e, self.busy_ms, &context, &self.shown)
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
}

/// `host:port/database` (or the socket), for messages.
fn describe_target(o: &PgConnectOptions) -> String {
    let place = match o.get_socket() {
        Some(dir) => format!("socket {}", dir.display()),
        None => format!("{}:{}", o.get_host(), o.get_port()),
    };
    format!(
        "{place} (database {:?}, user {:?})",
        o.get_database().unwrap_or(o.get_username()),
        o.get_username()
    )
}

/// Why the first connection failed, and what to do.
fn connect_failure(e: &sqlx::Error, target: &str, o: &PgConnectOptions) -> String {
    match e {
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => format!(
            "no PostgreSQL server is listening at {target} ({io}): start the server, or fix the URL's host and port"
        ),
        sqlx::Error::Io(io) => format!(
            "the PostgreSQL server at {target} cannot be reached ({io}): check the host name, the network and that \
             the server is running"
        ),
        sqlx::Error::Database(db) => match db.code().as_deref() {
            Some("3D000") => format!(
                "the server has no database {:?} ({}): create it (`createdb {}`) or fix the URL",
                o.get_database().unwrap_or_default(),
                db.message(),
                o.get_database().unwrap_or_default()
            ),
            Some("28P01") | Some("28000") => format!(
                "the server refused the login of user {:?} ({}): check the user and password in the URL, and the \
                 server's pg_hba.conf",
                o.get_username(),
                db.message()
            ),
            Some("57P03") | Some("53300") => format!(
                "the server at {target} is not accepting connections now ({}): try again shortly",
                db.message()
            ),
            _ => format!("the server at {target} refused the connection: {}", db.message()),
        },
        sqlx::Error::Tls(t) => format!("the TLS connection to {target} failed ({t}): check the URL's sslmode"),
        other => format!("connecting to {target} failed: {other}"),
    }
}

/// An error from the open's inspection or migration, with the URL where the path goes.
fn with_url(e: StoreError, shown: &str, busy_ms: u64) -> StoreError {
    match e {
        StoreError::UnsupportedFile { reason, .. } => StoreError::UnsupportedFile {
            path: shown.into(),
            reason,
        },
        StoreError::Database(e) => map_err(e, busy_ms, "opening the database", shown),
        other => other,
    }
}

/// Turns a driver error into the store's error: locks held too long are [`StoreError::Busy`], a server that is
/// gone [`StoreError::Unavailable`], a read-only transaction or a missing privilege [`StoreError::Conflict`],
/// data the server refuses (SQLSTATE class 22) [`StoreError::InvalidInput`].
pub(crate) fn map_err(err: sqlx::Error, busy_ms: u64, context: &str, shown: &str) -> StoreError {
    match &err {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.to_string()).unwrap_or_default();
            match code.as_str() {
                // lock_not_available (lock_timeout), deadlock_detected, serialization_failure.
                "55P03" | "40P01" | "40001" => StoreError::Busy {
                    timeout_ms: busy_ms,
                    context: context.to_string(),
                },
                // admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections, connection exceptions.
                "57P01" | "57P02" | "57P03" | "53300" => StoreError::Unavailable {
                    context: context.to_string(),
                    reason: db.message().to_string(),
                },
                c if c.starts_with("08") => StoreError::Unavailable {
                    context: context.to_string(),
                    reason: db.message().to_string(),
                },
                "25006" | "42501" => StoreError::Conflict(format!("{context}: {}", db.message())),
                "53100" => StoreError::DiskFull {
                    path: shown.into(),
                    context: context.to_string(),
                },
                c if c.starts_with("22") => StoreError::InvalidInput {
                    field: "value",
                    reason: format!("the database refused it ({})", db.message()),
                },
                _ => StoreError::Database(err),
            }
        }
        sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => StoreError::Unavailable {
            context: context.to_string(),
            reason: err.to_string(),
        },
        sqlx::Error::PoolTimedOut => StoreError::Busy {
            timeout_ms: busy_ms,
            context: format!("{context}: no free connection"),
        },
        _ => StoreError::Database(err),
    }
}

/// The URL without its password (in the authority or as a `password` parameter), for messages.
pub(crate) fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(None);
            }
            let secret =
                |k: &str| k.eq_ignore_ascii_case("password") || k.eq_ignore_ascii_case("sslpassword");
            if u.query_pairs().any(|(k, _)| secret(&k)) {
                let kept: Vec<(String, String)> = u
                    .query_pairs()
                    .filter(|(k, _)| !secret(k))
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                if kept.is_empty() {
                    u.set_query(None);
                } else {
                    u.query_pairs_mut().clear().extend_pairs(kept);
                }
            }
            u.to_string()
        }
        // Not a URL the parser reads: show nothing after the scheme that could hold a password.
        Err(_) => match url.split_once("://") {
            Some((scheme, rest)) => match rest.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://***@{host}"),
                None => url.to_string(),
            },
            None => url.to_string(),
        },
    }
}

impl Backend for PgStore {
    fn migration(&self) -> &MigrationReport {
        &self.migration
    }
    fn has_counters(&self) -> bool {
        self.counters
    }
    async fn close(&self) {
        self.savers.close().await;
        self.pool.close().await;
    }
    async fn save(&self, rows: Vec<ValidState>, now: DateTime<Utc>) -> Result<()> {
        PgStore::save(self, rows, now).await
    }
    async fn begin_bulk(&self) -> Result<()> {
        PgStore::begin_bulk(self).await
    }
    async fn bulk_write(
        &self,
        rows: Vec<ValidState>,
        now: DateTime<Utc>,
        note: Option<&crate::bulk::BulkNote>,
    ) -> Result<()> {
        PgStore::bulk_write(self, rows, now, note).await
    }
    async fn finish_bulk(&self) -> Result<MigrationReport> {
        PgStore::finish_bulk(self).await
    }
    async fn load_state(&self, run_id: &str) -> Result<Option<WorkflowState>> {
        PgStore::load_state(self, run_id).await
    }
    async fn load_run_view(&self, run_id: &str, max_chars: i64) -> Result<Option<RunView>> {
        PgStore::load_run_view(self, run_id, max_chars).await
    }
    async fn load_text_column(&self, run_id: &str, column: TextColumn) -> Result<Option<Option<String>>> {
        PgStore::load_text_column(self, run_id, column).await
    }
    async fn export(&self, after: Option<&str>, limit: u32) -> Result<Vec<WorkflowState>> {
        PgStore::export(self, after, limit).await
    }
    async fn delete_state(&self, run_id: &str) -> Result<bool> {
        PgStore::delete_state(self, run_id).await
    }
    async fn list(&self, list: &ValidList<'_>) -> Result<Vec<(i64, RunSummary)>> {
        PgStore::list(self, list).await
    }
    async fn count(&self, list: &ValidList<'_>) -> Result<RunCount> {
        PgStore::count(self, list).await
    }
    async fn stats(&self, recent_since: DateTime<Utc>) -> Result<WorkflowStats> {
        PgStore::stats(self, recent_since).await
    }
    async fn failed(&self, since: DateTime<Utc>, limit: u32) -> Result<Vec<RunSummary>> {
        PgStore::failed(self, since, limit).await
    }
    async fn preview_cleanup(&self, cleanup: &ValidCleanup) -> Result<CleanupPreview> {
        PgStore::preview_cleanup(self, cleanup).await
    }
    async fn cleanup(&self, cleanup: &ValidCleanup) -> Result<u64> {
        PgStore::cleanup(self, cleanup).await
    }
    async fn stuck_runs(&self, idle_since: DateTime<Utc>, limit: u32) -> Result<StuckRuns> {
        PgStore::stuck_runs(self, idle_since, limit).await
    }
    async fn execution_percentiles(&self, pipeline_id: Option<&str>) -> Result<Percentiles> {
        PgStore::execution_percentiles(self, pipeline_id).await
    }
    async fn execution_percentiles_by_pipeline(&self) -> Result<Vec<(String, Percentiles)>> {
        PgStore::execution_percentiles_by_pipeline(self).await
    }
    async fn pipelines(&self) -> Result<Vec<String>> {
        PgStore::pipelines(self).await
    }
    async fn activity(
        &self,
        bucket: Bucket,
        first: DateTime<Utc>,
        buckets: u32,
    ) -> Result<Vec<ActivityBucket>> {
        PgStore::activity(self, bucket, first, buckets).await
    }
    async fn group_failures(
        &self,
        since: DateTime<Utc>,
        samples: usize,
        only_key: Option<&str>,
        scope: &crate::insights::FailureScope,
    ) -> Result<FailureReport> {
        PgStore::group_failures(self, since, samples, only_key, scope).await
    }
    async fn version_counts(
        &self,
        since: DateTime<Utc>,
        pipeline: &str,
    ) -> Result<Vec<crate::insights::VersionCount>> {
        PgStore::version_counts(self, since, pipeline).await
    }
    async fn count_failed_since(&self, since: DateTime<Utc>) -> Result<i64> {
        PgStore::count_failed_since(self, since).await
    }
    async fn failure_counts(&self, since: DateTime<Utc>) -> Result<Vec<crate::insights::FailureCount>> {
        PgStore::failure_counts(self, since).await
    }
    async fn pipeline_window(&self, first_hour: i64, first_day: i64) -> Result<crate::pipelines::WindowRows> {
        PgStore::pipeline_window(self, first_hour, first_day).await
    }
    async fn pipeline_trend(
        &self,
        first_day: i64,
        last_day: i64,
        pipeline_id: Option<&str>,
    ) -> Result<crate::pipelines::TrendRows> {
        PgStore::pipeline_trend(self, first_day, last_day, pipeline_id).await
    }
    async fn last_runs(
        &self,
        pipelines: &[String],
    ) -> Result<std::collections::BTreeMap<String, (String, Option<DateTime<Utc>>)>> {
        PgStore::last_runs(self, pipelines).await
    }
    async fn verify_counters(&self) -> Result<CounterCheck> {
        PgStore::verify_counters(self).await
    }
    async fn rebuild_counters(&self) -> Result<CounterCheck> {
        PgStore::rebuild_counters(self).await
    }
    async fn record_audit(
        &self,
        at: DateTime<Utc>,
        actor: &str,
        action: &str,
        detail: &Value,
        matched: Option<i64>,
        affected: i64,
    ) -> Result<i64> {
        PgStore::record_audit(self, at, actor, action, detail, matched, affected).await
    }
    async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>> {
        PgStore::audit_log(self, limit).await
    }
    async fn cleanup_recorded(&self, cleanup: &ValidCleanup, audit_id: i64) -> Result<(u64, Option<i64>)> {
        let (n, bytes) = PgStore::cleanup_batches(self, cleanup, Some(audit_id)).await?;
        Ok((n, Some(bytes)))
    }
    async fn delete_recorded(
        &self,
        run_id: &str,
        at: DateTime<Utc>,
        actor: &str,
        action: &str,
        detail: &Value,
    ) -> Result<Option<i64>> {
        PgStore::delete_recorded(self, run_id, at, actor, action, detail).await
    }
    async fn audit_run_ids(&self, audit_id: i64, after: Option<&str>, limit: u32) -> Result<Vec<String>> {
        PgStore::audit_run_ids(self, audit_id, after, limit).await
    }
    async fn set_audit_detail(&self, audit_id: i64, detail: &serde_json::Value) -> Result<()> {
        PgStore::set_audit_detail(self, audit_id, detail).await
    }
    async fn space_use(&self) -> Result<crate::space::SpaceUse> {
        PgStore::space_use(self).await
    }
    async fn estimate_cleanup_bytes(
        &self,
        cleanup: &ValidCleanup,
        matched: i64,
    ) -> Result<crate::space::CleanupBytes> {
        PgStore::estimate_cleanup_bytes(self, cleanup, matched).await
    }
    async fn reclaim_space(&self) -> Result<crate::space::Reclaimed> {
        PgStore::reclaim_space(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn urls_are_shown_without_their_password() {
        assert_eq!(redact("postgres://u:secret@h:5432/db"), "postgres://u@h:5432/db");
        assert_eq!(
            redact("postgres://u@h/db?sslmode=disable&password=secret"),
            "postgres://u@h/db?sslmode=disable"
        );
        assert_eq!(redact("postgres://u@h/db?password=secret"), "postgres://u@h/db");
        assert_eq!(redact("postgresql://h/db"), "postgresql://h/db");
        assert!(!redact("postgres://u:sec ret@[bad/db").contains("sec"));
    }
}
