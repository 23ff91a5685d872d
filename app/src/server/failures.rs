//! The Failures page's figures: failures of a time window grouped by error signature, and failure rates per
//! pipeline.

use leptos::prelude::*;

use crate::error::AppError;
use crate::model::Failures;

/// Failed runs whose last update lies in the window (`window`: a span from `1m` to `365d`, or `since`: an
/// instant; 24 h when both are absent, see [`crate::spans::Window::parse`]), grouped by
/// error signature, largest group first, with the failure rate of every pipeline in the window. With `group`
/// (a group's key) only that group is returned, with up to [`ssr::DRILL_DOWN_SAMPLES`] sample runs.
///
/// # Errors
/// [`AppError::BadRequest`] naming `window`, `since` or `group` for a value that is not one; [`AppError::NotFound`] when
/// no failure of the window has the group's key; the store's errors.
#[server(endpoint = "failures")]
pub async fn get_failures(
    window: Option<String>,
    since: Option<String>,
    group: Option<String>,
) -> Result<Failures, AppError> {
    use crate::spans::Window;
    let window = Window::parse(window.as_deref(), since.as_deref())
        .map_err(|e| AppError::bad_request(e.param, e.reason))?;
    let group = group
        .map(|g| g.trim().to_ascii_lowercase())
        .filter(|g| !g.is_empty());
    if let Some(key) = &group {
        if key.len() != 16 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AppError::bad_request(
                "group",
                "a group key is the 16 hexadecimal digits of a link on the Failures page",
            ));
        }
    }
    let store = super::store()?;
    ssr::read_failures(&store, window, group.as_deref()).await
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use chrono::{DateTime, SecondsFormat, Utc};
    use flowstate_store::insights::MAX_FAILURE_SCAN;
    use flowstate_store::{FailureGroup, PipelineFailureRate, Store};

    use crate::error::AppError;
    use crate::format::{runs_of_failure_group, signature_fragment, stamp};
    use crate::model::{FailureGroupView, FailureRateRow, FailureSample, Failures, PipelineCount};
    use crate::spans::Window;

    /// Sample runs shown for one group (`?group=`).
    pub const DRILL_DOWN_SAMPLES: usize = 50;

    /// The signature the store gives failures without a message.
    const NO_MESSAGE: &str = "(no error message)";

    /// Reads the page's figures; see [`super::get_failures`].
    pub async fn read_failures(
        store: &Store,
        window: Window,
        group: Option<&str>,
    ) -> Result<Failures, AppError> {
        let now = store.now();
        let since = window.since(now);
        let mut out = Failures {
            window,
            since: stamp(since, now),
            total_failed: 0,
            groups: Vec::new(),
            group: None,
            truncated: false,
            scan_limit: MAX_FAILURE_SCAN,
            rates: Vec::new(),
            read_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
        };
        if let Some(key) = group {
            let found = store.failure_group(since, key, DRILL_DOWN_SAMPLES).await?;
            let Some(found) = found else {
                return Err(AppError::not_found(format!(
                    "failure group “{key}” {}",
                    window.phrase()
                )));
            };
            out.total_failed = store.count_failed_since(since).await?;
            out.truncated = out.total_failed > MAX_FAILURE_SCAN;
            out.group = Some(group_view(found, since, now));
        } else {
            let report = store.failure_groups(since).await?;
            out.total_failed = report.total_failed;
            out.truncated = report.truncated;
            out.groups = report
                .groups
                .into_iter()
                .map(|g| group_view(g, since, now))
                .collect();
            out.rates = store
                .failure_rates(since)
                .await?
                .into_iter()
                .map(rate_row)
                .collect();
        }
        Ok(out)
    }

    fn group_view(g: FailureGroup, since: DateTime<Utc>, now: DateTime<Utc>) -> FailureGroupView {
        let mut pipelines: Vec<PipelineCount> = g
            .pipelines
            .into_iter()
            .map(|(pipeline_id, count)| PipelineCount { pipeline_id, count })
            .collect();
        pipelines.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.pipeline_id.cmp(&b.pipeline_id))
        });
        let runs_href = (g.signature != NO_MESSAGE)
            .then(|| signature_fragment(&g.signature))
            .flatten()
            .map(|fragment| {
                runs_of_failure_group(&fragment, &since.to_rfc3339_opts(SecondsFormat::Micros, true))
            });
        FailureGroupView {
            key: g.key,
            example: first_line(&g.example, 500),
            signature: g.signature,
            count: g.count,
            pipelines,
            first_seen: g.first_seen.map(|t| stamp(t, now)),
            last_seen: g.last_seen.map(|t| stamp(t, now)),
            samples: g
                .samples
                .into_iter()
                .map(|r| FailureSample {
                    error: first_line(r.error_message.as_deref().unwrap_or(""), 300),
                    run_id: r.run_id,
                    pipeline_id: r.pipeline_id,
                    updated: r.updated_at.map(|t| stamp(t, now)),
                })
                .collect(),
            runs_href,
        }
    }

    fn rate_row(r: PipelineFailureRate) -> FailureRateRow {
        FailureRateRow {
            pipeline_id: r.pipeline_id,
            total: r.total,
            failed: r.failed,
            rate: r.rate,
        }
    }

    /// The first line of a message, cut at `max` characters (with `…`).
    fn first_line(message: &str, max: usize) -> String {
        let line = message.lines().next().unwrap_or("").trim();
        if line.chars().count() > max {
            let cut: String = line.chars().take(max - 1).collect();
            format!("{cut}…")
        } else {
            line.to_string()
        }
    }

    #[cfg(test)]
    mod tests {
        use super::first_line;

        #[test]
        fn messages_are_cut_to_their_first_line() {
            assert_eq!(first_line("a\nb", 10), "a");
            assert_eq!(first_line("abcdef", 4), "abc…");
            assert_eq!(first_line("", 4), "");
        }
    }
}
