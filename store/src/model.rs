//! The values the store reads and writes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use flowstate_model::limits;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use flowstate_model::{RunSummary, Status, UnknownStatus};

impl From<UnknownStatus> for crate::StoreError {
    fn from(e: UnknownStatus) -> Self {
        crate::StoreError::invalid("status", e.to_string())
    }
}

/// One row of `workflow_state`: the fifteen columns, typed.
///
/// Timestamps are instants (whatever spelling the file holds); `None` means the stored value was NULL or not a
/// timestamp (old files), and, when saving, "now" for `updated_at` and "keep the stored creation time, or now"
/// for `created_at`. They are stored to the microsecond (what flujo's Python keeps): finer parts are dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowState {
    /// The run's id (primary key).
    pub run_id: String,
    /// The pipeline's id.
    pub pipeline_id: String,
    /// The pipeline's display name.
    pub pipeline_name: String,
    /// The pipeline's version.
    pub pipeline_version: String,
    /// Index of the step being executed (0-based).
    pub current_step_index: i64,
    /// The pipeline context (JSON).
    pub pipeline_context: Value,
    /// The last step's output (JSON); `None` is SQL NULL, distinct from JSON `null`.
    pub last_step_output: Option<Value>,
    /// The steps run so far (a JSON list; NULL reads as `[]`).
    pub step_history: Value,
    /// The run's state.
    pub status: Status,
    /// When the run was created.
    pub created_at: Option<DateTime<Utc>>,
    /// When the run was last updated.
    pub updated_at: Option<DateTime<Utc>>,
    /// How many steps the pipeline has (NULL reads as 0).
    pub total_steps: i64,
    /// The error that ended the run, if any.
    pub error_message: Option<String>,
    /// Time spent executing, in milliseconds.
    pub execution_time_ms: Option<i64>,
    /// Memory used, in MB.
    pub memory_usage_mb: Option<f64>,
}

impl WorkflowState {
    /// A new running run at step 0 with an empty context; timestamps are filled in when saved.
    pub fn new(run_id: impl Into<String>, pipeline_id: impl Into<String>) -> Self {
        let pipeline_id = pipeline_id.into();
        WorkflowState {
            run_id: run_id.into(),
            pipeline_name: pipeline_id.clone(),
            pipeline_id,
            pipeline_version: "1.0.0".into(),
            current_step_index: 0,
            pipeline_context: Value::Object(Default::default()),
            last_step_output: None,
            step_history: Value::Array(Vec::new()),
            status: Status::Running,
            created_at: None,
            updated_at: None,
            total_steps: 0,
            error_message: None,
            execution_time_ms: None,
            memory_usage_mb: None,
        }
    }
}

/// The start of a stored text column, read without reading the rest into the process: at most a bound of
/// characters, and the whole value's size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextHead {
    /// The first characters of the stored text (all of it when [`TextHead::is_whole`]).
    pub head: String,
    /// The whole stored value's size in bytes.
    pub total_bytes: u64,
}

impl TextHead {
    /// True when [`TextHead::head`] is the whole value.
    pub fn is_whole(&self) -> bool {
        self.head.len() as u64 >= self.total_bytes
    }
}

/// A run for its page, with every large column bounded: the summary (error excerpt as in lists), and the start of
/// the error message and of each JSON column, as stored (not parsed). See [`crate::Store::load_run_view`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunView {
    /// Every column but the large ones.
    pub summary: RunSummary,
    /// The error message's start (`None`: NULL).
    pub error_message: Option<TextHead>,
    /// The context's start, as stored (`None`: NULL, from an old backend).
    pub pipeline_context: Option<TextHead>,
    /// The last step output's start (`None`: NULL, no step has stored one).
    pub last_step_output: Option<TextHead>,
    /// The step history's start (`None`: NULL, read as `[]`).
    pub step_history: Option<TextHead>,
}

/// A large text column of a run, to read whole on its own ([`crate::Store::load_text_column`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TextColumn {
    /// `pipeline_context`.
    Context,
    /// `last_step_output`.
    LastOutput,
    /// `step_history`.
    StepHistory,
    /// `error_message`.
    ErrorMessage,
}

impl TextColumn {
    /// The column's name in `workflow_state`.
    pub fn sql_name(self) -> &'static str {
        match self {
            TextColumn::Context => "pipeline_context",
            TextColumn::LastOutput => "last_step_output",
            TextColumn::StepHistory => "step_history",
            TextColumn::ErrorMessage => "error_message",
        }
    }
}

/// What to list. Every filter is optional; the default lists the newest 50 runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListQuery {
    /// Only these statuses (any of them). Empty means all. [`Status::Other`] names match kept legacy values.
    pub statuses: Vec<Status>,
    /// Only this pipeline id.
    pub pipeline_id: Option<String>,
    /// Created at or after this instant.
    pub created_after: Option<DateTime<Utc>>,
    /// Created strictly before this instant.
    pub created_before: Option<DateTime<Utc>>,
    /// Updated at or after this instant.
    pub updated_after: Option<DateTime<Utc>>,
    /// Updated strictly before this instant.
    pub updated_before: Option<DateTime<Utc>>,
    /// Run ids starting with this text.
    pub run_id_prefix: Option<String>,
    /// Error messages containing this text (ASCII case-insensitive).
    pub error_contains: Option<String>,
    /// Page size: default [`ListQuery::DEFAULT_LIMIT`], at most [`ListQuery::MAX_LIMIT`].
    pub limit: Option<u32>,
    /// Rows to skip (after the cursor, if any).
    pub offset: Option<u64>,
    /// A page's `next_cursor` (continue after it) or `prev_cursor` (the page before it).
    pub cursor: Option<String>,
}

impl ListQuery {
    /// Page size when none is given.
    pub const DEFAULT_LIMIT: u32 = limits::DEFAULT_PAGE_SIZE;
    /// The largest page the store returns.
    pub const MAX_LIMIT: u32 = limits::MAX_PAGE_SIZE;
}

/// One page of runs, newest first (by creation instant, then run id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    /// The runs of this page.
    pub runs: Vec<RunSummary>,
    /// Pass this as [`ListQuery::cursor`] for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
    /// Pass this as [`ListQuery::cursor`] for the previous page; `None` on the first page.
    pub prev_cursor: Option<String>,
}

/// The seed's four figures, read from one snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowStats {
    /// Every row in the table.
    pub total_workflows: i64,
    /// Rows created in the 24 hours before the store's clock.
    pub recent_workflows_24h: i64,
    /// Rows per stored status name (unknown values under their own name, NULL under `null`).
    pub status_counts: BTreeMap<String, i64>,
    /// Mean of the non-NULL execution times; 0 when there are none.
    pub average_execution_time_ms: f64,
}

/// Which runs a cleanup removes. The same policy drives the preview and the deletion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CleanupPolicy {
    /// Runs whose last activity (`updated_at`) is more than this many days before now.
    pub older_than_days: u32,
    /// Statuses to remove; empty means the terminal ones (completed, failed, cancelled). Running and paused runs
    /// are removed only when named here.
    pub statuses: Vec<Status>,
    /// Only this pipeline.
    pub pipeline_id: Option<String>,
}

impl CleanupPolicy {
    /// Terminal runs idle for more than `days` days.
    pub fn older_than_days(days: u32) -> Self {
        CleanupPolicy {
            older_than_days: days,
            statuses: Vec::new(),
            pipeline_id: None,
        }
    }

    /// The statuses this policy removes.
    pub fn effective_statuses(&self) -> Vec<Status> {
        if self.statuses.is_empty() {
            Status::TERMINAL.to_vec()
        } else {
            let mut s = self.statuses.clone();
            s.sort();
            s.dedup();
            s
        }
    }
}

/// What a cleanup with a policy would remove, right now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CleanupPreview {
    /// Runs last updated before this instant are matched.
    pub cutoff: DateTime<Utc>,
    /// How many runs match.
    pub matched: i64,
    /// Matches per status.
    pub by_status: BTreeMap<String, i64>,
    /// Matches per pipeline id.
    pub by_pipeline: BTreeMap<String, i64>,
    /// The oldest last activity among the matches.
    pub oldest_updated_at: Option<DateTime<Utc>>,
    /// The newest last activity among the matches.
    pub newest_updated_at: Option<DateTime<Utc>>,
}
