//! The Overview page's figures.

use leptos::prelude::*;

use crate::error::AppError;
use crate::model::Overview;

/// Everything the Overview shows, read from the store with the instant it was read: counts per status, total,
/// runs created and failed in the last 24 h, mean and percentile execution times, stuck runs (running or paused
/// with no update for longer than `stuck`, e.g. `2h`; 1 h when absent), activity per hour and per day, and the
/// charts drawn from them.
///
/// # Errors
/// [`AppError::BadRequest`] naming `stuck` when it is not a duration like `30m`, `2h`, `1d`; the store's errors.
#[server(endpoint = "overview")]
pub async fn get_overview(stuck: Option<String>) -> Result<Overview, AppError> {
    use crate::spans::StuckThreshold;
    let threshold = StuckThreshold::parse(stuck.as_deref())
        .map_err(|reason| AppError::bad_request(StuckThreshold::PARAM, reason))?;
    let store = super::store()?;
    ssr::read_overview(&store, threshold).await
}

#[cfg(feature = "ssr")]
pub(crate) mod ssr {
    use chrono::{DateTime, Duration, SecondsFormat, Utc};
    use flowstate_model::status::OTHER;
    use flowstate_store::{ActivityBucket, Bucket, Percentiles, Status, Store, StuckRuns, WorkflowStats};

    use crate::charts::{activity_chart, percentile_chart, ActivitySpan};
    use crate::error::AppError;
    use crate::format::stamp;
    use crate::model::{
        ActivityRow, Overview, OverviewCharts, PipelinePercentiles, StatusCount, StuckFigures, StuckRun,
    };
    use crate::spans::StuckThreshold;

    /// How many stuck runs the Overview lists (the longest idle).
    pub const STUCK_LISTED: u32 = 10;

    /// Reads every figure of the Overview. The reads are separate statements (not one snapshot): the figures
    /// can disagree by the runs written between them, which the "read at" instant makes plain.
    pub async fn read_overview(store: &Store, threshold: StuckThreshold) -> Result<Overview, AppError> {
        let read_at = store.now();
        let stats = store.get_workflow_stats().await?;
        let failed_24h = store.count_failed_since(read_at - Duration::hours(24)).await?;
        let overall = store.execution_percentiles(None).await?;
        let by_pipeline = store.execution_percentiles_by_pipeline().await?;
        let stuck = store
            .stuck_runs(Duration::seconds(threshold.seconds), STUCK_LISTED)
            .await?;
        let hourly = store.activity(Bucket::Hour, 24).await?;
        let daily = store.activity(Bucket::Day, 30).await?;

        let mut overview = overview_from_stats(stats, read_at);
        overview.failed_24h = failed_24h;
        overview.percentiles = overall;
        overview.stuck = stuck_figures(stuck, threshold, read_at);
        overview.chart_statuses = chart_statuses(hourly.iter().chain(daily.iter()));
        overview.hourly = activity_rows(&hourly, &overview.chart_statuses, "%H:00");
        overview.daily = activity_rows(&daily, &overview.chart_statuses, "%m-%d");
        overview.by_pipeline = by_pipeline
            .into_iter()
            .map(|(pipeline_id, percentiles)| PipelinePercentiles {
                pipeline_id,
                percentiles,
            })
            .collect();
        overview.charts = OverviewCharts {
            hourly: activity_chart(&overview.hourly, &overview.chart_statuses, ActivitySpan::Hours),
            daily: activity_chart(&overview.daily, &overview.chart_statuses, ActivitySpan::Days),
            percentiles: percentile_chart(&overview.by_pipeline),
        };
        Ok(overview)
    }

    /// The figures of [`WorkflowStats`]; the five known statuses first, in the store's order and with zero
    /// counts, then any other stored value. The other figures start empty.
    pub fn overview_from_stats(stats: WorkflowStats, read_at: DateTime<Utc>) -> Overview {
        let mut counts = stats.status_counts;
        let mut statuses: Vec<StatusCount> = Status::KNOWN
            .iter()
            .map(|s| StatusCount {
                status: s.as_str().to_string(),
                count: counts.remove(s.as_str()).unwrap_or(0),
            })
            .collect();
        statuses.extend(
            counts
                .into_iter()
                .map(|(status, count)| StatusCount { status, count }),
        );
        let has_times = stats.average_execution_time_ms > 0.0;
        let empty_stamp = stamp(read_at, read_at);
        Overview {
            total: stats.total_workflows,
            recent_24h: stats.recent_workflows_24h,
            statuses,
            average_execution_ms: has_times.then_some(stats.average_execution_time_ms),
            failed_24h: 0,
            percentiles: Percentiles::default(),
            stuck: StuckFigures {
                threshold: StuckThreshold::default().as_param(),
                threshold_label: StuckThreshold::default().label(),
                idle_since: empty_stamp,
                count: 0,
                runs: Vec::new(),
            },
            chart_statuses: Vec::new(),
            hourly: Vec::new(),
            daily: Vec::new(),
            by_pipeline: Vec::new(),
            charts: OverviewCharts::default(),
            read_at: read_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        }
    }

    fn stuck_figures(stuck: StuckRuns, threshold: StuckThreshold, now: DateTime<Utc>) -> StuckFigures {
        StuckFigures {
            threshold: threshold.as_param(),
            threshold_label: threshold.label(),
            idle_since: stamp(stuck.idle_since, now),
            count: stuck.count,
            runs: stuck
                .runs
                .into_iter()
                .map(|r| StuckRun {
                    run_id: r.run_id,
                    pipeline_id: r.pipeline_id,
                    status: r.status.as_str().to_string(),
                    step: r.current_step_index,
                    total_steps: r.total_steps,
                    updated: r.updated_at.map(|u| stamp(u, now)),
                })
                .collect(),
        }
    }

    /// The statuses the charts stack, bottom first: the five known ones, then [`OTHER`] when some bucket holds
    /// another stored value.
    pub fn chart_statuses<'a>(buckets: impl Iterator<Item = &'a ActivityBucket>) -> Vec<String> {
        let mut out: Vec<String> = Status::KNOWN.iter().map(|s| s.as_str().to_string()).collect();
        let mut buckets = buckets;
        if buckets.any(|b| b.counts.keys().any(|k| !out.contains(k))) {
            out.push(OTHER.into());
        }
        out
    }

    /// One row per bucket with counts in `statuses` order; statuses not named there count as [`OTHER`].
    pub fn activity_rows(buckets: &[ActivityBucket], statuses: &[String], label: &str) -> Vec<ActivityRow> {
        buckets
            .iter()
            .map(|b| {
                let mut counts = vec![0i64; statuses.len()];
                for (status, n) in &b.counts {
                    let slot = statuses
                        .iter()
                        .position(|s| s == status)
                        .or_else(|| statuses.iter().position(|s| s == OTHER));
                    if let Some(i) = slot {
                        counts[i] += n;
                    }
                }
                ActivityRow {
                    start: b.start.to_rfc3339_opts(SecondsFormat::Secs, true),
                    label: b.start.format(label).to_string(),
                    total: b.counts.values().sum(),
                    counts,
                }
            })
            .collect()
    }
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{TimeZone, Utc};
    use flowstate_store::{ActivityBucket, WorkflowStats};

    use super::ssr::{activity_rows, chart_statuses, overview_from_stats};

    #[test]
    fn known_statuses_come_first_with_zeros_then_stored_oddities() {
        let stats = WorkflowStats {
            total_workflows: 6,
            recent_workflows_24h: 2,
            status_counts: BTreeMap::from([
                ("failed".to_string(), 3),
                ("pending".to_string(), 2),
                ("null".to_string(), 1),
            ]),
            average_execution_time_ms: 0.0,
        };
        let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        let o = overview_from_stats(stats, at);
        let names: Vec<(&str, i64)> = o.statuses.iter().map(|s| (s.status.as_str(), s.count)).collect();
        assert_eq!(
            names,
            [
                ("running", 0),
                ("paused", 0),
                ("completed", 0),
                ("failed", 3),
                ("cancelled", 0),
                ("null", 1),
                ("pending", 2)
            ]
        );
        assert_eq!(o.average_execution_ms, None, "no execution times: no mean");
        assert_eq!(o.read_at, "2026-01-02T03:04:05Z");
    }

    #[test]
    fn activity_rows_follow_the_chart_statuses_and_fold_oddities_into_other() {
        let start = Utc.with_ymd_and_hms(2026, 1, 2, 14, 0, 0).unwrap();
        let buckets = vec![ActivityBucket {
            start,
            counts: BTreeMap::from([
                ("failed".to_string(), 2),
                ("pending".to_string(), 1),
                ("null".to_string(), 1),
            ]),
        }];
        let statuses = chart_statuses(buckets.iter());
        assert_eq!(statuses.last().map(String::as_str), Some("other"));
        let rows = activity_rows(&buckets, &statuses, "%H:00");
        assert_eq!(rows[0].label, "14:00");
        assert_eq!(rows[0].total, 4);
        assert_eq!(rows[0].counts, vec![0, 0, 0, 2, 0, 2]);
        let plain = chart_statuses(std::iter::empty());
        assert_eq!(plain.len(), 5, "no `other` column without other values");
    }
}
