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
    /// The columns only flujo's PostgreSQL layout has (background tasks, metadata): kept by both backends.
    #[serde(default)]
    pub extras: RunExtras,
}

/// The five columns of flujo's PostgreSQL layout that its SQLite one lacks: a run's metadata and what ties a
/// background task to the run that started it. flowstate keeps them on both backends (so a copy keeps them too).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunExtras {
    /// Free-form metadata (JSON; `None`: SQL NULL).
    pub metadata: Option<Value>,
    /// True for a background task started by another run (flujo's `is_background_task`; NULL reads as false).
    pub is_background_task: bool,
    /// The run that started this one, for a background task.
    pub parent_run_id: Option<String>,
    /// The background task's id.
    pub task_id: Option<String>,
    /// The error a background task ended with.
    pub background_error: Option<String>,
}

impl RunExtras {
    /// True when every column is empty (NULL or false), as on a run flujo's SQLite backend wrote.
    pub fn is_empty(&self) -> bool {
        *self == RunExtras::default()
    }
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
            extras: RunExtras::default(),
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
    /// The metadata's start, as stored (`None`: NULL).
    #[serde(default)]
    pub metadata: Option<TextHead>,
    /// The background task's error's start (`None`: NULL).
    #[serde(default)]
    pub background_error: Option<TextHead>,
    /// True for a background task.
    #[serde(default)]
    pub is_background_task: bool,
    /// The run that started this background task.
    #[serde(default)]
    pub parent_run_id: Option<String>,
    /// The background task's id.
    #[serde(default)]
    pub task_id: Option<String>,
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
    /// `metadata`.
    Metadata,
    /// `background_error`.
    BackgroundError,
}

impl TextColumn {
    /// The column's name in `workflow_state`.
    pub fn sql_name(self) -> &'static str {
        match self {
            TextColumn::Context => "pipeline_context",
            TextColumn::LastOutput => "last_step_output",
            TextColumn::StepHistory => "step_history",
            TextColumn::ErrorMessage => "error_message",
            TextColumn::Metadata => "metadata",
            TextColumn::BackgroundError => "background_error",
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
    /// Only the background tasks this run started (flujo's `parent_run_id`).
    #[serde(default)]
    pub parent_run_id: Option<String>,
    /// Only background tasks (`Some(true)`) or only runs that are not (`Some(false)`).
    #[serde(default)]
    pub background: Option<bool>,
    /// Only this pipeline version (exact): what marks a deploy.
    #[serde(default)]
    pub pipeline_version: Option<String>,
    /// Execution time at least this many milliseconds (runs without a time never match a time bound).
    #[serde(default)]
    pub min_execution_ms: Option<i64>,
    /// Execution time at most this many milliseconds.
    #[serde(default)]
    pub max_execution_ms: Option<i64>,
    /// Memory at least this many MB (runs without a figure never match a memory bound).
    #[serde(default)]
    pub min_memory_mb: Option<f64>,
    /// Memory at most this many MB.
    #[serde(default)]
    pub max_memory_mb: Option<f64>,
    /// The order of the list (default: newest first).
    #[serde(default)]
    pub sort: ListSort,
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

/// The order of a list of runs. Every order ends with the run id, so pages are keyset pages on each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListSort {
    /// Newest first (creation instant, then run id, descending).
    #[default]
    Newest,
    /// Longest execution time first. Lists only runs with a recorded time.
    Slowest,
    /// Most memory first. Lists only runs with a recorded memory figure.
    Heaviest,
    /// Longest idle first: the oldest last update (`updated_at`) first.
    Idle,
}

impl ListSort {
    /// Every order, the default first.
    pub const ALL: [ListSort; 4] = [
        ListSort::Newest,
        ListSort::Slowest,
        ListSort::Heaviest,
        ListSort::Idle,
    ];

    /// The name in URLs and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ListSort::Newest => "newest",
            ListSort::Slowest => "slowest",
            ListSort::Heaviest => "heaviest",
            ListSort::Idle => "idle",
        }
    }

    /// The order named `name` (as [`ListSort::as_str`] spells it).
    pub fn parse(name: &str) -> Option<ListSort> {
        ListSort::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// In words, for labels.
    pub fn label(self) -> &'static str {
        match self {
            ListSort::Newest => "newest first",
            ListSort::Slowest => "slowest first",
            ListSort::Heaviest => "most memory first",
            ListSort::Idle => "longest idle first",
        }
    }
}

/// How many runs a list's filter matches ([`crate::Store::count_runs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCount {
    /// The runs matched: all of them when `exact`; otherwise a lower bound ("more than `count`"), 0 when even
    /// that could not be counted within the time a page allows.
    pub count: u64,
    /// True when `count` is the exact number.
    pub exact: bool,
}

impl RunCount {
    /// The largest number counted exactly by reading rows; past it a count says "more than" it.
    pub const BOUND: u64 = 10_000;
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

impl WorkflowStats {
    /// The figures from rows per stored status (NULL: `None`), the recent runs and the mean execution time.
    pub(crate) fn from_parts(
        per_status: Vec<(Option<String>, i64)>,
        recent: i64,
        average: Option<f64>,
    ) -> Self {
        let mut status_counts = BTreeMap::new();
        let mut total = 0;
        for (status, count) in per_status {
            if count == 0 {
                continue;
            }
            total += count;
            *status_counts
                .entry(Status::from_stored(status).as_str().to_string())
                .or_insert(0) += count;
        }
        WorkflowStats {
            total_workflows: total,
            recent_workflows_24h: recent,
            status_counts,
            average_execution_time_ms: average.unwrap_or(0.0),
        }
    }
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
