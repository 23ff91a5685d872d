//! "Which pipeline fails most, and is it getting worse?": per-pipeline figures over a window and daily trends,
//! read from the counters of schema versions 4 and 5 (never from the rows, but for one index step per pipeline for
//! its newest run).
//!
//! ## The window
//! A window counts the runs **last updated** at or after its start, the start rounded down to its whole hour
//! (UTC): the counters are kept per hour and per day of the last update, and rounding keeps every figure of a row
//! (counts, percentiles, memory) over the same runs. The rounded start is [`PipelineReport::since`]; the runs list
//! behind a figure is `/runs?pipeline=P&updated_after=<since>`, exactly the runs counted. A run that finished in
//! the window is counted there whenever it started; a run still running is counted by its last update.
//!
//! ## The figures
//! - runs per status; the **failure rate of finished runs**: failed / (completed + failed + cancelled); running
//!   and paused runs are not in the denominator (no rate when nothing finished);
//! - execution time: mean (exact, from the sums the counters keep), p50/p95/p99 from the histograms;
//! - memory: mean (exact to the thousandth of a MB, values past [`MEM_UNITS_MAX`] counted as that) and **max from
//!   the histogram**: the middle of the highest bucket holding a run (a maximum is not kept exactly by counters
//!   that must also subtract deleted runs);
//! - the newest run of the pipeline (by creation, one step of `idx_flowstate_pipeline_created`), whatever the
//!   window.
//!
//! ## Precision ([`PipelineReport::relative_error`], [`Trend::relative_error`])
//! The hourly histograms have 16 buckets per power of two: a percentile or maximum read from them alone is within
//! [`PERCENTILE_RELATIVE_ERROR`] (1/32, 3.1 %) of the exact nearest-rank value, as the Overview's. The **daily**
//! histograms (schema version 5) have 4 ([`crate::counters::COARSE_SUB_BUCKETS`]): a window that reads whole days
//! (one reaching back past a midnight, or holding runs updated on a later day) reads the hours' buckets as the
//! coarse buckets holding them, and its percentiles and maximum are within [`COARSE_RELATIVE_ERROR`] (1/8, 12.5 %);
//! so is every p95 of a trend. Counts, failure rates and means are exact either way. Why coarse: a 30-day window
//! of 7 pipelines read 30 × 7 × up to ~160 buckets per histogram; the coarse ones hold ~40, and the trend of every
//! pipeline reads counters summed over the pipelines (schema version 5), one row per day and bucket.
//!
//! ## Trends
//! Per UTC day over the last `days` days (today included, so today is partial), for one pipeline or all: runs per
//! status, the failure rate of finished runs and the p95 execution time; the same over the `days` days before as
//! the previous period. A **regression** is a failure rate or a p95 of this period at least 1.5 times the previous
//! period's (a rate from 0 to anything above 0 counts too); without finished runs (or timed runs) in either
//! period there is nothing to compare.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, DurationRound, TimeZone, Utc};
use serde::{Deserialize, Serialize};

pub use crate::counters::MEM_UNITS_MAX;
use crate::counters::{
    bucket_value, coarse_of, coarse_value, decode_key, COARSE_RELATIVE_ERROR, PERCENTILE_RELATIVE_ERROR,
};
use crate::insights::from_buckets;
use crate::Percentiles;

/// The periods trends are offered for, in days.
pub const TREND_DAYS: [u32; 3] = [7, 30, 90];

/// A regression: this period's figure at least this many times the previous period's.
pub const REGRESSION_FACTOR: f64 = 1.5;

/// The statuses whose runs are finished (the failure rate's denominator).
pub const FINISHED: [&str; 3] = ["completed", "failed", "cancelled"];

/// One pipeline's figures over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineFigures {
    /// The pipeline id.
    pub pipeline_id: String,
    /// Runs last updated in the window.
    pub runs: i64,
    /// Of which, per stored status (`null` for NULL).
    pub statuses: BTreeMap<String, i64>,
    /// Completed, failed or cancelled.
    pub finished: i64,
    /// Failed.
    pub failed: i64,
    /// failed / finished; `None` when none finished.
    pub failure_rate: Option<f64>,
    /// Mean execution time of the runs that have one.
    pub avg_ms: Option<f64>,
    /// Execution-time percentiles (`count`: runs with a time; `max` is `None`).
    pub time: Percentiles,
    /// Runs with a memory figure.
    pub memory_runs: i64,
    /// Their mean memory, MB.
    pub avg_memory_mb: Option<f64>,
    /// Their largest memory, MB, from the histogram (within [`PipelineReport::relative_error`]).
    pub max_memory_mb: Option<f64>,
    /// The pipeline's newest run (by creation), whatever the window: run id and creation time.
    pub last_run: Option<(String, Option<DateTime<Utc>>)>,
}

impl PipelineFigures {
    /// Runs with this stored status.
    pub fn status(&self, status: &str) -> i64 {
        self.statuses.get(status).copied().unwrap_or(0)
    }
}

/// Every pipeline with runs in a window, most failures first (then most runs, then by id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineReport {
    /// The window's start: the asked start rounded down to its hour (UTC).
    pub since: DateTime<Utc>,
    /// The pipelines.
    pub pipelines: Vec<PipelineFigures>,
    /// The largest relative error of a percentile or a maximum: 1/32 when only hours were read, 1/8 when whole
    /// days were too (their histograms are coarse).
    pub relative_error: f64,
}

/// One day of a trend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendDay {
    /// The day's start (UTC midnight).
    pub day: DateTime<Utc>,
    /// Runs last updated that day, per stored status.
    pub statuses: BTreeMap<String, i64>,
    /// All of them.
    pub runs: i64,
    /// Completed, failed or cancelled.
    pub finished: i64,
    /// Failed.
    pub failed: i64,
    /// failed / finished.
    pub failure_rate: Option<f64>,
    /// p95 execution time (daily histogram, within [`Trend::relative_error`], 1/8).
    pub p95_ms: Option<f64>,
}

/// A period's totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeriodFigures {
    /// First day's start.
    pub from: DateTime<Utc>,
    /// The end (exclusive; the next day's start).
    pub to: DateTime<Utc>,
    /// Runs.
    pub runs: i64,
    /// Finished runs.
    pub finished: i64,
    /// Failed runs.
    pub failed: i64,
    /// failed / finished.
    pub failure_rate: Option<f64>,
    /// p95 execution time over the period.
    pub p95_ms: Option<f64>,
}

/// Daily figures of a pipeline (or all) over a period, against the period before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    /// The pipeline, or `None` for all.
    pub pipeline_id: Option<String>,
    /// The period's length in days.
    pub days: u32,
    /// Each day of this period, oldest first (days without runs included).
    pub daily: Vec<TrendDay>,
    /// This period.
    pub current: PeriodFigures,
    /// The period of the same length before it.
    pub previous: PeriodFigures,
    /// The failure rate rose by [`REGRESSION_FACTOR`] or more.
    pub failure_rate_regression: bool,
    /// The p95 rose by [`REGRESSION_FACTOR`] or more.
    pub p95_regression: bool,
    /// The largest relative error of a p95 ([`COARSE_RELATIVE_ERROR`]: daily histograms are coarse).
    pub relative_error: f64,
}

/// Counter rows of a window as a backend reads them: runs per (pipeline key, status key), and histogram rows
/// `(pipeline key, kind (0 time, 1 memory), bucket, runs, sum of values)`.
#[derive(Debug, Default)]
pub(crate) struct WindowRows {
    pub statuses: Vec<(String, String, i64)>,
    pub hist: Vec<(String, i64, i64, i64, i128)>,
    /// Whole days were read (their histograms are coarse: every bucket is then read as its coarse bucket).
    pub coarse: bool,
}

/// Counter rows of a trend: runs per (day, status key), and time histogram rows `(day, coarse bucket, runs)`.
#[derive(Debug, Default)]
pub(crate) struct TrendRows {
    pub statuses: Vec<(i64, String, i64)>,
    pub hist: Vec<(i64, i64, i64)>,
}

/// The hours and days a window starting at `since` reads: `(first hour, first whole day)`. Hours in
/// `[first hour, first whole day * 24)` come from the hourly counters, days from `first whole day` on from the
/// daily ones.
pub(crate) fn window_span(since: DateTime<Utc>) -> (i64, i64) {
    let h0 = crate::counters::hour_of(crate::time::instant_micros(&since));
    let d = h0.div_euclid(24) + i64::from(h0.rem_euclid(24) != 0);
    (h0, d)
}

/// The start of hour `h`.
pub(crate) fn hour_start(h: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(h.saturating_mul(3600), 0)
        .single()
        .unwrap_or_default()
}

/// The status name a status key stands for (`null` for NULL).
fn status_name(key: &str) -> String {
    crate::Status::from_stored(decode_key(key)).as_str().to_string()
}

fn rate(failed: i64, finished: i64) -> Option<f64> {
    (finished > 0).then(|| failed as f64 / finished as f64)
}

fn finished_and_failed(statuses: &BTreeMap<String, i64>) -> (i64, i64) {
    let finished = FINISHED
        .iter()
        .map(|s| statuses.get(*s).copied().unwrap_or(0))
        .sum();
    (finished, statuses.get("failed").copied().unwrap_or(0))
}

/// The figures of every pipeline from a window's counter rows (`last_runs`: the newest run of each).
pub(crate) fn report(
    since: DateTime<Utc>,
    rows: WindowRows,
    mut last_runs: BTreeMap<String, (String, Option<DateTime<Utc>>)>,
) -> PipelineReport {
    #[derive(Default)]
    struct Acc {
        statuses: BTreeMap<String, i64>,
        time: Vec<(i64, i64)>,
        time_sum: i128,
        mem: Vec<(i64, i64)>,
        mem_sum: i128,
    }
    let mut per: BTreeMap<String, Acc> = BTreeMap::new();
    for (pk, sk, n) in rows.statuses {
        if n != 0 {
            let acc = per.entry(decode_key(&pk).unwrap_or_default()).or_default();
            *acc.statuses.entry(status_name(&sk)).or_insert(0) += n;
        }
    }
    // Whole days' histograms are coarse: the hours' fine buckets are read as the coarse buckets holding them.
    let (value, relative_error): (fn(i64) -> f64, f64) = if rows.coarse {
        (coarse_value, COARSE_RELATIVE_ERROR)
    } else {
        (bucket_value, PERCENTILE_RELATIVE_ERROR)
    };
    for (pk, kind, bucket, n, sum) in rows.hist {
        if n == 0 {
            continue;
        }
        let bucket = if rows.coarse { coarse_of(bucket) } else { bucket };
        let acc = per.entry(decode_key(&pk).unwrap_or_default()).or_default();
        if kind == 0 {
            acc.time.push((bucket, n));
            acc.time_sum += sum;
        } else {
            acc.mem.push((bucket, n));
            acc.mem_sum += sum;
        }
    }
    let mut pipelines: Vec<PipelineFigures> = per
        .into_iter()
        .filter_map(|(pipeline_id, mut acc)| {
            acc.statuses.retain(|_, n| *n != 0);
            let runs: i64 = acc.statuses.values().sum();
            if runs <= 0 {
                return None;
            }
            let (finished, failed) = finished_and_failed(&acc.statuses);
            acc.time.sort_unstable();
            acc.mem.sort_unstable();
            let time = from_buckets(&acc.time, None, value, relative_error);
            let memory_runs: i64 = acc.mem.iter().map(|(_, n)| n).sum();
            let max_memory_mb = acc
                .mem
                .iter()
                .rev()
                .find(|(_, n)| *n > 0)
                .map(|(b, _)| value(*b) / 1000.0);
            Some(PipelineFigures {
                last_run: last_runs.remove(&pipeline_id),
                avg_ms: (time.count > 0).then(|| acc.time_sum as f64 / time.count as f64),
                avg_memory_mb: (memory_runs > 0).then(|| acc.mem_sum as f64 / memory_runs as f64 / 1000.0),
                pipeline_id,
                runs,
                statuses: acc.statuses,
                finished,
                failed,
                failure_rate: rate(failed, finished),
                time,
                memory_runs,
                max_memory_mb,
            })
        })
        .collect();
    pipelines.sort_by(|a, b| {
        b.failed
            .cmp(&a.failed)
            .then(b.runs.cmp(&a.runs))
            .then_with(|| a.pipeline_id.cmp(&b.pipeline_id))
    });
    PipelineReport {
        since,
        pipelines,
        relative_error,
    }
}

/// The first day of the previous period of a trend of `days` days ending today (`now`'s day): `(first day of the
/// previous period, first day of this one, today)`, as day numbers.
pub(crate) fn trend_days(now: DateTime<Utc>, days: u32) -> (i64, i64, i64) {
    let today = crate::time::instant_micros(&now).div_euclid(24 * crate::counters::HOUR_US);
    let first = today - i64::from(days) + 1;
    (first - i64::from(days), first, today)
}

fn day_start(d: i64) -> DateTime<Utc> {
    hour_start(d.saturating_mul(24))
}

/// A trend from its counter rows.
pub(crate) fn trend(pipeline_id: Option<String>, now: DateTime<Utc>, days: u32, rows: TrendRows) -> Trend {
    let (prev_first, first, today) = trend_days(now, days);
    let mut statuses: BTreeMap<i64, BTreeMap<String, i64>> = BTreeMap::new();
    for (d, sk, n) in rows.statuses {
        if n != 0 && d >= prev_first && d <= today {
            *statuses
                .entry(d)
                .or_default()
                .entry(status_name(&sk))
                .or_insert(0) += n;
        }
    }
    let mut hist: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
    for (d, b, n) in rows.hist {
        if n != 0 && d >= prev_first && d <= today {
            hist.entry(d).or_default().push((b, n));
        }
    }
    let p95 = |buckets: &mut Vec<(i64, i64)>| {
        buckets.sort_unstable();
        // Merge equal buckets (rows of several pipelines).
        let mut merged: Vec<(i64, i64)> = Vec::with_capacity(buckets.len());
        for (b, n) in buckets.iter() {
            match merged.last_mut() {
                Some((lb, ln)) if lb == b => *ln += n,
                _ => merged.push((*b, *n)),
            }
        }
        from_buckets(&merged, None, coarse_value, COARSE_RELATIVE_ERROR).p95
    };
    let period = |from: i64, to: i64| {
        let mut st: BTreeMap<String, i64> = BTreeMap::new();
        let mut buckets: Vec<(i64, i64)> = Vec::new();
        for d in from..to {
            for (s, n) in statuses.get(&d).into_iter().flatten() {
                *st.entry(s.clone()).or_insert(0) += n;
            }
            buckets.extend(hist.get(&d).into_iter().flatten());
        }
        let (finished, failed) = finished_and_failed(&st);
        PeriodFigures {
            from: day_start(from),
            to: day_start(to),
            runs: st.values().sum(),
            finished,
            failed,
            failure_rate: rate(failed, finished),
            p95_ms: p95(&mut buckets),
        }
    };
    let daily = (first..=today)
        .map(|d| {
            let st = statuses.get(&d).cloned().unwrap_or_default();
            let (finished, failed) = finished_and_failed(&st);
            let mut buckets = hist.get(&d).cloned().unwrap_or_default();
            TrendDay {
                day: day_start(d),
                runs: st.values().sum(),
                statuses: st,
                finished,
                failed,
                failure_rate: rate(failed, finished),
                p95_ms: p95(&mut buckets),
            }
        })
        .collect();
    let current = period(first, today + 1);
    let previous = period(prev_first, first);
    let regression = |now: Option<f64>, before: Option<f64>| match (now, before) {
        (Some(n), Some(b)) => n > b && n >= b * REGRESSION_FACTOR,
        _ => false,
    };
    Trend {
        pipeline_id,
        days,
        daily,
        failure_rate_regression: regression(current.failure_rate, previous.failure_rate),
        p95_regression: regression(current.p95_ms, previous.p95_ms),
        relative_error: COARSE_RELATIVE_ERROR,
        current,
        previous,
    }
}

/// The start of the hour `at` falls in.
pub fn hour_floor(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(Duration::hours(1)).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_spans_split_hours_and_days() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let (h, d) = window_span(at("1970-01-02T00:30:00Z"));
        assert_eq!((h, d), (24, 1));
        let (h, d) = window_span(at("1970-01-02T05:59:59Z"));
        assert_eq!((h, d), (29, 2));
        let (h, d) = window_span(at("1969-12-31T23:00:00Z"));
        assert_eq!((h, d), (-1, 0));
        assert_eq!(hour_floor(at("2026-01-01T10:59:00Z")), at("2026-01-01T10:00:00Z"));
        let (p, f, t) = trend_days(at("1970-01-10T12:00:00Z"), 7);
        assert_eq!((p, f, t), (-4, 3, 9));
    }

    #[test]
    fn regressions_need_a_rise_of_half() {
        let rows = TrendRows {
            statuses: vec![
                (2, "=failed".into(), 1),
                (2, "=completed".into(), 9),
                (2, "=running".into(), 100),
                (9, "=failed".into(), 3),
                (9, "=completed".into(), 7),
            ],
            hist: vec![(2, 100, 10), (9, 100, 10)],
        };
        let now = Utc.timestamp_opt(9 * 86400 + 60, 0).unwrap();
        let t = trend(None, now, 7, rows);
        assert_eq!(t.daily.len(), 7);
        assert_eq!(t.previous.failure_rate, Some(0.1));
        assert_eq!(t.previous.runs, 110);
        assert_eq!(t.current.failure_rate, Some(0.3));
        assert!(t.failure_rate_regression);
        assert!(!t.p95_regression);
    }
}
