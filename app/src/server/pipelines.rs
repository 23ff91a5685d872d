//! The Pipelines page's figures: per pipeline over a window (runs last updated since its start, rounded down to
//! the hour), and the daily trend of one pipeline or all against the period before
//! (`flowstate_store::pipelines`).

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;
use crate::model::{Chart, Stamp};
use crate::spans::Window;

/// The trend periods the page offers, in days.
pub const TREND_DAYS: [u32; 3] = [7, 30, 90];

/// The URL parameter of the trend's period.
pub const DAYS_PARAM: &str = "days";
/// The URL parameter of the trend's pipeline (absent: all).
pub const PIPELINE_PARAM: &str = "pipeline";

/// One pipeline's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineRow {
    /// The pipeline id.
    pub pipeline_id: String,
    /// Runs last updated in the window.
    pub runs: i64,
    /// Completed.
    pub completed: i64,
    /// Failed.
    pub failed: i64,
    /// Cancelled.
    pub cancelled: i64,
    /// Running or paused.
    pub live: i64,
    /// Completed, failed or cancelled.
    pub finished: i64,
    /// Failed of finished.
    pub failure_rate: Option<f64>,
    /// Runs with an execution time.
    pub timed: i64,
    /// Mean execution time.
    pub avg_ms: Option<f64>,
    /// p50.
    pub p50_ms: Option<f64>,
    /// p95.
    pub p95_ms: Option<f64>,
    /// p99.
    pub p99_ms: Option<f64>,
    /// Mean memory, MB.
    pub avg_mb: Option<f64>,
    /// Largest memory, MB (histogram).
    pub max_mb: Option<f64>,
    /// The newest run: id and creation time.
    pub last_run: Option<(String, Option<Stamp>)>,
}

/// One day of the trend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendRow {
    /// `2026-11-27`.
    pub day: String,
    /// Runs per status, in the order of [`TrendView::statuses`].
    pub counts: Vec<i64>,
    /// All runs.
    pub runs: i64,
    /// Finished runs.
    pub finished: i64,
    /// Failed runs.
    pub failed: i64,
    /// Failed of finished.
    pub failure_rate: Option<f64>,
    /// p95 execution time.
    pub p95_ms: Option<f64>,
}

/// A period's totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeriodView {
    /// First day, `2026-11-21`.
    pub from: String,
    /// Last day, `2026-11-27`.
    pub to: String,
    /// Runs.
    pub runs: i64,
    /// Finished.
    pub finished: i64,
    /// Failed.
    pub failed: i64,
    /// Failed of finished.
    pub failure_rate: Option<f64>,
    /// p95 execution time.
    pub p95_ms: Option<f64>,
}

/// The trend section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendView {
    /// The pipeline, or `None` for all.
    pub pipeline: Option<String>,
    /// Days in the period.
    pub days: u32,
    /// The statuses counted per day, in stacking order.
    pub statuses: Vec<String>,
    /// Each day, oldest first.
    pub rows: Vec<TrendRow>,
    /// This period.
    pub current: PeriodView,
    /// The one before.
    pub previous: PeriodView,
    /// The failure rate rose by half or more.
    pub rate_regression: bool,
    /// The p95 rose by half or more.
    pub p95_regression: bool,
    /// The largest relative error of a p95 (daily histograms: 1/8).
    pub relative_error: f64,
    /// Runs per day stacked by status.
    pub runs_chart: Chart,
    /// Failure rate and p95 per day.
    pub rate_chart: Chart,
    /// p95 per day.
    pub p95_chart: Chart,
}

/// The page's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pipelines {
    /// The window asked for.
    pub window: Window,
    /// Its start, rounded down to the hour.
    pub since: Stamp,
    /// The pipelines, most failures first.
    pub rows: Vec<PipelineRow>,
    /// Largest relative error of percentiles and maxima.
    pub relative_error: f64,
    /// The trend.
    pub trend: TrendView,
    /// When read, RFC 3339.
    pub read_at: String,
}

/// The Pipelines page: `window`/`since` pick the window (24 h by default), `days` (7, 30 or 90; 7 by default) and
/// `pipeline` (absent: all) the trend.
///
/// # Errors
/// [`AppError::BadRequest`] naming `window`, `since`, `days` or `pipeline`; the store's errors.
#[server(endpoint = "pipelines")]
pub async fn get_pipelines(
    window: Option<String>,
    since: Option<String>,
    days: Option<String>,
    pipeline: Option<String>,
) -> Result<Pipelines, AppError> {
    let window = Window::parse(window.as_deref(), since.as_deref())
        .map_err(|e| AppError::bad_request(e.param, e.reason))?;
    let days = parse_days(days.as_deref()).map_err(|reason| AppError::bad_request(DAYS_PARAM, reason))?;
    let pipeline =
        parse_pipeline(pipeline).map_err(|reason| AppError::bad_request(PIPELINE_PARAM, reason))?;
    let store = super::store()?;
    ssr::read(&store, window, days, pipeline).await
}

/// `days`: 7, 30 or 90; absent or blank is 7.
pub fn parse_days(value: Option<&str>) -> Result<u32, String> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(TREND_DAYS[0]);
    };
    v.trim_end_matches('d')
        .parse::<u32>()
        .ok()
        .filter(|d| TREND_DAYS.contains(d))
        .ok_or_else(|| format!("“{}” is not a trend period; use 7, 30 or 90", truncate(v)))
}

/// `pipeline`: a pipeline id (at most [`flowstate_model::limits::MAX_NAME_BYTES`] bytes); absent or empty is all.
pub fn parse_pipeline(value: Option<String>) -> Result<Option<String>, String> {
    match value.filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) if v.len() > flowstate_model::limits::MAX_NAME_BYTES => Err(format!(
            "a pipeline id is at most {} bytes",
            flowstate_model::limits::MAX_NAME_BYTES
        )),
        Some(v) => Ok(Some(v)),
    }
}

fn truncate(v: &str) -> String {
    crate::format::truncate_chars(v, 40)
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use chrono::{DateTime, SecondsFormat, Utc};
    use flowstate_model::status::{CANCELLED, COMPLETED, FAILED, OTHER, PAUSED, RUNNING};
    use flowstate_store::pipelines::{PeriodFigures, PipelineFigures, Trend};
    use flowstate_store::Store;

    use super::*;
    use crate::format::stamp;

    /// Reads the page's figures; see [`super::get_pipelines`].
    pub async fn read(
        store: &Store,
        window: Window,
        days: u32,
        pipeline: Option<String>,
    ) -> Result<Pipelines, AppError> {
        let now = store.now();
        let report = store.pipeline_report(window.since(now).min(now)).await?;
        let trend = store.pipeline_trend(days, pipeline.as_deref()).await?;
        Ok(Pipelines {
            window,
            since: stamp(report.since, now),
            relative_error: report.relative_error,
            rows: report.pipelines.into_iter().map(|p| row(p, now)).collect(),
            trend: trend_view(trend),
            read_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
        })
    }

    fn row(p: PipelineFigures, now: DateTime<Utc>) -> PipelineRow {
        PipelineRow {
            runs: p.runs,
            completed: p.status(COMPLETED),
            failed: p.failed,
            cancelled: p.status(CANCELLED),
            live: p.status(RUNNING) + p.status(PAUSED),
            finished: p.finished,
            failure_rate: p.failure_rate,
            timed: p.time.count,
            avg_ms: p.avg_ms,
            p50_ms: p.time.p50,
            p95_ms: p.time.p95,
            p99_ms: p.time.p99,
            avg_mb: p.avg_memory_mb,
            max_mb: p.max_memory_mb,
            last_run: p.last_run.map(|(id, at)| (id, at.map(|t| stamp(t, now)))),
            pipeline_id: p.pipeline_id,
        }
    }

    fn day(at: DateTime<Utc>) -> String {
        at.format("%Y-%m-%d").to_string()
    }

    fn period(p: PeriodFigures) -> PeriodView {
        PeriodView {
            from: day(p.from),
            to: day(p.to - chrono::Duration::days(1)),
            runs: p.runs,
            finished: p.finished,
            failed: p.failed,
            failure_rate: p.failure_rate,
            p95_ms: p.p95_ms,
        }
    }

    fn trend_view(t: Trend) -> TrendView {
        let statuses: Vec<String> = [RUNNING, PAUSED, COMPLETED, FAILED, CANCELLED, OTHER]
            .map(String::from)
            .to_vec();
        let rows: Vec<TrendRow> = t
            .daily
            .iter()
            .map(|d| {
                let known: i64 = statuses[..5]
                    .iter()
                    .map(|s| d.statuses.get(s).copied().unwrap_or(0))
                    .sum();
                let mut counts: Vec<i64> = statuses[..5]
                    .iter()
                    .map(|s| d.statuses.get(s).copied().unwrap_or(0))
                    .collect();
                counts.push(d.runs - known);
                TrendRow {
                    day: day(d.day),
                    counts,
                    runs: d.runs,
                    finished: d.finished,
                    failed: d.failed,
                    failure_rate: d.failure_rate,
                    p95_ms: d.p95_ms,
                }
            })
            .collect();
        let subject = match &t.pipeline_id {
            Some(p) => format!("pipeline {p}"),
            None => "all pipelines".to_string(),
        };
        let current = period(t.current);
        let previous = period(t.previous);
        let charts = crate::charts::trend_charts(&rows, &statuses, &subject, &previous);
        TrendView {
            pipeline: t.pipeline_id,
            days: t.days,
            statuses,
            rows,
            current,
            previous,
            rate_regression: t.failure_rate_regression,
            p95_regression: t.p95_regression,
            relative_error: t.relative_error,
            runs_chart: charts.0,
            rate_chart: charts.1,
            p95_chart: charts.2,
        }
    }
}
