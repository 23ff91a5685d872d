//! The values pages show, as the browser receives them. Plain serde types: the store (and sqlx) never reach
//! the browser, so server functions turn store values into these.

use serde::{Deserialize, Serialize};

pub use flowstate_model::Percentiles;

/// How the dashboard was started; shown in the layout (e.g. the read-only banner).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// `--read-only`: every change is refused.
    pub read_only: bool,
    /// `--demo`: the database is a throw-away demo.
    pub demo: bool,
    /// An admin token is configured (`FLOWSTATE_ADMIN_TOKEN`): changes need a login.
    pub admin_token_configured: bool,
}

/// How many runs have one status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCount {
    /// The stored status name (`running`, ...; an unknown stored value as it is; NULL as `null`).
    pub status: String,
    /// Runs with that status.
    pub count: i64,
}

/// The Overview page's figures, read in one go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    /// Every run in the database.
    pub total: i64,
    /// Runs created in the 24 hours before `read_at`.
    pub recent_24h: i64,
    /// The five known statuses in a fixed order (zero counts included), then any other stored values.
    pub statuses: Vec<StatusCount>,
    /// Mean execution time over the runs that have one; `None` when none has.
    pub average_execution_ms: Option<f64>,
    /// Runs that failed (by their last update) in the 24 hours before `read_at`.
    pub failed_24h: i64,
    /// Execution-time percentiles over every run that has one.
    pub percentiles: Percentiles,
    /// Running or paused runs idle for longer than the threshold.
    pub stuck: StuckFigures,
    /// The statuses the activity rows count, in stacking order (bottom first).
    pub chart_statuses: Vec<String>,
    /// Runs created per hour over the last 24 hours (oldest first).
    pub hourly: Vec<ActivityRow>,
    /// Runs created per day over the last 30 days (oldest first).
    pub daily: Vec<ActivityRow>,
    /// Execution-time percentiles per pipeline, busiest first.
    pub by_pipeline: Vec<PipelinePercentiles>,
    /// The charts, drawn on the server.
    pub charts: OverviewCharts,
    /// When the figures were read, RFC 3339 in UTC.
    pub read_at: String,
}

/// A time-range filter of the runs list, as the URL and the form carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeParam {
    /// The instant in RFC 3339 (UTC), for links.
    pub rfc3339: String,
    /// The same instant as the form's field shows it (`2026-03-14 12:00`, UTC, 24-hour).
    pub input: String,
}

/// The runs list's filters, read from the URL and checked on the server. Blank parameters are absent here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunsFilter {
    /// `status` (repeated, or comma-separated): any of these; empty means every status.
    pub statuses: Vec<String>,
    /// `pipeline`: one pipeline id.
    pub pipeline: Option<String>,
    /// `created_after`: created at or after.
    pub created_after: Option<TimeParam>,
    /// `created_before`: created strictly before.
    pub created_before: Option<TimeParam>,
    /// `updated_after`: last updated at or after.
    pub updated_after: Option<TimeParam>,
    /// `updated_before`: last updated strictly before.
    pub updated_before: Option<TimeParam>,
    /// `prefix`: run ids starting with this text.
    pub prefix: Option<String>,
    /// `error`: error messages containing this text (case-insensitive).
    pub error: Option<String>,
    /// `parent`: only the background tasks this run started.
    pub parent: Option<String>,
    /// `background`: `1` only background tasks, `0` only runs that are not.
    pub background: Option<bool>,
    /// `version`: one pipeline version (exact).
    #[serde(default)]
    pub version: Option<String>,
    /// `min_duration`: execution time at least this span (`5m`, `90s`, `1500ms`), as given.
    #[serde(default)]
    pub min_duration: Option<String>,
    /// `max_duration`: execution time at most this span.
    #[serde(default)]
    pub max_duration: Option<String>,
    /// `min_memory`: memory at least this many MB, as given.
    #[serde(default)]
    pub min_memory: Option<String>,
    /// `max_memory`: memory at most this many MB.
    #[serde(default)]
    pub max_memory: Option<String>,
    /// `sort`: `slowest`, `heaviest` or `idle`; `None` for newest first (the default, left out of links).
    #[serde(default)]
    pub sort: Option<String>,
    /// `limit`: the page size.
    pub limit: u32,
}

impl RunsFilter {
    /// The page size when the URL names none.
    pub const DEFAULT_LIMIT: u32 = flowstate_model::limits::DEFAULT_PAGE_SIZE;
    /// The largest page size.
    pub const MAX_LIMIT: u32 = flowstate_model::limits::MAX_PAGE_SIZE;

    /// The `/runs` address of these filters, optionally at a page `cursor`. Parameters that are not set are
    /// left out, so shared links stay short.
    pub fn href(&self, cursor: Option<&str>) -> String {
        use crate::format::url_encode;
        let mut parts: Vec<String> = Vec::new();
        for s in &self.statuses {
            parts.push(format!("status={}", url_encode(s)));
        }
        let texts = [
            ("pipeline", self.pipeline.as_deref()),
            (
                "created_after",
                self.created_after.as_ref().map(|t| t.rfc3339.as_str()),
            ),
            (
                "created_before",
                self.created_before.as_ref().map(|t| t.rfc3339.as_str()),
            ),
            (
                "updated_after",
                self.updated_after.as_ref().map(|t| t.rfc3339.as_str()),
            ),
            (
                "updated_before",
                self.updated_before.as_ref().map(|t| t.rfc3339.as_str()),
            ),
            ("prefix", self.prefix.as_deref()),
            ("error", self.error.as_deref()),
            ("parent", self.parent.as_deref()),
            ("background", self.background.map(|b| if b { "1" } else { "0" })),
            ("version", self.version.as_deref()),
            ("min_duration", self.min_duration.as_deref()),
            ("max_duration", self.max_duration.as_deref()),
            ("min_memory", self.min_memory.as_deref()),
            ("max_memory", self.max_memory.as_deref()),
            ("sort", self.sort.as_deref()),
        ];
        for (name, value) in texts {
            if let Some(v) = value {
                parts.push(format!("{name}={}", url_encode(v)));
            }
        }
        if self.limit != Self::DEFAULT_LIMIT {
            parts.push(format!("limit={}", self.limit));
        }
        if let Some(c) = cursor {
            parts.push(format!("cursor={}", url_encode(c)));
        }
        if parts.is_empty() {
            "/runs".into()
        } else {
            format!("/runs?{}", parts.join("&"))
        }
    }

    /// Every parameter `/runs` reads (the others are named in a notice on the page). `full` belongs to the run
    /// page, whose links can carry it back.
    pub const PARAMS: &'static [&'static str] = &[
        "status",
        "pipeline",
        "version",
        "created_after",
        "created_before",
        "updated_after",
        "updated_before",
        "prefix",
        "error",
        "parent",
        "background",
        "min_duration",
        "max_duration",
        "min_memory",
        "max_memory",
        "sort",
        "limit",
        "cursor",
    ];

    /// The filters and the order in a few words for the page title (`failed · pipeline etl · slowest first`),
    /// each value cut to 40 characters; empty when nothing is set (the title escapes what it is given).
    pub fn describe(&self) -> String {
        let cut = |v: &str| crate::format::truncate_chars(v, 40);
        let mut parts: Vec<String> = Vec::new();
        if !self.statuses.is_empty() {
            parts.push(
                self.statuses
                    .iter()
                    .map(|s| cut(s))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        }
        for (label, value) in [
            ("pipeline", &self.pipeline),
            ("version", &self.version),
            ("id", &self.prefix),
            ("error", &self.error),
            ("started by", &self.parent),
            ("time ≥", &self.min_duration),
            ("time ≤", &self.max_duration),
            ("memory ≥", &self.min_memory),
            ("memory ≤", &self.max_memory),
        ] {
            if let Some(v) = value {
                parts.push(format!("{label} {}", cut(v)));
            }
        }
        if self.created_after.is_some() || self.created_before.is_some() {
            parts.push("created in a range".into());
        }
        if self.updated_after.is_some() || self.updated_before.is_some() {
            parts.push("updated in a range".into());
        }
        match self.background {
            Some(true) => parts.push("background tasks".into()),
            Some(false) => parts.push("no background tasks".into()),
            None => {}
        }
        match self.sort.as_deref() {
            Some("slowest") => parts.push("slowest first".into()),
            Some("heaviest") => parts.push("most memory first".into()),
            Some("idle") => parts.push("longest idle first".into()),
            _ => {}
        }
        parts.join(" · ")
    }

    /// The filters a runs-list address (`/runs?status=failed&pipeline=etl`, as [`RunsFilter::href`] writes it and a
    /// run page's `?list=` carries it) names, read leniently for words only (the run page's title): blank values
    /// are absent, times are kept as given, an unknown order or page size is the default. The list itself is read
    /// and checked on the server.
    pub fn from_list(list: &str) -> RunsFilter {
        let query = list.split_once('?').map_or("", |(_, q)| q);
        let mut out = RunsFilter::default();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            let text = Some(value.to_string());
            let time = Some(TimeParam {
                rfc3339: value.to_string(),
                input: value.to_string(),
            });
            match name.as_ref() {
                "status" => out.statuses.extend(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_string),
                ),
                "pipeline" => out.pipeline = text,
                "version" => out.version = text,
                "prefix" => out.prefix = text,
                "error" => out.error = text,
                "parent" => out.parent = text,
                "min_duration" => out.min_duration = text,
                "max_duration" => out.max_duration = text,
                "min_memory" => out.min_memory = text,
                "max_memory" => out.max_memory = text,
                "created_after" => out.created_after = time,
                "created_before" => out.created_before = time,
                "updated_after" => out.updated_after = time,
                "updated_before" => out.updated_before = time,
                "background" => out.background = Some(value == "1" || value == "true"),
                "sort" if matches!(value, "slowest" | "heaviest" | "idle") => out.sort = text,
                _ => {}
            }
        }
        out
    }

    /// True when any filter (other than the page size) is set.
    pub fn is_filtered(&self) -> bool {
        !self.statuses.is_empty()
            || self.pipeline.is_some()
            || self.created_after.is_some()
            || self.created_before.is_some()
            || self.updated_after.is_some()
            || self.updated_before.is_some()
            || self.prefix.is_some()
            || self.error.is_some()
            || self.parent.is_some()
            || self.background.is_some()
            || self.version.is_some()
            || self.min_duration.is_some()
            || self.max_duration.is_some()
            || self.min_memory.is_some()
            || self.max_memory.is_some()
    }

    /// The same list in another order (first page).
    pub fn sorted(&self, sort: Option<&str>) -> RunsFilter {
        RunsFilter {
            sort: sort.filter(|s| *s != "newest").map(str::to_string),
            ..self.clone()
        }
    }

    /// The address of a run of this list: the run's page with the list's address in `list` (unless it is the
    /// whole list, newest first), so the page offers the previous and next runs of the same list and leads back
    /// to it.
    pub fn run_href(&self, run_id: &str) -> String {
        let base = crate::format::run_href(run_id);
        let list = self.href(None);
        if list == "/runs" {
            // The whole list, newest first: the run's plain address (its page then shows no list steps).
            return base;
        }
        let join = if base.contains('?') { '&' } else { '?' };
        format!("{base}{join}list={}", crate::format::url_encode(&list))
    }
}

impl Default for RunsFilter {
    fn default() -> Self {
        RunsFilter {
            statuses: Vec::new(),
            pipeline: None,
            created_after: None,
            created_before: None,
            updated_after: None,
            updated_before: None,
            prefix: None,
            error: None,
            parent: None,
            background: None,
            version: None,
            min_duration: None,
            max_duration: None,
            min_memory: None,
            max_memory: None,
            sort: None,
            limit: Self::DEFAULT_LIMIT,
        }
    }
}

/// One row of the runs list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRow {
    /// The run's id.
    pub run_id: String,
    /// The pipeline's id.
    pub pipeline_id: String,
    /// The pipeline's display name.
    pub pipeline_name: String,
    /// The stored status name (`null` for NULL).
    pub status: String,
    /// `step 3 of 5`, see [`step_text`].
    pub step: String,
    /// When the run was created; `None` when the stored value is not a timestamp.
    pub created: Option<Stamp>,
    /// When the run was last updated.
    pub updated: Option<Stamp>,
    /// Time spent executing, in milliseconds.
    pub execution_time_ms: Option<i64>,
    /// Memory used, in MB.
    #[serde(default)]
    pub memory_usage_mb: Option<f64>,
    /// The error message, if any: its first characters only when `error_cut` (the run's page has it whole).
    pub error_message: Option<String>,
    /// True when `error_message` is only the start of the stored message.
    pub error_cut: bool,
}

/// One page of the runs list with what the filter form needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunsListing {
    /// The filters as understood (blank parameters dropped, dates normalised).
    pub filter: RunsFilter,
    /// The runs of this page, newest first.
    pub runs: Vec<RunRow>,
    /// The cursor of the next (older) page, if there is one.
    pub next_cursor: Option<String>,
    /// The cursor of the previous (newer) page, if there is one.
    pub prev_cursor: Option<String>,
    /// True when this page was reached through a cursor (so "newest" can lead back to the first page).
    pub paged: bool,
    /// Every pipeline id in the database, for the pipeline menu.
    pub pipelines: Vec<String>,
    /// When the page was read, RFC 3339 in UTC; relative times count from here.
    pub read_at: String,
    /// How many runs the filters match: exact, or a lower bound ("more than") when not `total_exact`.
    #[serde(default)]
    pub total: u64,
    /// True when `total` is exact.
    #[serde(default)]
    pub total_exact: bool,
}

/// Where a run stands in the list the operator opened it from (`?list=` on its page).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListNeighbours {
    /// The list's address (its first page), for the breadcrumb.
    pub list_href: String,
    /// The list in words (`Runs · failed · slowest first`).
    pub list_label: String,
    /// The previous run of the list: its id and the address of its page (carrying the list).
    pub prev: Option<(String, String)>,
    /// The next run of the list.
    pub next: Option<(String, String)>,
    /// False when the run is not in that list (any more, or no time in a slowest-first list).
    pub listed: bool,
}

/// A large value of a run (a JSON column pretty-printed, or the error message), possibly cut.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonBlock {
    /// The pretty-printed JSON; only its beginning when `cut`.
    pub text: String,
    /// The length of the whole pretty-printed text, in bytes.
    pub total_bytes: usize,
    /// True when `text` is only the beginning.
    pub cut: bool,
    /// How many items a list holds (`None` for other values, and for values too large to be parsed): "5 steps".
    pub items: Option<usize>,
    /// The whole value is too large to be shown in a page; it opens as plain text instead
    /// (`crate::server::runs::raw_href`).
    pub too_large: bool,
}

/// Everything known about one run, ready to show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunDetail {
    /// The run's id.
    pub run_id: String,
    /// The pipeline's id.
    pub pipeline_id: String,
    /// The pipeline's display name.
    pub pipeline_name: String,
    /// The pipeline's version.
    pub pipeline_version: String,
    /// The stored status name (`null` for NULL).
    pub status: String,
    /// The stored step index (0-based).
    pub current_step_index: i64,
    /// The stored number of steps (0 when unknown).
    pub total_steps: i64,
    /// `step 3 of 5`, see [`step_text`].
    pub step: String,
    /// When the run was created.
    pub created: Option<Stamp>,
    /// When the run was last updated.
    pub updated: Option<Stamp>,
    /// The error that ended the run, if any (cut when long).
    pub error_message: Option<JsonBlock>,
    /// Time spent executing, in milliseconds.
    pub execution_time_ms: Option<i64>,
    /// Memory used, in MB.
    pub memory_usage_mb: Option<f64>,
    /// `pipeline_context`.
    pub context: JsonBlock,
    /// `last_step_output`; `None` when the column is NULL.
    pub last_output: Option<JsonBlock>,
    /// `step_history`.
    pub history: JsonBlock,
    /// The steps read from the start of `step_history` (see [`crate::steps::read_steps`]).
    pub steps: crate::steps::StepList,
    /// The background-task columns of flujo's PostgreSQL layout; `None` when every one is empty.
    pub background: Option<BackgroundDetail>,
    /// When the run was read, RFC 3339 in UTC.
    pub read_at: String,
}

/// What ties a run to the run that started it (flujo's background tasks), and its metadata: the five columns of
/// flujo's PostgreSQL layout, shown when any of them is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackgroundDetail {
    /// `is_background_task`.
    pub is_background_task: bool,
    /// The run that started this one.
    pub parent_run_id: Option<String>,
    /// The background task's id.
    pub task_id: Option<String>,
    /// The error the background task ended with (cut when long).
    pub error: Option<JsonBlock>,
    /// The run's metadata (JSON, cut when long).
    pub metadata: Option<JsonBlock>,
}

/// "step i of N" for people, from the stored 0-based index of the step being executed and the step count.
///
/// A finished run's index is usually N (past the last step): it reads "step N of N". An unknown count (0)
/// reads "step i".
pub fn step_text(index: i64, total: i64) -> String {
    let shown = step_number(index, total);
    if total > 0 {
        format!("step {shown} of {total}")
    } else {
        format!("step {shown}")
    }
}

/// The 1-based step number [`step_text`] shows (the CLI's `STEP` column too): the stored 0-based index plus one,
/// at least 1, at most `total` when the count is known.
pub fn step_number(index: i64, total: i64) -> i64 {
    let shown = index.saturating_add(1).max(1);
    if total > 0 {
        shown.min(total)
    } else {
        shown
    }
}

/// An instant as pages show it: exact for machines, in UTC and relative for people. Relative to the instant the
/// figures were read (not the browser's clock), so the server's HTML and the hydrated page agree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    /// RFC 3339 in UTC, for `<time datetime>`.
    pub rfc3339: String,
    /// `2026-11-27 10:35 UTC`.
    pub utc: String,
    /// `3 h 05 min ago`.
    pub relative: String,
}

/// One pipeline's execution-time percentiles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelinePercentiles {
    /// The pipeline id.
    pub pipeline_id: String,
    /// Its percentiles.
    pub percentiles: Percentiles,
}

/// A running or paused run without an update for longer than the stuck threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StuckRun {
    /// The run id.
    pub run_id: String,
    /// The pipeline id.
    pub pipeline_id: String,
    /// `running` or `paused`.
    pub status: String,
    /// The step it is at (0-based index) and how many there are.
    pub step: i64,
    /// How many steps the pipeline has.
    pub total_steps: i64,
    /// Its last update.
    pub updated: Option<Stamp>,
}

/// The Overview's stuck runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StuckFigures {
    /// The threshold, as in the URL (`1h`, `90m`, `2d`).
    pub threshold: String,
    /// The threshold for people (`1 h`).
    pub threshold_label: String,
    /// Runs last updated before this instant count as stuck.
    pub idle_since: Stamp,
    /// How many runs are stuck.
    pub count: i64,
    /// The longest idle of them, oldest update first.
    pub runs: Vec<StuckRun>,
}

/// Runs created in one hour or day, per status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityRow {
    /// The bucket's start, RFC 3339 in UTC.
    pub start: String,
    /// Short label: `14:00` for hours, `11-27` for days.
    pub label: String,
    /// Runs per status in [`Overview::chart_statuses`] order (zeros included).
    pub counts: Vec<i64>,
    /// All runs of the bucket.
    pub total: i64,
}

/// A chart drawn on the server: an SVG document to inline, and words saying what it shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chart {
    /// The `<svg>` element (with `role="img"` and an `aria-label`).
    pub svg: String,
    /// One sentence summarising the data (also the SVG's `aria-label`).
    pub summary: String,
}

/// The Overview's charts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverviewCharts {
    /// Runs per hour over the last 24 hours, stacked by status.
    pub hourly: Chart,
    /// Runs per day over the last 30 days, stacked by status.
    pub daily: Chart,
    /// Execution-time percentiles per pipeline.
    pub percentiles: Chart,
}

/// A pipeline and a count (failures of a group in that pipeline).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineCount {
    /// The pipeline id.
    pub pipeline_id: String,
    /// How many.
    pub count: i64,
    /// The runs list of these failures: the group's filter (failed, its window, its message fragment) and the
    /// pipeline.
    pub href: String,
}

/// A failed run shown as a sample of its group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureSample {
    /// The run id.
    pub run_id: String,
    /// The pipeline id.
    pub pipeline_id: String,
    /// Its error message (first line, cut at 300 characters).
    pub error: String,
    /// When it failed (its last update).
    pub updated: Option<Stamp>,
}

/// Failures that share an error signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureGroupView {
    /// Stable key of the signature, for `?group=`.
    pub key: String,
    /// The message with its varying parts replaced by `<n>`, `<id>`, `<v>`, `<dur>`.
    pub signature: String,
    /// One real message of the group.
    pub example: String,
    /// Failed runs in the group.
    pub count: i64,
    /// Failures per pipeline, most first.
    pub pipelines: Vec<PipelineCount>,
    /// The earliest failure of the group in the window.
    pub first_seen: Option<Stamp>,
    /// The latest.
    pub last_seen: Option<Stamp>,
    /// Some of the group's runs, newest first.
    pub samples: Vec<FailureSample>,
    /// The runs list of this group: failed runs of the window whose error contains the signature's longest
    /// constant fragment (see [`crate::format::signature_fragment`]); `None` when the signature has no usable
    /// fragment (e.g. runs without a message).
    pub runs_href: Option<String>,
}

/// One pipeline's failure rate in the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureRateRow {
    /// The pipeline id (empty for runs without one).
    pub pipeline_id: String,
    /// Runs last updated in the window.
    pub total: i64,
    /// Of which finished (completed, failed or cancelled).
    pub finished: i64,
    /// Of which failed.
    pub failed: i64,
    /// failed / finished, 0 to 1 (0 when none finished).
    pub rate: f64,
    /// The runs list of the pipeline's failures in the window.
    pub failed_href: String,
    /// The Failures page of this pipeline (same window), with its failures per version.
    pub failures_href: String,
    /// The runs list of all its runs in the window.
    pub runs_href: String,
}

/// One version of the chosen pipeline on the Failures page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionRateRow {
    /// The `pipeline_version` (empty for runs without one).
    pub version: String,
    /// Runs last updated in the window.
    pub total: i64,
    /// Of which finished.
    pub finished: i64,
    /// Of which failed.
    pub failed: i64,
    /// failed / finished.
    pub rate: f64,
    /// Its newest run's last update.
    pub last_seen: Option<Stamp>,
    /// The Failures page of this version (same window and pipeline).
    pub failures_href: String,
    /// The runs list of its failures in the window.
    pub failed_href: String,
}

/// The Failures page: failures of a window grouped by signature, and failure rates per pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failures {
    /// The window, as in the URL (`window=24h` or `since=…`).
    pub window: crate::spans::Window,
    /// The window's start.
    pub since: Stamp,
    /// Failed runs in the window.
    pub total_failed: i64,
    /// Groups, largest first (empty when a single group was asked for).
    pub groups: Vec<FailureGroupView>,
    /// The group asked for with `?group=`, with up to 50 samples.
    pub group: Option<FailureGroupView>,
    /// True when the window held more failures than were read; the groups then cover the newest ones.
    pub truncated: bool,
    /// How many failures are read at most.
    pub scan_limit: i64,
    /// Failure rate per pipeline, highest first (every pipeline: only without a pipeline filter).
    pub rates: Vec<FailureRateRow>,
    /// `pipeline`: only this pipeline's failures.
    pub pipeline: Option<String>,
    /// `version`: only this `pipeline_version`'s failures.
    pub version: Option<String>,
    /// With a pipeline: each of its versions in the window, the newest first.
    pub versions: Vec<VersionRateRow>,
    /// When the figures were read, RFC 3339 in UTC.
    pub read_at: String,
}
