//! Issue 15's triage reads besides the runs list's orders ([`crate::lists`]), through the store's API on either
//! backend: the Failures page narrowed to one pipeline or one of its versions, its failures per version, and the
//! run page's previous/next runs within a list. Each beside the unscoped failure groups of the last 24 hours (the
//! Failures page as it opens), sampled in the same run.

use chrono::Duration;
use flowstate_store::{FailureScope, ListQuery, ListSort, Status, Store};

use crate::report::Measurement;
use crate::sample::{sample_async, Budget, Samples};
use crate::Result;

/// The pipeline: the generator's largest (27 % of the runs), the worst case of a per-pipeline read.
pub const PIPELINE: &str = "customer-support-triage";
/// The failure groups' budget (BENCHMARKS.md), which the scoped reads share.
const FAILURES_GOAL_MS: f64 = 20.0;
/// The run page's store calls share the list page's budget.
const NEIGHBOURS_GOAL_MS: f64 = 3.0;

fn figure(name: String, rows: u64, s: &Samples, base: &Samples, goal: f64) -> Measurement {
    Measurement::new(name, rows, s.median_ms(), "ms")
        .higher_is_better(false)
        .baseline(
            base.median_ms(),
            "failure_groups of the last 24 h without a scope, same run",
        )
        .goal_at_most(goal)
        .extra("p99_ms", s.p99_ms())
        .extra("max_ms", s.max_ms())
        .extra("samples", s.len() as u64)
}

/// The figures, named `{prefix}triage.*` (`prefix`: `""` for SQLite, `"pg."` for PostgreSQL), of [`PIPELINE`] and
/// the version of its newest failed run.
///
/// # Errors
/// The store's; a database without failed runs.
pub async fn triage_group(store: &Store, secs: f64, rows: u64, prefix: &str) -> Result<Vec<Measurement>> {
    let budget = Budget::secs(secs);
    let now = store.now();
    let (day, week) = (now - Duration::hours(24), now - Duration::days(7));
    let failed = ListQuery {
        statuses: vec![Status::Failed],
        ..Default::default()
    };
    let page = store
        .list_workflows(&ListQuery {
            pipeline_id: Some(PIPELINE.into()),
            ..failed.clone()
        })
        .await?;
    let newest = page
        .runs
        .first()
        .ok_or(format!("the database has no failed run of {PIPELINE}"))?;
    let (pipeline, version) = (newest.pipeline_id.clone(), newest.pipeline_version.clone());
    let baseline = || store.failure_groups(day);
    let mut out = Vec::new();

    let scopes = [
        (
            "failure_groups.pipeline.24h",
            day,
            FailureScope {
                pipeline: Some(pipeline.clone()),
                version: None,
            },
        ),
        (
            "failure_groups.pipeline.7d",
            week,
            FailureScope {
                pipeline: Some(pipeline.clone()),
                version: None,
            },
        ),
        (
            "failure_groups.version.7d",
            week,
            FailureScope {
                pipeline: Some(pipeline.clone()),
                version: Some(version.clone()),
            },
        ),
    ];
    for (label, since, scope) in scopes {
        let report = store.failure_groups_in(since, &scope).await?;
        let base = sample_async(budget, baseline).await?;
        let s = sample_async(budget, || store.failure_groups_in(since, &scope)).await?;
        out.push(
            figure(
                format!("{prefix}triage.{label}"),
                rows,
                &s,
                &base,
                FAILURES_GOAL_MS,
            )
            .extra("failed_in_window", report.total_failed)
            .extra("groups", report.groups.len() as u64)
            .note(format!("failure_groups_in({label}); {scope:?}")),
        );
    }

    let versions = store.failures_by_version(week, &pipeline).await?;
    let base = sample_async(budget, baseline).await?;
    let s = sample_async(budget, || store.failures_by_version(week, &pipeline)).await?;
    out.push(
        figure(
            format!("{prefix}triage.failures_by_version.7d"),
            rows,
            &s,
            &base,
            FAILURES_GOAL_MS,
        )
        .extra("versions", versions.len() as u64)
        .note(format!("the Failures page's per-version table of {pipeline}")),
    );

    // The run page's previous/next: a run from the middle of the first page of each list.
    let slowest = ListQuery {
        sort: ListSort::Slowest,
        ..Default::default()
    };
    for (label, list) in [("failed", failed), ("slowest", slowest)] {
        let page = store.list_workflows(&list).await?;
        let Some(run) = page.runs.get(page.runs.len() / 2).map(|r| r.run_id.clone()) else {
            continue;
        };
        let found = store.list_neighbours(&list, &run).await?;
        let both = found
            .as_ref()
            .is_some_and(|(prev, next)| prev.is_some() && next.is_some());
        let base = sample_async(budget, baseline).await?;
        let s = sample_async(budget, || store.list_neighbours(&list, &run)).await?;
        out.push(
            figure(
                format!("{prefix}triage.neighbours.{label}"),
                rows,
                &s,
                &base,
                NEIGHBOURS_GOAL_MS,
            )
            .extra("previous_and_next", both)
            .note(format!("list_neighbours of a run within {list:?}")),
        );
    }
    Ok(out)
}
