//! Reads on PostgreSQL: a run whole or for its page, one large column, exports, lists with every filter and
//! keyset cursors, failed runs, the cleanup preview and the audit log. Each returns exactly what the SQLite
//! backend returns for the same rows ([`crate::sqlite`] is the reference), with two differences PostgreSQL's
//! types impose: JSONB columns read back in PostgreSQL's normalised spelling (the same values; the text a run's
//! page shows is `jsonb::text`), and `memory_usage_mb` (flujo's `REAL`, 32 bits) reads back as the shortest
//! decimal of the stored `float4`, i.e. exactly what was saved whenever that had at most 7 significant digits.
//!
//! Timestamps are read as PostgreSQL stores them (microseconds since 2000-01-01) and turned into instants in Rust:
//! a value no `DateTime<Utc>` can hold (`infinity`, a year past 262142) reads as `None`, like text SQLite cannot
//! read as a timestamp, instead of failing the row or panicking in the driver. Windows and cursors are bound the
//! same way ([`PgInstant`]): from the store's clock, never the server's `now()`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgRow, PgTypeInfo};
use sqlx::{Postgres, QueryBuilder, Row};

use super::PgStore;
use crate::insights::AuditEntry;
use crate::time;
use crate::validate::{self, ValidCleanup, ValidList};
use crate::{
    CleanupPreview, ListQuery, ListSort, Result, RunCount, RunExtras, RunSummary, RunView, Status,
    TextColumn, TextHead, WorkflowState,
};

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_US: i64 = 946_684_800_000_000;
/// PostgreSQL's smallest finite timestamp (4714-11-24 BC), in its own microseconds.
const PG_MIN_US: i64 = -211_813_488_000_000_000;
/// Just past PostgreSQL's largest finite timestamp (294277-01-01), in its own microseconds.
const PG_END_US: i64 = 9_223_371_331_200_000_000;

/// An instant bound as a `timestamptz` parameter, exactly (PostgreSQL's microseconds), whatever its range: values
/// beyond what PostgreSQL stores become `-infinity` / `infinity`, which order the same way against every row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PgInstant(i64);

impl PgInstant {
    /// From microseconds since the Unix epoch (a cursor key, [`time::instant_micros`]). `i64::MAX` is the key
    /// of a row at `infinity` ([`instant_key`]) and binds as `infinity` again.
    pub(crate) fn from_micros(us: i64) -> PgInstant {
        if us == i64::MAX {
            return PgInstant(i64::MAX);
        }
        let pg = us.saturating_sub(PG_EPOCH_US);
        PgInstant(if pg < PG_MIN_US {
            i64::MIN
        } else if pg >= PG_END_US {
            i64::MAX
        } else {
            pg
        })
    }

    pub(crate) fn at(at: &DateTime<Utc>) -> PgInstant {
        PgInstant::from_micros(time::instant_micros(at))
    }
}

impl sqlx::Type<Postgres> for PgInstant {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as sqlx::Type<Postgres>>::type_info()
    }
}

impl sqlx::Encode<'_, Postgres> for PgInstant {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> std::result::Result<IsNull, BoxDynError> {
        <i64 as sqlx::Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

/// A `timestamptz` (or `timestamp`) column as PostgreSQL sends it: microseconds since 2000-01-01 (`i64::MAX`
/// and `i64::MIN` are `infinity` and `-infinity`); `None` for NULL.
pub(crate) fn raw_instant(row: &PgRow, i: usize) -> Option<i64> {
    row.try_get_unchecked::<Option<i64>, _>(i).ok().flatten()
}

/// The cursor key of a stored instant: microseconds since the Unix epoch (`i64::MAX` for `infinity` and for
/// the few instants past year 292277 whose key would not fit).
pub(crate) fn instant_key(pg: i64) -> i64 {
    if pg == i64::MAX {
        return i64::MAX;
    }
    pg.saturating_add(PG_EPOCH_US)
}

/// The instant of a stored timestamp; `None` for NULL, the infinities, and anything `DateTime<Utc>` cannot hold.
pub(crate) fn decode_instant(pg: Option<i64>) -> Option<DateTime<Utc>> {
    let pg = pg?;
    if pg == i64::MAX || pg == i64::MIN {
        return None;
    }
    time::from_micros(pg.checked_add(PG_EPOCH_US)?)
}

/// An integer column of any width (flujo's are `INTEGER`).
fn int(row: &PgRow, i: usize) -> Option<i64> {
    row.try_get_unchecked::<Option<i64>, _>(i).ok().flatten()
}

fn text(row: &PgRow, i: usize) -> Option<String> {
    row.try_get::<Option<String>, _>(i).ok().flatten()
}

/// `memory_usage_mb`: flujo's `REAL` (`float4`) as the shortest decimal that reads back as the same `float4`
/// (what was saved, for any value of at most 7 significant digits), or a `float8` column as it is.
fn real(row: &PgRow, i: usize) -> Option<f64> {
    match row.try_get::<Option<f32>, _>(i) {
        Ok(v) => v.map(widen),
        Err(_) => row.try_get::<Option<f64>, _>(i).ok().flatten(),
    }
}

/// A `float4` as the `f64` of its shortest decimal spelling (`12.3f32` is `12.3`, not `12.300000190734863`).
pub(crate) fn widen(v: f32) -> f64 {
    if !v.is_finite() {
        return f64::from(v);
    }
    v.to_string().parse().unwrap_or(f64::from(v))
}

/// Reads a JSON column's text leniently, as the SQLite backend does: JSON as a value, anything else (a `json` or
/// `text` column another writer filled) as a string rather than failing the row.
fn decode_json(text: Option<String>) -> Option<Value> {
    text.map(|t| match serde_json::from_str(&t) {
        Ok(v) => v,
        Err(_) => {
            tracing::warn!("a JSON column holds text that is not JSON; it is shown as a string");
            Value::String(t)
        }
    })
}

/// The columns of a [`RunSummary`], in [`decode_summary`]'s order, with `error` as the error message's column.
/// The last one is the whole message's size in bytes (`octet_length` reads the stored size, without
/// decompressing the value).
fn summary_columns(error: &str) -> String {
    format!(
        "run_id, pipeline_id, pipeline_name, pipeline_version, status, current_step_index, total_steps, \
         created_at, updated_at, {error}, execution_time_ms, memory_usage_mb, octet_length(error_message)"
    )
}

/// The error message as lists read it: its first [`RunSummary::ERROR_EXCERPT_CHARS`] characters, cut by the
/// server (`substr` reads only the start of a large, compressed value).
pub(crate) fn error_excerpt() -> String {
    format!("substr(error_message, 1, {})", RunSummary::ERROR_EXCERPT_CHARS)
}

/// The columns of a [`RunSummary`] as lists show them.
pub(crate) fn summary_sql() -> String {
    summary_columns(&error_excerpt())
}

/// How many columns [`summary_sql`] has: a query's own columns come after them.
pub(crate) const SUMMARY_COLUMN_COUNT: usize = 13;

/// Every column of a run, for [`decode_state`]: the summary's (the error message whole), then the JSON columns
/// as text, then flujo's PostgreSQL-only columns.
pub(crate) fn whole_sql() -> String {
    format!(
        "{}, pipeline_context::text, last_step_output::text, step_history::text, metadata::text, \
         is_background_task, parent_run_id, task_id, background_error",
        summary_columns("error_message")
    )
}

/// A [`RunSummary`] from a row of [`summary_sql`].
pub(crate) fn decode_summary(row: &PgRow) -> RunSummary {
    let t = |i| text(row, i).unwrap_or_default();
    RunSummary {
        run_id: t(0),
        pipeline_id: t(1),
        pipeline_name: t(2),
        pipeline_version: t(3),
        status: Status::from_stored(text(row, 4)),
        current_step_index: int(row, 5).unwrap_or_default(),
        total_steps: int(row, 6).unwrap_or_default(),
        created_at: decode_instant(raw_instant(row, 7)),
        updated_at: decode_instant(raw_instant(row, 8)),
        error_message: text(row, 9),
        execution_time_ms: int(row, 10),
        memory_usage_mb: real(row, 11),
        error_message_bytes: int(row, 12).map(|n| n.max(0) as u64),
    }
}

/// A whole run from a row of [`whole_sql`].
pub(crate) fn decode_state(row: &PgRow) -> WorkflowState {
    let s = decode_summary(row);
    let at = SUMMARY_COLUMN_COUNT;
    WorkflowState {
        run_id: s.run_id,
        pipeline_id: s.pipeline_id,
        pipeline_name: s.pipeline_name,
        pipeline_version: s.pipeline_version,
        current_step_index: s.current_step_index,
        pipeline_context: decode_json(text(row, at)).unwrap_or(Value::Null),
        last_step_output: decode_json(text(row, at + 1)),
        step_history: decode_json(text(row, at + 2)).unwrap_or_else(|| Value::Array(Vec::new())),
        status: s.status,
        created_at: s.created_at,
        updated_at: s.updated_at,
        total_steps: s.total_steps,
        error_message: s.error_message,
        execution_time_ms: s.execution_time_ms,
        memory_usage_mb: s.memory_usage_mb,
        extras: RunExtras {
            metadata: decode_json(text(row, at + 3)),
            is_background_task: row
                .try_get::<Option<bool>, _>(at + 4)
                .ok()
                .flatten()
                .unwrap_or(false),
            parent_run_id: text(row, at + 5),
            task_id: text(row, at + 6),
            background_error: text(row, at + 7),
        },
    }
}

/// `BEGIN` of a read that must see one snapshot.
pub(crate) const BEGIN_SNAPSHOT: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

/// `head` followed by a cleanup policy's condition: its statuses, last activity before the cutoff, its pipeline.
/// A run at `-infinity` (no real instant, like text SQLite cannot read as a timestamp) is never treated as old.
/// Shared by the preview and the cleanup's batches, so they match the same runs.
pub(crate) fn cleanup_filter<'a>(policy: &ValidCleanup, head: &str) -> QueryBuilder<'a, Postgres> {
    let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(head);
    let statuses: Vec<String> = policy.statuses.iter().map(|s| s.as_str().to_string()).collect();
    qb.push("status = ANY(")
        .push_bind(statuses)
        .push(") AND updated_at < ")
        .push_bind(PgInstant::at(&policy.cutoff))
        .push(" AND updated_at > '-infinity'");
    if let Some(p) = &policy.pipeline_id {
        qb.push(" AND pipeline_id = ").push_bind(p.clone());
    }
    qb
}

/// PostgreSQL's text cannot hold NUL: an id or a filter with one names no run (as on SQLite, where flowstate never
/// saves one), instead of the server's "invalid byte sequence".
pub(crate) fn holds_nul(text: &str) -> bool {
    text.contains('\0')
}

impl PgStore {
    pub(crate) async fn load_state(&self, run_id: &str) -> Result<Option<WorkflowState>> {
        if holds_nul(run_id) {
            return Ok(None);
        }
        let sql = format!("SELECT {} FROM workflow_state WHERE run_id = $1", whole_sql());
        let row = sqlx::query(&sql)
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err("loading a run"))?;
        Ok(row.as_ref().map(decode_state))
    }

    pub(crate) async fn load_run_view(&self, run_id: &str, max_chars: i64) -> Result<Option<RunView>> {
        if holds_nul(run_id) {
            return Ok(None);
        }
        // `substr` takes a 32-bit length; no value is longer than that many characters.
        let max = i32::try_from(max_chars.max(1)).unwrap_or(i32::MAX);
        // Each large column's text once (JSONB's normalised spelling), then its start and its size in bytes.
        let heads = [
            "error_message",
            "ctx",
            "last_out",
            "hist",
            "meta",
            "background_error",
        ]
        .map(|c| format!("substr({c}, 1, $2), octet_length({c})"))
        .join(", ");
        let sql = format!(
            "SELECT {}, {heads}, is_background_task, parent_run_id, task_id FROM workflow_state, \
             LATERAL (SELECT pipeline_context::text AS ctx, last_step_output::text AS last_out, \
             step_history::text AS hist, metadata::text AS meta) AS j WHERE run_id = $1",
            summary_sql()
        );
        let row = sqlx::query(&sql)
            .bind(run_id)
            .bind(max)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err("loading a run's page"))?;
        Ok(row.map(|row| {
            let head = |i: usize| {
                text(&row, i).map(|head| TextHead {
                    total_bytes: int(&row, i + 1).map_or(head.len() as u64, |n| n.max(0) as u64),
                    head,
                })
            };
            let at = SUMMARY_COLUMN_COUNT;
            RunView {
                summary: decode_summary(&row),
                error_message: head(at),
                pipeline_context: head(at + 2),
                last_step_output: head(at + 4),
                step_history: head(at + 6),
                metadata: head(at + 8),
                background_error: head(at + 10),
                is_background_task: row
                    .try_get::<Option<bool>, _>(at + 12)
                    .ok()
                    .flatten()
                    .unwrap_or(false),
                parent_run_id: text(&row, at + 13),
                task_id: text(&row, at + 14),
            }
        }))
    }

    pub(crate) async fn load_text_column(
        &self,
        run_id: &str,
        column: TextColumn,
    ) -> Result<Option<Option<String>>> {
        if holds_nul(run_id) {
            return Ok(None);
        }
        let sql = format!(
            "SELECT {}::text FROM workflow_state WHERE run_id = $1",
            column.sql_name()
        );
        let row: Option<(Option<String>,)> = sqlx::query_as(&sql)
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err("loading a run's column"))?;
        Ok(row.map(|(text,)| text))
    }

    /// Whole runs after `after` in run-id byte order (`COLLATE "C"`, as SQLite's `BINARY`), through
    /// `idx_flowstate_run_id`.
    pub(crate) async fn export(&self, after: Option<&str>, limit: u32) -> Result<Vec<WorkflowState>> {
        let columns = whole_sql();
        let query = match after {
            Some(_) => format!(
                "SELECT {columns} FROM workflow_state WHERE run_id COLLATE \"C\" > $2 \
                 ORDER BY run_id COLLATE \"C\" LIMIT $1"
            ),
            None => format!("SELECT {columns} FROM workflow_state ORDER BY run_id COLLATE \"C\" LIMIT $1"),
        };
        let mut q = sqlx::query(&query).bind(i64::from(limit));
        if let Some(after) = after {
            q = q.bind(after);
        }
        let rows = q
            .fetch_all(&self.pool)
            .await
            .map_err(self.err("exporting runs"))?;
        Ok(rows.iter().map(decode_state).collect())
    }

    pub(crate) async fn list(&self, list: &ValidList<'_>) -> Result<Vec<(i64, RunSummary)>> {
        if list_never_matches(list.query) {
            return Ok(Vec::new());
        }
        let (column, key) = match list.sort {
            ListSort::Newest => ("created_at", "created_at"),
            ListSort::Idle => ("updated_at", "updated_at"),
            ListSort::Slowest => ("execution_time_ms", "execution_time_ms::float8"),
            ListSort::Heaviest => ("memory_usage_mb", "memory_usage_mb::float8"),
        };
        let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(format!(
            "SELECT {}, {key} AS flowstate_key FROM workflow_state WHERE true",
            summary_sql()
        ));
        push_filters(&mut qb, list);
        // The forward order: descending, but for the longest idle (oldest update first).
        let descending = list.sort != ListSort::Idle;
        if let Some(c) = &list.cursor {
            // One row comparison: an index range on (key, run_id COLLATE "C").
            let op = if c.before != descending { "<" } else { ">" };
            qb.push(format!(" AND ({column}, run_id COLLATE \"C\") {op} ("));
            match list.sort {
                ListSort::Newest | ListSort::Idle => qb.push_bind(PgInstant::from_micros(c.key)),
                // An INTEGER column against an int8: the same operator family, so the index reads it.
                ListSort::Slowest => qb.push_bind(validate::key_real(c.key) as i64),
                ListSort::Heaviest => qb.push_bind(validate::key_real(c.key)),
            };
            qb.push(", ").push_bind(c.run_id.clone()).push(")");
        }
        let dir = if list.backwards() == descending {
            "ASC"
        } else {
            "DESC"
        };
        qb.push(format!(
            " ORDER BY {column} {dir}, run_id COLLATE \"C\" {dir} LIMIT "
        ))
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
                let key = match list.sort {
                    ListSort::Newest | ListSort::Idle => {
                        raw_instant(row, SUMMARY_COLUMN_COUNT).map_or(time::UNKNOWN_INSTANT, instant_key)
                    }
                    ListSort::Slowest | ListSort::Heaviest => {
                        validate::real_key(row.get::<f64, _>(SUMMARY_COLUMN_COUNT))
                    }
                };
                (key, decode_summary(row))
            })
            .collect())
    }

    /// How many runs a list's filters match: from the counters when they answer it (statuses and a pipeline;
    /// newest, slowest or idle), otherwise counted from the rows up to [`RunCount::BOUND`] within
    /// [`COUNT_BUDGET`] (past either, "more than" what was counted).
    pub(crate) async fn count(&self, list: &ValidList<'_>) -> Result<RunCount> {
        if list_never_matches(list.query) {
            return Ok(RunCount {
                count: 0,
                exact: true,
            });
        }
        let map = self.err("counting runs");
        let query = list.query;
        if self.counters && list.only_counted_filters() && list.sort != ListSort::Heaviest {
            let column = if list.sort == ListSort::Slowest {
                "timed"
            } else {
                "runs"
            };
            let mut qb: QueryBuilder<Postgres> = QueryBuilder::new(format!(
                "SELECT COALESCE(sum({column}), 0)::int8 FROM flowstate_counts WHERE true"
            ));
            if !query.statuses.is_empty() {
                let keys: Vec<String> = query
                    .statuses
                    .iter()
                    .map(|s| match s {
                        Status::Other(None) => String::new(),
                        s => format!("={}", s.as_str()),
                    })
                    .collect();
                qb.push(" AND status_key = ANY(").push_bind(keys).push(")");
            }
            if let Some(p) = &query.pipeline_id {
                qb.push(" AND pipeline_key = ").push_bind(format!("={p}"));
            }
            let (n,): (i64,) = qb.build_query_as().fetch_one(&self.pool).await.map_err(&map)?;
            return Ok(RunCount {
                count: n.max(0) as u64,
                exact: true,
            });
        }
        let mut qb: QueryBuilder<Postgres> =
            QueryBuilder::new("SELECT count(*) FROM (SELECT 1 FROM workflow_state WHERE true");
        push_filters(&mut qb, list);
        qb.push(" LIMIT ")
            .push_bind(RunCount::BOUND as i64 + 1)
            .push(") AS matched");
        let mut tx = self.pool.begin().await.map_err(&map)?;
        sqlx::query(&format!(
            "SET LOCAL statement_timeout = {}",
            COUNT_BUDGET.as_millis()
        ))
        .execute(&mut *tx)
        .await
        .map_err(&map)?;
        let counted: std::result::Result<(i64,), sqlx::Error> = qb.build_query_as().fetch_one(&mut *tx).await;
        match counted {
            Ok((n,)) => {
                tx.commit().await.map_err(&map)?;
                let n = n.max(0) as u64;
                Ok(if n > RunCount::BOUND {
                    RunCount {
                        count: RunCount::BOUND,
                        exact: false,
                    }
                } else {
                    RunCount {
                        count: n,
                        exact: true,
                    }
                })
            }
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("57014") => {
                let _ = tx.rollback().await;
                Ok(RunCount {
                    count: 0,
                    exact: false,
                })
            }
            Err(e) => Err(map(e)),
        }
    }

    pub(crate) async fn failed(&self, since: DateTime<Utc>, limit: u32) -> Result<Vec<RunSummary>> {
        let sql = format!(
            "SELECT {} FROM workflow_state WHERE status = 'failed' AND updated_at >= $1 \
             ORDER BY updated_at DESC, run_id COLLATE \"C\" DESC LIMIT $2",
            summary_sql()
        );
        let rows = sqlx::query(&sql)
            .bind(PgInstant::at(&since))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(self.err("listing failed runs"))?;
        Ok(rows.iter().map(decode_summary).collect())
    }

    pub(crate) async fn preview_cleanup(&self, policy: &ValidCleanup) -> Result<CleanupPreview> {
        let none = CleanupPreview {
            cutoff: policy.cutoff,
            matched: 0,
            by_status: BTreeMap::new(),
            by_pipeline: BTreeMap::new(),
            oldest_updated_at: None,
            newest_updated_at: None,
        };
        if policy.pipeline_id.as_deref().is_some_and(holds_nul) {
            return Ok(none);
        }
        let mut qb = cleanup_filter(
            policy,
            "SELECT status, pipeline_id, count(*), min(updated_at), max(updated_at) FROM workflow_state WHERE ",
        );
        qb.push(" GROUP BY status, pipeline_id");
        let rows = qb
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(self.err("previewing a cleanup"))?;
        let mut preview = none;
        let (mut oldest, mut newest) = (i64::MAX, i64::MIN);
        for row in &rows {
            let status = Status::from_stored(text(row, 0));
            let pipeline = text(row, 1).unwrap_or_default();
            let count = int(row, 2).unwrap_or_default();
            if let Some(o) = raw_instant(row, 3) {
                oldest = oldest.min(o);
            }
            if let Some(n) = raw_instant(row, 4) {
                newest = newest.max(n);
            }
            preview.matched += count;
            *preview.by_status.entry(status.as_str().to_string()).or_insert(0) += count;
            *preview.by_pipeline.entry(pipeline).or_insert(0) += count;
        }
        if preview.matched > 0 {
            preview.oldest_updated_at = decode_instant(Some(oldest));
            preview.newest_updated_at = decode_instant(Some(newest));
        }
        Ok(preview)
    }

    /// The newest `limit` audit entries, newest first; none when the database has no audit table (flujo's,
    /// opened read-only before flowstate migrated it).
    pub(crate) async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>> {
        let map = self.err("reading the audit log");
        let exists: bool = sqlx::query_scalar("SELECT to_regclass('flowstate_audit') IS NOT NULL")
            .fetch_one(&self.pool)
            .await
            .map_err(&map)?;
        if !exists {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT id, at, actor, action, detail::text, matched, affected FROM flowstate_audit \
             ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit.min(ListQuery::MAX_LIMIT)))
        .fetch_all(&self.pool)
        .await
        .map_err(&map)?;
        Ok(rows
            .iter()
            .map(|r| AuditEntry {
                id: int(r, 0).unwrap_or_default(),
                at: decode_instant(raw_instant(r, 1)),
                actor: text(r, 2).unwrap_or_default(),
                action: text(r, 3).unwrap_or_default(),
                detail: text(r, 4)
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or(Value::Null),
                matched: int(r, 5),
                affected: int(r, 6).unwrap_or_default(),
            })
            .collect())
    }
}

/// `column` with ASCII letters lowered and every other character kept (PostgreSQL's `lower` follows the
/// database's locale; SQLite's, which lists match, lowers ASCII only).
/// How long a count of a list's runs may read rows ([`PgStore::count`]); past it the count says it could not count
/// (0, not exact). A count stops at [`RunCount::BOUND`] matches first, in a few ms; 100 ms let an error-text count
/// take 109 ms of a page view at 100,000 runs.
pub const COUNT_BUDGET: std::time::Duration = std::time::Duration::from_millis(25);

/// True when a filter holds a NUL character, which no stored text can (PostgreSQL's text cannot hold one).
fn list_never_matches(query: &ListQuery) -> bool {
    [
        &query.pipeline_id,
        &query.run_id_prefix,
        &query.error_contains,
        &query.parent_run_id,
        &query.pipeline_version,
    ]
    .iter()
    .any(|f| f.as_deref().is_some_and(holds_nul))
}

/// Appends a list's filters (` AND ...`), and what its order implies (a run with the value it sorts on).
fn push_filters(qb: &mut QueryBuilder<'_, Postgres>, list: &ValidList<'_>) {
    let query: &ListQuery = list.query;
    if !query.statuses.is_empty() {
        let names: Vec<String> = query
            .statuses
            .iter()
            .filter(|s| !matches!(s, Status::Other(None)))
            .map(|s| s.as_str().to_string())
            .collect();
        let wants_null = query.statuses.iter().any(|s| matches!(s, Status::Other(None)));
        if let [one] = names.as_slice() {
            // A plain `=`, so that an index on (status, created_at, run_id) gives the order.
            qb.push(" AND (status = ").push_bind(one.clone());
        } else {
            qb.push(" AND (status = ANY(").push_bind(names).push(")");
        }
        if wants_null {
            qb.push(" OR status IS NULL");
        }
        qb.push(")");
    }
    if let Some(p) = &query.pipeline_id {
        qb.push(" AND pipeline_id = ").push_bind(p.clone());
    }
    for (value, column, op) in [
        (&query.created_after, "created_at", " >= "),
        (&query.created_before, "created_at", " < "),
        (&query.updated_after, "updated_at", " >= "),
        (&query.updated_before, "updated_at", " < "),
    ] {
        if let Some(at) = value {
            qb.push(format!(" AND {column}{op}")).push_bind(PgInstant::at(at));
        }
    }
    if let Some(prefix) = &query.run_id_prefix {
        // Characters, as SQLite's `substr`; `=` under a deterministic collation compares bytes.
        qb.push(" AND left(run_id, ")
            .push_bind(i32::try_from(prefix.chars().count()).unwrap_or(i32::MAX))
            .push(") = ")
            .push_bind(prefix.clone());
    }
    if let Some(needle) = &query.error_contains {
        // ASCII case-insensitive whatever the database's locale, as SQLite's `lower`.
        qb.push(format!(" AND strpos({}, ", ascii_lower("error_message")))
            .push_bind(needle.to_ascii_lowercase())
            .push(") > 0");
    }
    if let Some(parent) = &query.parent_run_id {
        qb.push(" AND parent_run_id = ").push_bind(parent.clone());
    }
    if let Some(background) = query.background {
        qb.push(if background {
            " AND is_background_task IS TRUE"
        } else {
            " AND is_background_task IS NOT TRUE"
        });
    }
    if let Some(v) = &query.pipeline_version {
        qb.push(" AND pipeline_version = ").push_bind(v.clone());
    }
    match list.sort {
        ListSort::Slowest => {
            qb.push(" AND execution_time_ms IS NOT NULL");
        }
        ListSort::Heaviest => {
            qb.push(" AND memory_usage_mb IS NOT NULL");
        }
        ListSort::Newest | ListSort::Idle => {}
    }
    if let Some(v) = query.min_execution_ms {
        qb.push(" AND execution_time_ms >= ").push_bind(v);
    }
    if let Some(v) = query.max_execution_ms {
        qb.push(" AND execution_time_ms <= ").push_bind(v);
    }
    // Against the bound as a REAL, as the column holds it: a run shown as 123.456 MB (the shortest decimal of its
    // 32-bit value) is within `max_memory 123.456`.
    if let Some(v) = query.min_memory_mb {
        qb.push(" AND memory_usage_mb >= ").push_bind(v).push("::real");
    }
    if let Some(v) = query.max_memory_mb {
        qb.push(" AND memory_usage_mb <= ").push_bind(v).push("::real");
    }
}

pub(crate) fn ascii_lower(column: &str) -> String {
    format!("translate({column}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')")
}
