//! The row codec: how a run is written to and read from `workflow_state`, whichever path carries it (the writer's
//! thread, the readers' threads, sqlx). The column lists, the lookup and upsert statements, the validation and
//! encoding of a [`WorkflowState`] for a save, and the decoding of a row into a [`RunSummary`] or a
//! [`WorkflowState`].
//!
//! It depends on nothing of the store above it: [`crate::store`], [`crate::writer`], [`crate::reader`] and
//! [`crate::insights`] all use it, and it uses none of them.

use std::sync::{Arc, LazyLock};

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::raw::{Column, Param};
use crate::time;
use crate::validate::ValidState;
use crate::{RunExtras, RunSummary, Status, WorkflowState};

/// The columns of a run's summary, in decoding order ([`decode_summary`]), with `error` as the error message's
/// column. Casts make old files with odd types readable; an integer execution time is read as it is (`round` goes
/// through a double and would change values above 2^53). The last column is the error message's whole size in
/// bytes (`octet_length` reads it from the record header, not the text).
fn summary_columns(error: &str) -> String {
    format!(
        "CAST(COALESCE(run_id, '') AS TEXT), CAST(COALESCE(pipeline_id, '') AS TEXT), \
         CAST(COALESCE(pipeline_name, '') AS TEXT), CAST(COALESCE(pipeline_version, '') AS TEXT), \
         CAST(status AS TEXT), CAST(COALESCE(current_step_index, 0) AS INTEGER), \
         CAST(COALESCE(total_steps, 0) AS INTEGER), CAST(created_at AS TEXT), CAST(updated_at AS TEXT), {error}, \
         CASE WHEN typeof(execution_time_ms) = 'integer' THEN execution_time_ms \
         ELSE CAST(round(execution_time_ms) AS INTEGER) END, CAST(memory_usage_mb AS REAL), \
         octet_length(error_message)"
    )
}

/// The error message as lists read it: its first [`RunSummary::ERROR_EXCERPT_CHARS`] characters, cut by SQLite,
/// so a 3 MB message never reaches a list, a page or the page cache whole (the whole value is on the run's page).
pub(crate) static ERROR_EXCERPT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "substr(CAST(error_message AS TEXT), 1, {})",
        RunSummary::ERROR_EXCERPT_CHARS
    )
});

/// Columns of a [`RunSummary`] as lists show them: the error message as [`ERROR_EXCERPT`].
pub(crate) static SUMMARY_COLUMNS: LazyLock<String> = LazyLock::new(|| summary_columns(&ERROR_EXCERPT));

/// How many columns [`SUMMARY_COLUMNS`] has: a query's own columns come after them.
pub(crate) const SUMMARY_COLUMN_COUNT: usize = 13;

/// The JSON columns, after the summary ones, for a full [`WorkflowState`].
const JSON_COLUMNS: &str =
    "CAST(pipeline_context AS TEXT), CAST(last_step_output AS TEXT), CAST(step_history AS TEXT)";

/// The columns of [`RunExtras`] (schema version 3), after the JSON ones: `metadata`, `is_background_task` (true
/// only when it holds 1, as the list filter reads it), `parent_run_id`, `task_id`, `background_error`. A file
/// opened read-only before it was migrated lacks them: `present` false reads their defaults instead.
pub(crate) fn extras_columns(present: bool) -> &'static str {
    if present {
        "CAST(metadata AS TEXT), (is_background_task IS 1), CAST(parent_run_id AS TEXT), CAST(task_id AS TEXT), \
         CAST(background_error AS TEXT)"
    } else {
        "NULL, 0, NULL, NULL, NULL"
    }
}

/// The statements a reader runs; both select the run id first.
#[derive(Clone)]
pub(crate) struct LookupSql {
    /// One run: `?1` is its id.
    pub(crate) one: Arc<str>,
    /// Several runs: `?1` is a JSON array of their ids.
    pub(crate) many: Arc<str>,
}

/// The statements of [`Store::load_state`]: a whole row (decoded by `decode_state`) by run id, or by a JSON array
/// of run ids (several lookups at once, each row found through the primary key). `extras`: the file has the
/// columns of [`RunExtras`].
pub(crate) fn lookup_sql(extras: bool) -> LookupSql {
    let columns = whole_columns(extras);
    LookupSql {
        one: format!("SELECT {columns} FROM workflow_state WHERE run_id = ?1").into(),
        many: format!(
            "SELECT {columns} FROM workflow_state \
             WHERE run_id IN (SELECT value FROM json_each(?1))"
        )
        .into(),
    }
}

/// Every column of a whole row, as [`decode_state`] reads them (the error message whole). `extras`: the file has
/// the columns of [`RunExtras`].
pub(crate) fn whole_columns(extras: bool) -> String {
    format!(
        "{}, {JSON_COLUMNS}, {}",
        summary_columns("CAST(error_message AS TEXT)"),
        extras_columns(extras)
    )
}

/// The columns of `workflow_state` a save writes, in the order of [`upsert_sql`]'s values: flujo's fifteen, then
/// the five of [`RunExtras`].
pub(crate) const UPSERT_COLUMNS: &str = "run_id, pipeline_id, pipeline_name, pipeline_version, current_step_index, \
    pipeline_context, last_step_output, step_history, status, created_at, updated_at, total_steps, error_message, \
    execution_time_ms, memory_usage_mb, metadata, is_background_task, parent_run_id, task_id, background_error";

/// Every column but `run_id` is replaced on conflict; `created_at` was resolved in the VALUES (given, else kept,
/// else now).
const UPSERT_ON_CONFLICT: &str = "ON CONFLICT(run_id) DO UPDATE SET \
    pipeline_id = excluded.pipeline_id, \
    pipeline_name = excluded.pipeline_name, \
    pipeline_version = excluded.pipeline_version, \
    current_step_index = excluded.current_step_index, \
    pipeline_context = excluded.pipeline_context, \
    last_step_output = excluded.last_step_output, \
    step_history = excluded.step_history, \
    status = excluded.status, \
    created_at = excluded.created_at, \
    updated_at = excluded.updated_at, \
    total_steps = excluded.total_steps, \
    error_message = excluded.error_message, \
    execution_time_ms = excluded.execution_time_ms, \
    memory_usage_mb = excluded.memory_usage_mb, \
    metadata = excluded.metadata, \
    is_background_task = excluded.is_background_task, \
    parent_run_id = excluded.parent_run_id, \
    task_id = excluded.task_id, \
    background_error = excluded.background_error";

/// The UPSERT of `rows` runs in one statement (`rows` of 1 is a plain save), each row's parameters bound by
/// [`EncodedRow::bind`]. The rows must be of distinct runs: the stored creation time each one keeps is read before
/// any of them is written.
///
/// The parameters are anonymous (`?`, numbered in order), unlike the numbered ones of the other statements:
/// binding looks every numbered parameter's name up in a list as long as the statement's, which made binding a
/// 32-row statement (512 parameters) quadratic.
pub(crate) fn upsert_sql(rows: usize) -> String {
    const ROW: &str = "(?, ?, ?, ?, ?, ?, ?, ?, ?, \
        COALESCE(?, (SELECT created_at FROM workflow_state WHERE run_id = ?), ?), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    let values = vec![ROW; rows].join(", ");
    format!("INSERT INTO workflow_state ({UPSERT_COLUMNS}) VALUES {values} {UPSERT_ON_CONFLICT}")
}

/// How many parameters one row of [`upsert_sql`] binds.
pub(crate) const PARAMS_PER_ROW: usize = 22;

/// A validated row, ready to bind: owned, so that it can be handed to the write thread.
pub(crate) struct EncodedRow {
    pub(crate) run_id: String,
    pipeline_id: String,
    pipeline_name: String,
    pipeline_version: String,
    current_step_index: i64,
    context: String,
    last_output: Option<String>,
    history: Option<String>,
    status: &'static str,
    created_at: Option<String>,
    updated_at: String,
    total_steps: i64,
    error_message: Option<String>,
    execution_time_ms: Option<i64>,
    memory_usage_mb: Option<f64>,
    metadata: Option<String>,
    is_background_task: i64,
    parent_run_id: Option<String>,
    task_id: Option<String>,
    background_error: Option<String>,
    now: String,
}

impl EncodedRow {
    /// A checked row ([`ValidState`]) as SQLite stores it: timestamps as flujo's text, `now` for the missing ones.
    pub(crate) fn new(row: &ValidState, now: DateTime<Utc>) -> Self {
        let state = &row.state;
        EncodedRow {
            run_id: state.run_id.clone(),
            pipeline_id: state.pipeline_id.clone(),
            pipeline_name: state.pipeline_name.clone(),
            pipeline_version: state.pipeline_version.clone(),
            current_step_index: state.current_step_index,
            context: row.context.clone(),
            last_output: row.last_output.clone(),
            history: row.history.clone(),
            status: row.status,
            created_at: state.created_at.as_ref().map(time::format_timestamp),
            updated_at: time::format_timestamp(&state.updated_at.unwrap_or(now)),
            total_steps: state.total_steps,
            error_message: state.error_message.clone(),
            execution_time_ms: state.execution_time_ms,
            memory_usage_mb: state.memory_usage_mb,
            metadata: row.metadata.clone(),
            is_background_task: i64::from(state.extras.is_background_task),
            parent_run_id: state.extras.parent_run_id.clone(),
            task_id: state.extras.task_id.clone(),
            background_error: state.extras.background_error.clone(),
            now: time::format_timestamp(&now),
        }
    }

    /// [`EncodedRow::new`] of a row handed over (its values moved, not copied): a bulk load's.
    pub(crate) fn from_valid(row: ValidState, now: DateTime<Utc>) -> Self {
        let ValidState {
            state,
            status,
            context,
            last_output,
            history,
            metadata,
        } = row;
        EncodedRow {
            created_at: state.created_at.as_ref().map(time::format_timestamp),
            updated_at: time::format_timestamp(&state.updated_at.unwrap_or(now)),
            run_id: state.run_id,
            pipeline_id: state.pipeline_id,
            pipeline_name: state.pipeline_name,
            pipeline_version: state.pipeline_version,
            current_step_index: state.current_step_index,
            context,
            last_output,
            history,
            status,
            total_steps: state.total_steps,
            error_message: state.error_message,
            execution_time_ms: state.execution_time_ms,
            memory_usage_mb: state.memory_usage_mb,
            metadata,
            is_background_task: i64::from(state.extras.is_background_task),
            parent_run_id: state.extras.parent_run_id,
            task_id: state.extras.task_id,
            background_error: state.extras.background_error,
            now: time::format_timestamp(&now),
        }
    }

    /// The row's 22 parameters, in the order of one row of [`upsert_sql`]: the columns, but `created_at` is the
    /// given one, else the stored one (the run id again), else now.
    pub(crate) fn params(&self) -> [Param<'_>; PARAMS_PER_ROW] {
        [
            self.run_id.as_str().into(),
            self.pipeline_id.as_str().into(),
            self.pipeline_name.as_str().into(),
            self.pipeline_version.as_str().into(),
            self.current_step_index.into(),
            self.context.as_str().into(),
            self.last_output.as_deref().into(),
            self.history.as_deref().into(),
            self.status.into(),
            self.created_at.as_deref().into(),
            self.run_id.as_str().into(),
            self.now.as_str().into(),
            self.updated_at.as_str().into(),
            self.total_steps.into(),
            self.error_message.as_deref().into(),
            self.execution_time_ms.into(),
            self.memory_usage_mb.into(),
            self.metadata.as_deref().into(),
            self.is_background_task.into(),
            self.parent_run_id.as_deref().into(),
            self.task_id.as_deref().into(),
            self.background_error.as_deref().into(),
        ]
    }
}

/// Binds a row's parameters ([`EncodedRow::params`]) to an [`upsert_sql`] statement of one row run through sqlx.
pub(crate) fn bind_params<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    row: &'q EncodedRow,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    for p in row.params() {
        query = match p {
            Param::Null => query.bind(None::<&str>),
            Param::Int(v) => query.bind(v),
            Param::Real(v) => query.bind(v),
            Param::Text(t) => query.bind(t),
        };
    }
    query
}

/// Reads a JSON column leniently: valid JSON (any whitespace style) as a value; anything else is kept as a
/// string rather than failing the row. Parsed where the row holds it, without a copy.
fn decode_json(text: Option<&str>) -> Option<Value> {
    text.map(|t| match serde_json::from_str(t) {
        Ok(v) => v,
        Err(_) => {
            tracing::warn!("a JSON column holds text that is not JSON; it is shown as a string");
            Value::String(t.to_string())
        }
    })
}

fn decode_time(text: Option<&str>) -> Option<DateTime<Utc>> {
    text.and_then(time::parse_timestamp)
}

/// The columns of a row, however it was read (through sqlx, or by the store's own threads: [`super::raw`]). A
/// column of another type than asked for reads as missing; the statements cast every column to its type.
pub(crate) trait Columns {
    fn text(&self, i: usize) -> Option<&str>;
    fn int(&self, i: usize) -> Option<i64>;
    fn real(&self, i: usize) -> Option<f64>;

    /// A size in bytes (`octet_length`): an integer column, never negative.
    fn size(&self, i: usize) -> Option<u64> {
        self.int(i).map(|n| n.max(0) as u64)
    }
}

impl Columns for SqliteRow {
    fn text(&self, i: usize) -> Option<&str> {
        self.try_get::<Option<&str>, _>(i).ok().flatten()
    }

    fn int(&self, i: usize) -> Option<i64> {
        self.try_get::<Option<i64>, _>(i).ok().flatten()
    }

    fn real(&self, i: usize) -> Option<f64> {
        self.try_get::<Option<f64>, _>(i).ok().flatten()
    }
}

impl Columns for [Column] {
    fn text(&self, i: usize) -> Option<&str> {
        match self.get(i) {
            Some(Column::Text(t)) => Some(t),
            _ => None,
        }
    }

    fn int(&self, i: usize) -> Option<i64> {
        match self.get(i) {
            Some(Column::Int(v)) => Some(*v),
            _ => None,
        }
    }

    fn real(&self, i: usize) -> Option<f64> {
        match self.get(i) {
            Some(Column::Real(v)) => Some(*v),
            Some(Column::Int(v)) => Some(*v as f64),
            _ => None,
        }
    }
}

/// A [`RunSummary`] from a row of [`SUMMARY_COLUMNS`].
pub(crate) fn decode_summary<R: Columns + ?Sized>(row: &R) -> RunSummary {
    let text = |i| row.text(i).unwrap_or_default().to_string();
    RunSummary {
        run_id: text(0),
        pipeline_id: text(1),
        pipeline_name: text(2),
        pipeline_version: text(3),
        status: Status::from_stored(row.text(4).map(str::to_string)),
        current_step_index: row.int(5).unwrap_or_default(),
        total_steps: row.int(6).unwrap_or_default(),
        created_at: decode_time(row.text(7)),
        updated_at: decode_time(row.text(8)),
        error_message: row.text(9).map(str::to_string),
        execution_time_ms: row.int(10),
        memory_usage_mb: row.real(11),
        error_message_bytes: row.size(12),
    }
}

/// The columns of [`extras_columns`], from column `at` on.
pub(crate) fn decode_extras<R: Columns + ?Sized>(row: &R, at: usize) -> RunExtras {
    RunExtras {
        metadata: decode_json(row.text(at)),
        is_background_task: row.int(at + 1).unwrap_or_default() == 1,
        parent_run_id: row.text(at + 2).map(str::to_string),
        task_id: row.text(at + 3).map(str::to_string),
        background_error: row.text(at + 4).map(str::to_string),
    }
}

/// A whole row ([`whole_columns`]: [`SUMMARY_COLUMNS`], the JSON columns, the extras), as
/// [`crate::Store::load_state`] returns it.
pub(crate) fn decode_state<R: Columns + ?Sized>(row: &R) -> WorkflowState {
    let s = decode_summary(row);
    WorkflowState {
        run_id: s.run_id,
        pipeline_id: s.pipeline_id,
        pipeline_name: s.pipeline_name,
        pipeline_version: s.pipeline_version,
        current_step_index: s.current_step_index,
        pipeline_context: decode_json(row.text(SUMMARY_COLUMN_COUNT)).unwrap_or(Value::Null),
        last_step_output: decode_json(row.text(SUMMARY_COLUMN_COUNT + 1)),
        step_history: decode_json(row.text(SUMMARY_COLUMN_COUNT + 2))
            .unwrap_or_else(|| Value::Array(Vec::new())),
        status: s.status,
        created_at: s.created_at,
        updated_at: s.updated_at,
        total_steps: s.total_steps,
        error_message: s.error_message,
        execution_time_ms: s.execution_time_ms,
        memory_usage_mb: s.memory_usage_mb,
        extras: decode_extras(row, SUMMARY_COLUMN_COUNT + 3),
    }
}
