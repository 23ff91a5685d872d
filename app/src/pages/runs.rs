//! `/runs`: the runs list (newest first, or slowest, most memory or longest idle first), with its total, filters in
//! the address (see [`crate::server::runs`] for the
//! parameters) and keyset pages.

use crate::components::PageTitle;
use leptos::prelude::*;
use leptos_router::hooks::use_location;

use crate::components::{ErrorPage, Pager, RunFilters, StatusBadge, UnknownParams};
use crate::format::{count, duration_ms, memory_mb, run_total, truncate_chars};
use crate::model::{RunRow, RunsFilter, RunsListing, Stamp};
use crate::server::list_runs;

/// How many characters of an error the table shows (the whole message is in the cell's title and on the run
/// page).
const ERROR_CHARS: usize = 90;

/// The runs list. The server reads the filters from the raw query string, so what the address says is exactly
/// what is listed; a bad parameter is a 400 page naming it.
#[component]
pub fn RunsPage() -> impl IntoView {
    let location = use_location();
    let listing = Resource::new(move || location.search.get(), list_runs);
    view! {
        <PageTitle text="Runs"/>
        <UnknownParams known=RunsFilter::PARAMS/>
        <Transition fallback=|| view! { <p class="loading">"Reading the runs…"</p> }>
            {move || Suspend::new(async move {
                match listing.await {
                    Ok(listing) => view! { <RunsList listing/> }.into_any(),
                    Err(error) => {
                        view! {
                            <ErrorPage error/>
                            <p class="error-next">
                                <a href="/runs">"Show every run"</a>
                            </p>
                        }
                            .into_any()
                    }
                }
            })}
        </Transition>
    }
}

#[component]
fn RunsList(listing: RunsListing) -> impl IntoView {
    let RunsListing {
        filter,
        runs,
        next_cursor,
        prev_cursor,
        paged,
        pipelines,
        read_at,
        total,
        total_exact,
    } = listing;
    let newest = paged.then(|| filter.href(None));
    let newer = prev_cursor.map(|c| filter.href(Some(&c)));
    let older = next_cursor.map(|c| filter.href(Some(&c)));
    let shown = runs.len();
    let filter_is_set = filter.is_filtered();
    let order = filter
        .sort
        .as_deref()
        .map(|s| match s {
            "slowest" => "slowest first",
            "heaviest" => "most memory first",
            "idle" => "longest idle first",
            _ => "newest first",
        })
        .unwrap_or("newest first");
    let body = if runs.is_empty() {
        view! { <EmptyState filter=filter.clone() paged/> }.into_any()
    } else {
        view! { <RunsTable runs filter=filter.clone()/> }.into_any()
    };
    let title = match filter.describe() {
        d if d.is_empty() => "Runs".to_string(),
        d => format!("Runs · {d}"),
    };
    view! {
        <PageTitle text=title/>
        <h1>"Runs"</h1>
        <RunFilters filter=filter.clone() pipelines/>
        <FilterSummary filter=filter.clone()/>
        <SortLinks filter/>
        <p class="list-total" data-testid="runs-total">
            <strong>{run_total(total, total_exact)}</strong>
            {if total_exact || total == 0 { "" } else { " (counted up to this bound, not all)" }}
            {if filter_is_set { " match these filters." } else { " in all." }}
        </p>
        <p class="list-summary">
            {if shown == 0 {
                String::new()
            } else {
                format!(
                    "{} {} on this page, {order}. ",
                    count(shown as i64),
                    if shown == 1 { "run" } else { "runs" },
                )
            }}
            "Read at " <time datetime=read_at.clone()>{read_at.replace('T', " ").replace('Z', " UTC")}</time>
            "."
        </p>
        {body}
        <Pager newest newer older/>
    }
}

/// The active filters in words (`data-testid="status-filter"` holds the statuses).
#[component]
fn FilterSummary(filter: RunsFilter) -> impl IntoView {
    if !filter.is_filtered() {
        return None;
    }
    let mut parts: Vec<AnyView> = Vec::new();
    if !filter.statuses.is_empty() {
        let names = filter.statuses.join(", ");
        parts.push(view! { "Status: " <strong data-testid="status-filter">{names}</strong> }.into_any());
    }
    let texts = [
        ("Pipeline: ", filter.pipeline.clone()),
        ("Run id starts with: ", filter.prefix.clone()),
        ("Error contains: ", filter.error.clone()),
        ("Started by run: ", filter.parent.clone()),
        ("Version: ", filter.version.clone()),
        ("Took at least: ", filter.min_duration.clone()),
        ("Took at most: ", filter.max_duration.clone()),
        ("Memory at least (MB): ", filter.min_memory.clone()),
        ("Memory at most (MB): ", filter.max_memory.clone()),
        (
            "Background tasks: ",
            filter
                .background
                .map(|b| if b { "only" } else { "none" }.to_string()),
        ),
        (
            "Created from: ",
            filter.created_after.as_ref().map(|t| t.rfc3339.clone()),
        ),
        (
            "Created before: ",
            filter.created_before.as_ref().map(|t| t.rfc3339.clone()),
        ),
        (
            "Updated from: ",
            filter.updated_after.as_ref().map(|t| t.rfc3339.clone()),
        ),
        (
            "Updated before: ",
            filter.updated_before.as_ref().map(|t| t.rfc3339.clone()),
        ),
    ];
    for (label, value) in texts {
        if let Some(v) = value {
            parts.push(view! { {label} <strong>{v}</strong> }.into_any());
        }
    }
    let items = parts.into_iter().map(|p| view! { <li>{p}</li> }).collect_view();
    Some(view! {
        <section class="filter-summary" aria-label="Active filters">
            <ul>{items}</ul>
        </section>
    })
}

/// The list's orders as links (the current one marked): the same filters, first page.
#[component]
fn SortLinks(filter: RunsFilter) -> impl IntoView {
    let current = filter.sort.clone().unwrap_or_else(|| "newest".into());
    let items = [
        ("newest", "Newest"),
        ("slowest", "Slowest"),
        ("heaviest", "Most memory"),
        ("idle", "Longest idle"),
    ]
    .into_iter()
    .map(|(name, label)| {
        let href = filter.sorted(Some(name)).href(None);
        if name == current {
            view! { <li><a href=href class="sort-link sort-current" aria-current="true" data-sort=name>{label}</a></li> }
                .into_any()
        } else {
            view! { <li><a href=href class="sort-link" data-sort=name>{label}</a></li> }.into_any()
        }
    })
    .collect_view();
    view! {
        <nav class="sort-links" aria-label="Order">
            <span class="hint">"Order: "</span>
            <ul>{items}</ul>
        </nav>
    }
}

#[component]
fn EmptyState(filter: RunsFilter, paged: bool) -> impl IntoView {
    let (message, link) = if filter.is_filtered() {
        (
            "No runs match these filters.",
            Some(("/runs", "Clear the filters")),
        )
    } else if paged {
        (
            "No more runs on this page.",
            Some(("/runs", "Back to the newest runs")),
        )
    } else {
        ("There are no runs in the database yet.", None)
    };
    view! {
        <div class="empty-state" data-testid="runs-empty">
            <p>{message}</p>
            {link.map(|(href, text)| view! { <p><a href=href>{text}</a></p> })}
        </div>
    }
}

#[component]
fn RunsTable(runs: Vec<RunRow>, filter: RunsFilter) -> impl IntoView {
    let rows = runs
        .into_iter()
        .map(|run| {
            let href = filter.run_href(&run.run_id);
            view! { <RunRowView run href/> }
        })
        .collect_view();
    view! {
        <div class="table-scroll" role="region" aria-label="Runs" tabindex="0">
            <table class="runs-table">
                <thead>
                    <tr>
                        <th scope="col">"Run"</th>
                        <th scope="col">"Pipeline"</th>
                        <th scope="col">"Status"</th>
                        <th scope="col">"Step"</th>
                        <th scope="col">"Created"</th>
                        <th scope="col">"Updated"</th>
                        <th scope="col">"Execution"</th>
                        <th scope="col">"Memory"</th>
                        <th scope="col">"Error"</th>
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
}

#[component]
fn RunRowView(run: RunRow, href: String) -> impl IntoView {
    let RunRow {
        run_id,
        pipeline_id,
        pipeline_name,
        status,
        step,
        created,
        updated,
        execution_time_ms,
        memory_usage_mb,
        error_message,
        error_cut,
    } = run;
    let title = run_id.clone();
    let step = step.trim_start_matches("step ").to_string();
    let pipeline_title = (pipeline_name != pipeline_id).then(|| pipeline_name.clone());
    let error = error_message.map(|excerpt| {
        let short = truncate_chars(&excerpt, ERROR_CHARS);
        // The list carries the start of a long message only; the run's page has all of it.
        let title = if error_cut {
            format!("{excerpt}…")
        } else {
            excerpt
        };
        view! { <span class="error-snippet" title=title>{short}</span> }
    });
    let row_id = run_id.clone();
    let row_status = status.clone();
    view! {
        <tr data-run-id=row_id data-status=row_status>
            <th scope="row" data-label="Run">
                <a href=href class="run-link" title=title><code>{run_id}</code></a>
            </th>
            <td data-label="Pipeline">
                <span title=pipeline_title>{pipeline_id}</span>
            </td>
            <td data-label="Status"><StatusBadge status/></td>
            <td data-label="Step" class="num">{step}</td>
            <td data-label="Created"><StampView stamp=created/></td>
            <td data-label="Updated"><StampView stamp=updated/></td>
            <td data-label="Execution" class="num">
                {execution_time_ms.map(|ms| duration_ms(ms as f64)).unwrap_or_else(|| "—".into())}
            </td>
            <td data-label="Memory" class="num" data-field="memory">{memory_mb(memory_usage_mb)}</td>
            <td data-label="Error" class="error-cell">{error}</td>
        </tr>
    }
}

/// An instant in UTC with its relative time; "unknown" when the stored value is not a timestamp.
#[component]
pub fn StampView(stamp: Option<Stamp>) -> impl IntoView {
    match stamp {
        Some(Stamp {
            rfc3339,
            utc,
            relative,
        }) => view! {
            <time datetime=rfc3339 class="stamp">{utc}</time>
            " "
            <span class="ago">{format!("({relative})")}</span>
        }
        .into_any(),
        None => view! { <span class="unknown">"unknown"</span> }.into_any(),
    }
}
