//! The runs list's orders, filters and totals (issue 15), measured through the store's API on either backend:
//! the first page and page 1,000 (through its keyset cursor) of each order and filter, and the totals, each beside
//! the newest-first first page without a filter (the list's page as before), sampled in the same run.

use std::time::Instant;

use flowstate_store::{ListQuery, ListSort, Status, Store};

use crate::report::Measurement;
use crate::sample::{sample_async, Budget, Samples};
use crate::Result;

/// The deep page of each order.
pub const DEEP_PAGE: u64 = 1_000;

/// One list to measure.
struct Case {
    label: &'static str,
    query: ListQuery,
}

/// The cases: every order unfiltered, and the filters with the orders they are meant for. `pipeline` and `version`
/// name values the database holds.
fn cases(pipeline: &str, version: &str) -> Vec<Case> {
    let q = |sort| ListQuery {
        sort,
        ..Default::default()
    };
    vec![
        Case {
            label: "slowest",
            query: q(ListSort::Slowest),
        },
        Case {
            label: "heaviest",
            query: q(ListSort::Heaviest),
        },
        Case {
            label: "idle",
            query: q(ListSort::Idle),
        },
        Case {
            label: "idle.running",
            query: ListQuery {
                statuses: vec![Status::Running],
                ..q(ListSort::Idle)
            },
        },
        Case {
            label: "slowest.pipeline",
            query: ListQuery {
                pipeline_id: Some(pipeline.into()),
                ..q(ListSort::Slowest)
            },
        },
        Case {
            label: "newest.version",
            query: ListQuery {
                pipeline_version: Some(version.into()),
                ..q(ListSort::Newest)
            },
        },
        Case {
            label: "newest.min_duration_5m",
            query: ListQuery {
                min_execution_ms: Some(300_000),
                ..q(ListSort::Newest)
            },
        },
        Case {
            label: "slowest.min_duration_5m",
            query: ListQuery {
                min_execution_ms: Some(300_000),
                ..q(ListSort::Slowest)
            },
        },
        Case {
            label: "heaviest.min_memory_100",
            query: ListQuery {
                min_memory_mb: Some(100.0),
                ..q(ListSort::Heaviest)
            },
        },
        Case {
            label: "newest.min_memory_100",
            query: ListQuery {
                min_memory_mb: Some(100.0),
                ..q(ListSort::Newest)
            },
        },
    ]
}

fn figure(name: String, rows: u64, s: &Samples, base: &Samples) -> Measurement {
    Measurement::new(name, rows, s.median_ms(), "ms")
        .higher_is_better(false)
        .baseline(
            base.median_ms(),
            "the newest-first first page without a filter, same run",
        )
        .goal_at_most(3.0)
        .extra("p99_ms", s.p99_ms())
        .extra("max_ms", s.max_ms())
        .extra("samples", s.len() as u64)
}

/// The figures, named `{prefix}list_sorts.*` (`prefix`: `""` for SQLite, `"pg."` for PostgreSQL).
///
/// # Errors
/// The store's.
pub async fn sort_group(store: &Store, secs: f64, rows: u64, prefix: &str) -> Result<Vec<Measurement>> {
    let budget = Budget::secs(secs);
    let newest = ListQuery::default();
    let sample = store.list_workflows(&newest).await?;
    let first = sample.runs.first().ok_or("the database has no runs")?;
    let (pipeline, version) = (first.pipeline_id.clone(), first.pipeline_version.clone());
    let mut out = Vec::new();
    for case in cases(&pipeline, &version) {
        let base = sample_async(budget, || store.list_workflows(&newest)).await?;
        let s = sample_async(budget, || store.list_workflows(&case.query)).await?;
        let page = store.list_workflows(&case.query).await?;
        out.push(
            figure(
                format!("{prefix}list_sorts.first_page.{}", case.label),
                rows,
                &s,
                &base,
            )
            .extra("returned", page.runs.len() as u64)
            .note(format!("{:?}", case.query)),
        );
        // Page 1,000 through a real cursor (found once with an offset), when the list has that many pages.
        let offset = (DEEP_PAGE - 1) * u64::from(ListQuery::DEFAULT_LIMIT);
        let t = Instant::now();
        let before = store
            .list_workflows(&ListQuery {
                limit: Some(1),
                offset: Some(offset - 1),
                ..case.query.clone()
            })
            .await?;
        let cursor_ms = t.elapsed().as_secs_f64() * 1e3;
        if let Some(cursor) = before.next_cursor {
            let q = ListQuery {
                cursor: Some(cursor),
                ..case.query.clone()
            };
            let base = sample_async(budget, || store.list_workflows(&newest)).await?;
            let s = sample_async(budget, || store.list_workflows(&q)).await?;
            out.push(
                figure(
                    format!("{prefix}list_sorts.page_1000.{}", case.label),
                    rows,
                    &s,
                    &base,
                )
                .extra("cursor_by_offset_ms", cursor_ms)
                .note(format!("page 1,000 through its keyset cursor; {:?}", case.query)),
            );
        }
    }
    // Totals: from the counters (none, a status, a pipeline), and counted from the rows up to the bound.
    let counts = [
        ("unfiltered", ListQuery::default()),
        (
            "status",
            ListQuery {
                statuses: vec![Status::Failed],
                ..Default::default()
            },
        ),
        (
            "version",
            ListQuery {
                pipeline_version: Some(version.clone()),
                ..Default::default()
            },
        ),
        (
            "min_duration_5m",
            ListQuery {
                min_execution_ms: Some(300_000),
                ..Default::default()
            },
        ),
        (
            "error_text",
            ListQuery {
                error_contains: Some("timeout".into()),
                ..Default::default()
            },
        ),
    ];
    for (label, q) in counts {
        let total = store.count_runs(&q).await?;
        let base = sample_async(budget, || store.list_workflows(&newest)).await?;
        let s = sample_async(budget, || store.count_runs(&q)).await?;
        out.push(
            figure(format!("{prefix}list_sorts.count.{label}"), rows, &s, &base)
                .extra("count", total.count)
                .extra("exact", total.exact)
                .note(format!(
                    "count_runs: {} ({}); {:?}",
                    total.count,
                    if total.exact { "exact" } else { "more than" },
                    q
                )),
        );
    }
    Ok(out)
}
