//! Writes on PostgreSQL: saves, deletes, cleanups, the audit record, the counters' check and rebuild, and the
//! overview figures read from the counters.
//!
//! A save is one `INSERT ... ON CONFLICT (run_id) DO UPDATE` in autocommit, as flujo's own: every column replaced
//! but `created_at`, which is the one given, else the stored one, else now. Many runs are one transaction whose
//! statements each carry many rows as arrays (`UNNEST`): one round trip per statement, whatever the number of
//! rows. JSON goes over as text and is cast to `jsonb` by the server.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, Postgres};

use super::counters::{self, decode_key};
use super::failures;
use super::read::cleanup_filter;
use super::PgStore;
use crate::store::{CLEANUP_BATCH, CLEANUP_BATCH_TARGET};
use crate::time;
use crate::validate::{ValidCleanup, ValidState};
use crate::{CounterCheck, Result, StoreError, WorkflowStats};

/// The 20 columns, in flujo's order.
pub(super) const COLUMNS: &str = "run_id, pipeline_id, pipeline_name, pipeline_version, current_step_index, \
    pipeline_context, last_step_output, step_history, status, created_at, updated_at, total_steps, error_message, \
    execution_time_ms, memory_usage_mb, metadata, is_background_task, parent_run_id, task_id, background_error";

/// What an existing run gets from a save: every column but its id; `created_at` per `created`.
fn update_set(created: &str) -> String {
    let mut set: Vec<String> = COLUMNS
        .split(", ")
        .filter(|c| *c != "run_id" && *c != "created_at")
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    set.push(format!("created_at = {created}"));
    set.join(", ")
}

/// The save of one run, bound.
fn upsert_one(
    row: &ValidState,
    now: DateTime<Utc>,
) -> Result<sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments>> {
    let s = &row.state;
    let x = &s.extras;
    Ok(sqlx::query(&UPSERT_ONE)
        .bind(&s.run_id)
        .bind(&s.pipeline_id)
        .bind(&s.pipeline_name)
        .bind(&s.pipeline_version)
        .bind(int4("current_step_index", s.current_step_index)?)
        .bind(&row.context)
        .bind(&row.last_output)
        .bind(&row.history)
        .bind(row.status)
        .bind(s.created_at)
        .bind(s.updated_at.unwrap_or(now))
        .bind(int4("total_steps", s.total_steps)?)
        .bind(&s.error_message)
        .bind(
            s.execution_time_ms
                .map(|v| int4("execution_time_ms", v))
                .transpose()?,
        )
        .bind(s.memory_usage_mb)
        .bind(&row.metadata)
        .bind(x.is_background_task)
        .bind(&x.parent_run_id)
        .bind(&x.task_id)
        .bind(&x.background_error)
        .bind(now))
}

static UPSERT_ONE: LazyLock<String> = LazyLock::new(upsert_one_sql);

/// True when the connection itself failed (gone, reset, closed by the server), not the statement.
fn is_broken(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => {
            matches!(db.code().as_deref(), Some("57P01" | "57P02" | "57P03"))
                || db.code().is_some_and(|c| c.starts_with("08"))
        }
        _ => false,
    }
}

/// Connections of their own for single saves, the hot path: one round trip per save. (A connection of sqlx's
/// pool costs two: sqlx checks each one with a round trip as it comes back.) At most `max_connections` of them,
/// beside the pool's; each is opened when first needed, and dropped when it turns out broken (the next save
/// opens a new one).
pub(crate) struct Savers {
    conns: Vec<tokio::sync::Mutex<Option<PgConnection>>>,
    next: AtomicUsize,
    connect: PgConnectOptions,
    busy: Duration,
}

impl std::fmt::Debug for Savers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Savers")
            .field("conns", &self.conns.len())
            .finish()
    }
}

impl Savers {
    pub(crate) fn new(connect: PgConnectOptions, n: u32, busy: Duration) -> Savers {
        Savers {
            conns: (0..n.max(1)).map(|_| tokio::sync::Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
            connect,
            busy,
        }
    }

    /// A free connection slot (the first free one from a rotating start), or the next one to free up before
    /// `deadline`; `None` when none did. (Without the deadline, a save queued behind others while the server is
    /// down waited for each of them to spend its busy timeout, then spent its own.)
    async fn take(&self, deadline: Instant) -> Option<tokio::sync::MutexGuard<'_, Option<PgConnection>>> {
        let n = self.conns.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        for i in 0..n {
            if let Ok(guard) = self.conns[(start + i) % n].try_lock() {
                return Some(guard);
            }
        }
        tokio::time::timeout_at(deadline.into(), self.conns[start].lock())
            .await
            .ok()
    }

    /// A new connection, before the call's `deadline`; a server that refuses connections is retried until then.
    async fn connect(&self, deadline: Instant) -> sqlx::Result<PgConnection> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, PgConnection::connect_with(&self.connect)).await {
                Ok(Ok(conn)) => return Ok(conn),
                Ok(Err(e)) if is_broken(&e) => {
                    if Instant::now() + Duration::from_millis(50) >= deadline {
                        return Err(sqlx::Error::PoolTimedOut);
                    }
                    tracing::debug!(error = %e, "connecting for a save; trying again");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Err(sqlx::Error::PoolTimedOut),
            }
        }
    }

    /// Closes every connection.
    pub(crate) async fn close(&self) {
        for slot in &self.conns {
            if let Some(conn) = slot.lock().await.take() {
                let _ = conn.close().await;
            }
        }
    }
}

/// The save of one run: `$1..$20` the columns (`$10` the given creation time or NULL), `$21` now.
fn upsert_one_sql() -> String {
    format!(
        "INSERT INTO workflow_state ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8::jsonb, $9, \
         COALESCE($10, $21), $11, $12, $13, $14, $15::float8, $16::jsonb, $17, $18, $19, $20) \
         ON CONFLICT (run_id) DO UPDATE SET {}",
        update_set("COALESCE($10, workflow_state.created_at)")
    )
}

/// The save of many runs (distinct ids) from arrays: `$1..$20` the columns, `$21` now. With `given`, every row
/// has its creation time (and an existing run takes it); without, none has (an existing run keeps its own).
fn upsert_many_sql(given: bool) -> String {
    format!(
        "INSERT INTO workflow_state ({COLUMNS}) SELECT r, p, n, v, i, c::jsonb, o::jsonb, h::jsonb, s, \
         COALESCE(ca, $21), ua, t, e, x, m, md::jsonb, bg, pr, ti, be \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int4[], $6::text[], $7::text[], \
         $8::text[], $9::text[], $10::timestamptz[], $11::timestamptz[], $12::int4[], $13::text[], $14::int4[], \
         $15::float8[], $16::text[], $17::bool[], $18::text[], $19::text[], $20::text[]) \
         AS src(r, p, n, v, i, c, o, h, s, ca, ua, t, e, x, m, md, bg, pr, ti, be) \
         ON CONFLICT (run_id) DO UPDATE SET {}",
        update_set(if given {
            "excluded.created_at"
        } else {
            "workflow_state.created_at"
        })
    )
}

/// A 32-bit column's value (validation keeps them in range).
fn int4(field: &'static str, v: i64) -> Result<i32> {
    i32::try_from(v)
        .map_err(|_| StoreError::invalid(field, format!("{v} does not fit a 32-bit INTEGER column")))
}

/// Splits rows into consecutive runs without a repeated run id (a later save of a run must see the earlier one,
/// as it would one statement after the other; one statement cannot update a row twice).
fn distinct_chunks(rows: &[ValidState]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut ids: HashSet<&str> = HashSet::new();
    for (i, row) in rows.iter().enumerate() {
        if !ids.insert(row.state.run_id.as_str()) {
            out.push(start..i);
            start = i;
            ids.clear();
            ids.insert(row.state.run_id.as_str());
        }
    }
    if start < rows.len() {
        out.push(start..rows.len());
    }
    out
}

/// Columns of many rows, as the arrays [`upsert_many_sql`] binds.
#[derive(Default)]
struct Arrays {
    run_id: Vec<String>,
    pipeline_id: Vec<String>,
    pipeline_name: Vec<String>,
    pipeline_version: Vec<String>,
    current_step_index: Vec<i32>,
    context: Vec<String>,
    last_output: Vec<Option<String>>,
    history: Vec<Option<String>>,
    status: Vec<&'static str>,
    created_at: Vec<Option<DateTime<Utc>>>,
    updated_at: Vec<DateTime<Utc>>,
    total_steps: Vec<i32>,
    error_message: Vec<Option<String>>,
    execution_time_ms: Vec<Option<i32>>,
    memory_usage_mb: Vec<Option<f64>>,
    metadata: Vec<Option<String>>,
    is_background_task: Vec<bool>,
    parent_run_id: Vec<Option<String>>,
    task_id: Vec<Option<String>>,
    background_error: Vec<Option<String>>,
}

impl Arrays {
    fn push(&mut self, row: &ValidState, now: DateTime<Utc>) -> Result<()> {
        let s = &row.state;
        self.run_id.push(s.run_id.clone());
        self.pipeline_id.push(s.pipeline_id.clone());
        self.pipeline_name.push(s.pipeline_name.clone());
        self.pipeline_version.push(s.pipeline_version.clone());
        self.current_step_index
            .push(int4("current_step_index", s.current_step_index)?);
        self.context.push(row.context.clone());
        self.last_output.push(row.last_output.clone());
        self.history.push(row.history.clone());
        self.status.push(row.status);
        self.created_at.push(s.created_at);
        self.updated_at.push(s.updated_at.unwrap_or(now));
        self.total_steps.push(int4("total_steps", s.total_steps)?);
        self.error_message.push(s.error_message.clone());
        self.execution_time_ms.push(
            s.execution_time_ms
                .map(|v| int4("execution_time_ms", v))
                .transpose()?,
        );
        self.memory_usage_mb.push(s.memory_usage_mb);
        self.metadata.push(row.metadata.clone());
        self.is_background_task.push(s.extras.is_background_task);
        self.parent_run_id.push(s.extras.parent_run_id.clone());
        self.task_id.push(s.extras.task_id.clone());
        self.background_error.push(s.extras.background_error.clone());
        Ok(())
    }
}

impl PgStore {
    /// Saves whole rows: one in autocommit, several in one transaction.
    pub(crate) async fn save(&self, rows: Vec<ValidState>, now: DateTime<Utc>) -> Result<()> {
        self.check_writable()?;
        if let [row] = rows.as_slice() {
            return self.save_one(row, now).await;
        }
        self.save_many(&rows, now).await
    }

    /// One save on a connection of the savers' ([`Savers`]); tried once more on a new connection when the one it
    /// took turns out to be broken (the server restarted, the connection was killed): the upsert writes the same
    /// row whether it ran once or twice.
    async fn save_one(&self, row: &ValidState, now: DateTime<Utc>) -> Result<()> {
        let map = self.err("saving a run");
        let savers = &self.savers;
        // The whole call, waiting for a connection and connecting included, is bounded by the busy timeout.
        let deadline = Instant::now() + savers.busy;
        let Some(mut slot) = savers.take(deadline).await else {
            return Err(StoreError::Busy {
                timeout_ms: savers.busy.as_millis().min(u128::from(u64::MAX)) as u64,
                context: "saving a run: no connection for saves was free".into(),
            });
        };
        for attempt in 0..2 {
            let conn = match slot.as_mut() {
                Some(conn) => conn,
                None => slot.insert(savers.connect(deadline).await.map_err(|e| match e {
                    sqlx::Error::PoolTimedOut => StoreError::Unavailable {
                        context: "saving a run".into(),
                        reason: format!(
                            "no connection to the server could be made within {} ms (is it running?)",
                            savers.busy.as_millis()
                        ),
                    },
                    other => map(other),
                })?),
            };
            match upsert_one(row, now)?.execute(&mut *conn).await {
                Ok(_) => return Ok(()),
                Err(e) if attempt == 0 && is_broken(&e) => {
                    tracing::debug!(error = %e, "a save's connection was broken; saving on a new one");
                    *slot = None;
                }
                Err(e) => {
                    if is_broken(&e) {
                        *slot = None;
                    }
                    return Err(map(e));
                }
            }
        }
        unreachable!("the second attempt returns")
    }

    pub(super) async fn save_many(&self, rows: &[ValidState], now: DateTime<Utc>) -> Result<()> {
        // Statements: per chunk without repeated ids, the rows that give their creation time, then the others.
        let mut statements: Vec<(bool, Arrays)> = Vec::new();
        for chunk in distinct_chunks(rows) {
            for given in [true, false] {
                let mut arrays = Arrays::default();
                for row in &rows[chunk.clone()] {
                    if row.state.created_at.is_some() == given {
                        arrays.push(row, now)?;
                    }
                }
                if !arrays.run_id.is_empty() {
                    statements.push((given, arrays));
                }
            }
        }
        let map = self.err("saving runs");
        let mut conn = self.pool.acquire().await.map_err(&map)?;
        let mut tx = conn.begin().await.map_err(&map)?;
        for (given, a) in statements {
            sqlx::query(&upsert_many_sql(given))
                .bind(a.run_id)
                .bind(a.pipeline_id)
                .bind(a.pipeline_name)
                .bind(a.pipeline_version)
                .bind(a.current_step_index)
                .bind(a.context)
                .bind(a.last_output)
                .bind(a.history)
                .bind(a.status)
                .bind(a.created_at)
                .bind(a.updated_at)
                .bind(a.total_steps)
                .bind(a.error_message)
                .bind(a.execution_time_ms)
                .bind(a.memory_usage_mb)
                .bind(a.metadata)
                .bind(a.is_background_task)
                .bind(a.parent_run_id)
                .bind(a.task_id)
                .bind(a.background_error)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(&map)?;
        }
        tx.commit().await.map_err(&map)?;
        Ok(())
    }

    pub(crate) async fn delete_state(&self, run_id: &str) -> Result<bool> {
        self.check_writable()?;
        if super::read::holds_nul(run_id) {
            return Ok(false);
        }
        let done = sqlx::query("DELETE FROM workflow_state WHERE run_id = $1")
            .bind(run_id)
            .execute(&self.pool)
            .await
            .map_err(self.err("deleting a run"))?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes the runs a policy matches in short batches, each one statement in its own transaction: at most
    /// [`CLEANUP_BATCH`] rows, fewer when a batch takes longer than [`CLEANUP_BATCH_TARGET`]. A batch locks the rows
    /// it picks with `FOR UPDATE SKIP LOCKED` (a run a writer is saving right now is left alone, not waited for),
    /// and the policy is checked again on each locked row (a run updated meanwhile, made recent, is kept). The
    /// filter is the preview's ([`cleanup_filter`]); batches go on until one deletes nothing, so rows skipped
    /// because a writer held them are deleted by a later batch.
    pub(crate) async fn cleanup(&self, policy: &ValidCleanup) -> Result<u64> {
        Ok(self.cleanup_batches(policy, None).await?.0)
    }

    /// [`PgStore::cleanup`], each batch's statement also recording the run ids it deleted under audit entry
    /// `record` (and adding them to its `affected`), when given: one statement, so one transaction. The rows
    /// deleted, and (recorded only) their stored size.
    pub(crate) async fn cleanup_batches(
        &self,
        policy: &ValidCleanup,
        record: Option<i64>,
    ) -> Result<(u64, i64)> {
        self.check_writable()?;
        if policy.pipeline_id.as_deref().is_some_and(super::read::holds_nul) {
            return Ok((0, 0));
        }
        let mut deleted = 0u64;
        let mut bytes = 0i64;
        let mut batch: i64 = 64;
        loop {
            // The preview's filter exactly (`-infinity` never matches), picked and locked in a subquery.
            let head = match record {
                None => {
                    "DELETE FROM workflow_state WHERE run_id IN (SELECT run_id FROM workflow_state WHERE "
                }
                Some(_) => super::audit::RECORDED_HEAD,
            };
            let mut qb = cleanup_filter(policy, head);
            qb.push(" LIMIT ")
                .push_bind(batch)
                .push(" FOR UPDATE SKIP LOCKED)");
            let began = Instant::now();
            let done = match record {
                None => qb
                    .build()
                    .execute(&self.pool)
                    .await
                    .map_err(self.err("cleaning up"))?
                    .rows_affected(),
                Some(audit_id) => {
                    let (done, size) = super::audit::recorded_batch(&self.pool, qb, audit_id)
                        .await
                        .map_err(self.err("cleaning up"))?;
                    bytes += size;
                    done
                }
            };
            let took = began.elapsed();
            deleted += done;
            tracing::debug!(rows = done, ms = took.as_secs_f64() * 1e3, "cleanup batch");
            // A short batch is not the end: rows a writer held were skipped (SKIP LOCKED), and may match still once
            // it commits. Only a batch that deletes nothing ends the cleanup (a row locked for that long is left).
            if done == 0 {
                break;
            }
            if done < batch as u64 {
                tokio::task::yield_now().await;
                continue;
            }
            if took > CLEANUP_BATCH_TARGET {
                batch = (batch / 2).max(8);
            } else if took < CLEANUP_BATCH_TARGET / 4 {
                batch = (batch * 2).min(CLEANUP_BATCH);
            }
            tokio::task::yield_now().await;
        }
        tracing::info!(deleted, cutoff = %policy.cutoff, "cleanup finished");
        Ok((deleted, bytes))
    }

    pub(crate) async fn record_audit(
        &self,
        at: DateTime<Utc>,
        actor: &str,
        action: &str,
        detail: &Value,
        matched: Option<i64>,
        affected: i64,
    ) -> Result<i64> {
        self.check_writable()?;
        sqlx::query_scalar(
            "INSERT INTO flowstate_audit (at, actor, action, detail, matched, affected) \
             VALUES ($1, $2, $3, $4::jsonb, $5, $6) RETURNING id",
        )
        .bind(at)
        .bind(actor)
        .bind(action)
        .bind(detail.to_string())
        .bind(matched)
        .bind(affected)
        .fetch_one(&self.pool)
        .await
        .map_err(self.err("recording an audit entry"))
    }

    /// Recounts every counter from the table in one snapshot (a repeatable-read transaction) and compares; compares
    /// `flowstate_failure` with the failed rows too (differences of table `flowstate_failure`, by run id).
    pub(crate) async fn verify_counters(&self) -> Result<CounterCheck> {
        let map = self.err("checking the counters");
        let mut conn = self.pool.acquire().await.map_err(&map)?;
        let mut tx = conn
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(&map)?;
        sqlx::query("SET LOCAL statement_timeout = 0")
            .execute(&mut *tx)
            .await
            .map_err(&map)?;
        let mut check = counters::check(&mut tx, &self.schema).await.map_err(&map)?;
        if self.failures {
            check
                .differences
                .extend(failures::check(&mut tx, &self.schema).await.map_err(&map)?);
        }
        tx.commit().await.map_err(&map)?;
        Ok(check)
    }

    /// Empties the counters and fills them again from the table, in one transaction that keeps writers out
    /// (`LOCK TABLE workflow_state IN SHARE MODE`: readers go on, writers wait until it commits), so the result is
    /// exact even with writers running. The log of deltas is then empty; `flowstate_failure` is filled again from
    /// the failed rows. Returns what a check found before.
    pub(crate) async fn rebuild_counters(&self) -> Result<CounterCheck> {
        self.check_writable()?;
        let map = self.err("rebuilding the counters");
        let s = self.schema.as_str();
        let mut conn = self.pool.acquire().await.map_err(&map)?;
        let mut tx = conn.begin().await.map_err(&map)?;
        sqlx::query("SET LOCAL statement_timeout = 0")
            .execute(&mut *tx)
            .await
            .map_err(&map)?;
        sqlx::query(&format!("LOCK TABLE {s}.workflow_state IN SHARE MODE"))
            .execute(&mut *tx)
            .await
            .map_err(&map)?;
        let mut before = counters::check(&mut tx, s).await.map_err(&map)?;
        before
            .differences
            .extend(failures::check(&mut tx, s).await.map_err(&map)?);
        let statements: Vec<String> = counters::refill(s)
            .into_iter()
            .chain(failures::refill(s))
            .collect();
        for sql in &statements {
            sqlx::query(sql).execute(&mut *tx).await.map_err(&map)?;
        }
        tx.commit().await.map_err(&map)?;
        super::schema::vacuum_refilled(&mut conn, &statements).await;
        Ok(before)
    }

    /// The seed's four figures, from one snapshot (a repeatable-read transaction).
    ///
    /// With the counters: runs and execution-time sums per status from `flowstate_counts` (a few rows per status,
    /// pipeline, plus the pending deltas), and the runs created in the last 24 hours from `flowstate_created_hourly` (whole
    /// hours) plus a range of flujo's creation-time index of at most half an hour. Without them (a flujo
    /// database opened read-only): `count(*)` per status, as flujo does.
    pub(crate) async fn stats(&self, recent_since: DateTime<Utc>) -> Result<WorkflowStats> {
        let map = self.err("reading stats");
        let mut conn = self.pool.acquire().await.map_err(&map)?;
        let mut tx = conn
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(&map)?;
        let per_status: Vec<(Option<String>, i64)>;
        let (recent, average): (i64, Option<f64>);
        if self.counters {
            let rows: Vec<(String, i64, i64, String)> = sqlx::query_as(counters::sql::COUNTS)
                .fetch_all(&mut *tx)
                .await
                .map_err(&map)?;
            recent = counters::created_since(&mut tx, time::instant_micros(&recent_since))
                .await
                .map_err(&map)?;
            let (mut timed, mut sum) = (0i64, 0i128);
            let mut statuses = Vec::with_capacity(rows.len());
            for (status_key, runs, t, s) in rows {
                timed += t;
                sum += s.parse::<i128>().unwrap_or(0);
                statuses.push((decode_key(&status_key), runs));
            }
            per_status = statuses;
            average = (timed > 0).then(|| sum as f64 / timed as f64);
        } else {
            per_status = sqlx::query_as("SELECT status, count(*) FROM workflow_state GROUP BY status")
                .fetch_all(&mut *tx)
                .await
                .map_err(&map)?;
            recent = sqlx::query_scalar("SELECT count(*) FROM workflow_state WHERE created_at >= $1")
                .bind(recent_since)
                .fetch_one(&mut *tx)
                .await
                .map_err(&map)?;
            average = sqlx::query_scalar("SELECT avg(execution_time_ms)::float8 FROM workflow_state")
                .fetch_one(&mut *tx)
                .await
                .map_err(&map)?;
        }
        tx.commit().await.map_err(&map)?;
        Ok(WorkflowStats::from_parts(per_status, recent, average))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_set_every_column_but_the_id_and_keep_or_take_the_creation_time() {
        let one = upsert_one_sql();
        assert_eq!(one.matches("excluded.").count(), 18, "{one}");
        assert!(one.contains("created_at = COALESCE($10, workflow_state.created_at)"));
        assert!(one.contains("COALESCE($10, $21)"));
        assert!(upsert_many_sql(true).contains("created_at = excluded.created_at"));
        assert!(upsert_many_sql(false).contains("created_at = workflow_state.created_at"));
    }

    #[test]
    fn chunks_never_hold_a_run_twice() {
        let row = |id: &str| ValidState::new(&crate::WorkflowState::new(id, "p")).unwrap();
        let rows: Vec<ValidState> = ["a", "b", "a", "c", "c"].iter().map(|id| row(id)).collect();
        assert_eq!(distinct_chunks(&rows), vec![0..2, 2..4, 4..5]);
        assert!(distinct_chunks(&[]).is_empty());
    }
}
