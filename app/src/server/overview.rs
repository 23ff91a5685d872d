//! The Overview page's figures.

use leptos::prelude::*;

use crate::error::AppError;
use crate::model::Overview;

/// Counts per status, total, runs created in the last 24 h and the mean execution time, read from one
/// snapshot of the store, with the instant they were read.
#[server(endpoint = "overview")]
pub async fn get_overview() -> Result<Overview, AppError> {
    let store = super::store()?;
    let read_at = store.now();
    let stats = store.get_workflow_stats().await?;
    Ok(ssr::overview_from_stats(stats, read_at))
}

#[cfg(feature = "ssr")]
pub(crate) mod ssr {
    use chrono::{DateTime, SecondsFormat, Utc};
    use flowstate_store::{Status, WorkflowStats};

    use crate::model::{Overview, StatusCount};

    /// The five known statuses first, in the store's order and with zero counts, then any other stored value.
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
        Overview {
            total: stats.total_workflows,
            recent_24h: stats.recent_workflows_24h,
            statuses,
            average_execution_ms: has_times.then_some(stats.average_execution_time_ms),
            read_at: read_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        }
    }
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use std::collections::BTreeMap;

    use chrono::{TimeZone, Utc};
    use flowstate_store::WorkflowStats;

    use super::ssr::overview_from_stats;

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
}
