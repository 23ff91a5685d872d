//! `/failures`: failures of a time window grouped by error signature, and failure rates per pipeline.
//! `?window=3h` (any span from `1m` to `365d`) or `?since=<instant>` picks the window (24 h by default);
//! `?group=<key>` shows one group with more samples.

use crate::components::PageTitle;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::components::ErrorPage;
use crate::format::{count, percent, run_href, url_encode};
use crate::model::{FailureGroupView, FailureRateRow, Failures, Stamp};
use crate::server::get_failures;
use crate::spans::Window;

/// Failure triage: which errors happen, how often, where, since when.
#[component]
pub fn FailuresPage() -> impl IntoView {
    let query = use_query_map();
    let params = move || {
        query.with(|q| {
            (
                q.get(Window::PARAM),
                q.get(Window::SINCE_PARAM),
                q.get("group").filter(|g| !g.trim().is_empty()),
            )
        })
    };
    let failures = Resource::new(params, |(window, since, group)| {
        get_failures(window, since, group)
    });
    view! {
        <PageTitle text="Failures"/>
        <Suspense fallback=|| view! { <p class="loading">"Reading the failures…"</p> }>
            {move || Suspend::new(async move {
                match failures.await {
                    Ok(report) => view! { <Report report/> }.into_any(),
                    Err(error) => view! { <ErrorPage error/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// The address of the Failures page for `window`, optionally of one group.
fn failures_href(window: Window, group: Option<&str>) -> String {
    match group {
        Some(key) => format!("/failures?{}&group={}", window.query(), url_encode(key)),
        None => format!("/failures?{}", window.query()),
    }
}

#[component]
fn Report(report: Failures) -> AnyView {
    let Failures {
        window,
        since,
        total_failed,
        groups,
        group,
        truncated,
        scan_limit,
        rates,
        read_at,
    } = report;
    let drill_down = group.is_some();
    let group_count = groups.len();
    view! {
        <h1>"Failures"</h1>
        <p class="read-at">
            "Failed runs by their last update. Read at "
            <time datetime=read_at.clone()>{read_at.replace('T', " ").replace('Z', " UTC")}</time>
        </p>
        <WindowPicker current=window/>
        <p class="failures-summary" data-testid="failures-summary">
            <strong data-testid="total-failed" data-value=total_failed>{count(total_failed)}</strong>
            {format!(
                " failed run{} {} (since ",
                if total_failed == 1 { "" } else { "s" },
                window.phrase()
            )}
            <time datetime=since.rfc3339.clone()>{since.utc.clone()}</time>
            ")"
            {(!drill_down).then(|| format!(
                ", in {group_count} group{}.",
                if group_count == 1 { "" } else { "s" }
            ))}
        </p>
        {truncated.then(|| view! {
            <p class="note note-warn" role="note" data-testid="truncated">
                {format!(
                    "The window holds more failures than the {} newest read here: the groups below count those \
                     only. Pick a shorter window to see everything.",
                    count(scan_limit)
                )}
            </p>
        })}
        {match group {
            Some(group) => view! { <GroupDetail group window/> }.into_any(),
            None => view! {
                <Groups groups window/>
                <Rates rates window/>
            }.into_any(),
        }}
    }
    .into_any()
}

/// The window selector: the shortcuts as plain links, then two small GET forms, a span (`3h`, `90m`) and a
/// start instant (24-hour, UTC); all work without JavaScript. The current window is marked.
#[component]
fn WindowPicker(current: Window) -> AnyView {
    let links = Window::SHORTCUTS
        .into_iter()
        .map(|w| {
            let here = w == current;
            view! {
                <li>
                    <a
                        href=failures_href(w, None)
                        aria-current=here.then_some("page")
                        class=if here { "segment segment-current" } else { "segment" }
                    >
                        {format!("Last {}", w.span_label())}
                    </a>
                </li>
            }
        })
        .collect_view();
    let custom = (!current.is_shortcut()).then(|| {
        view! {
            <li>
                <span class="segment segment-current" aria-current="page">{capitalized(&current.label())}</span>
            </li>
        }
    });
    view! {
        <nav class="window-picker" aria-label="Time window">
            <ul>{links}{custom}</ul>
            <form class="window-form" method="get" action="/failures" data-testid="window-form">
                <label>
                    "Last "
                    <input
                        type="text"
                        name=Window::PARAM
                        value=current.span_input().unwrap_or_default()
                        placeholder="3h, 90m, 7d"
                        size="7"
                        maxlength="24"
                        pattern="\\s*[0-9]+\\s*[A-Za-z]{1,3}\\s*"
                        title="A whole number and a unit: 90m, 3h, 7d (1m to 365d)"
                        required
                    />
                </label>
                <button type="submit">"Show"</button>
            </form>
            <form class="window-form" method="get" action="/failures" data-testid="since-form">
                <label>
                    "Since "
                    <input
                        type="datetime-local"
                        name=Window::SINCE_PARAM
                        value=current.since_input().unwrap_or_default()
                        step="60"
                        required
                    />
                    " UTC"
                </label>
                <button type="submit">"Show"</button>
            </form>
        </nav>
    }
    .into_any()
}

/// `last 3 h` → `Last 3 h`.
fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// When something happened: UTC and relative.
#[component]
fn When(stamp: Option<Stamp>) -> impl IntoView {
    match stamp {
        Some(s) => view! {
            <time datetime=s.rfc3339>{s.utc}</time>
            <span class="relative">{format!(" ({})", s.relative)}</span>
        }
        .into_any(),
        None => view! { <span>"unknown"</span> }.into_any(),
    }
}

#[component]
fn Groups(groups: Vec<FailureGroupView>, window: Window) -> impl IntoView {
    if groups.is_empty() {
        return view! {
            <section aria-labelledby="groups-heading">
                <h2 id="groups-heading">"By error"</h2>
                <p class="empty">{format!("No run failed {}.", window.phrase())}</p>
            </section>
        }
        .into_any();
    }
    let items = groups
        .into_iter()
        .map(|g| view! { <GroupCard group=g window/> })
        .collect_view();
    view! {
        <section aria-labelledby="groups-heading">
            <h2 id="groups-heading">"By error"</h2>
            <p class="hint">
                "Messages are grouped by their signature: numbers, ids, quoted values and durations are replaced by "
                <code>"<n>"</code>", "<code>"<id>"</code>", "<code>"<v>"</code>" and "<code>"<dur>"</code>"."
            </p>
            <ol class="failure-groups">{items}</ol>
        </section>
    }
    .into_any()
}

/// The pipelines of a group with their counts.
fn pipeline_list(group: &FailureGroupView) -> impl IntoView {
    group
        .pipelines
        .iter()
        .map(|p| {
            let href = format!("/runs?status=failed&pipeline={}", url_encode(&p.pipeline_id));
            view! {
                <li>
                    <a href=href>{p.pipeline_id.clone()}</a>
                    <span class="count">{format!(" ({})", count(p.count))}</span>
                </li>
            }
        })
        .collect_view()
}

/// One group in the list: count, signature, example, pipelines, first and last seen, samples, links.
#[component]
fn GroupCard(group: FailureGroupView, window: Window) -> AnyView {
    let detail_href = failures_href(window, Some(&group.key));
    let heading_id = format!("group-{}", group.key);
    let labelled_by = heading_id.clone();
    let pipelines = pipeline_list(&group);
    let FailureGroupView {
        key,
        signature,
        example,
        count: n,
        first_seen,
        last_seen,
        samples,
        runs_href,
        ..
    } = group;
    let samples = samples
        .into_iter()
        .map(|s| {
            let href = run_href(&s.run_id);
            view! {
                <li>
                    <a href=href class="run-ref">{s.run_id}</a>
                    <span class="muted">{format!(" · {} · ", s.pipeline_id)}</span>
                    <When stamp=s.updated/>
                </li>
            }
        })
        .collect_view();
    view! {
        <li class="failure-group" data-group=key data-count=n aria-labelledby=labelled_by>
            <div class="group-head">
                <span class="group-count" data-testid="group-count">
                    {count(n)}
                    <span class="visually-hidden">{if n == 1 { " failure:" } else { " failures:" }}</span>
                </span>
                <h3 id=heading_id><code class="signature">{signature}</code></h3>
            </div>
            <p class="example"><span class="label">"Example: "</span><q>{example}</q></p>
            <dl class="group-facts">
                <div>
                    <dt>"Pipelines"</dt>
                    <dd><ul class="inline-list">{pipelines}</ul></dd>
                </div>
                <div>
                    <dt>"First seen"</dt>
                    <dd><When stamp=first_seen/></dd>
                </div>
                <div>
                    <dt>"Last seen"</dt>
                    <dd><When stamp=last_seen/></dd>
                </div>
            </dl>
            <div class="samples">
                <h4>"Sample runs, newest first"</h4>
                <ul>{samples}</ul>
            </div>
            <p class="group-links">
                <a href=detail_href>
                    {if n > 50 {
                        "Show the group's 50 newest runs".to_string()
                    } else if n == 1 {
                        "Show the group's run".to_string()
                    } else {
                        format!("Show all {} of the group's runs", count(n))
                    }}
                </a>
                {runs_href.map(|href| view! {
                    " · " <a href=href>"Open in the runs list"</a>
                })}
            </p>
        </li>
    }
    .into_any()
}

/// One group with up to 50 of its runs.
#[component]
fn GroupDetail(group: FailureGroupView, window: Window) -> AnyView {
    let pipelines = pipeline_list(&group);
    let FailureGroupView {
        key,
        signature,
        example,
        count: n,
        first_seen,
        last_seen,
        samples,
        runs_href,
        ..
    } = group;
    let shown = samples.len();
    let rows = samples
        .into_iter()
        .map(|s| {
            let href = run_href(&s.run_id);
            view! {
                <tr>
                    <td data-label="Run"><a href=href class="run-ref">{s.run_id}</a></td>
                    <td data-label="Pipeline">{s.pipeline_id}</td>
                    <td data-label="Failed at"><When stamp=s.updated/></td>
                    <td class="sample-error" data-label="Error">{s.error}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <p><a href=failures_href(window, None)>{format!("← All groups of the {}", window.label())}</a></p>
        <section class="failure-group failure-group-detail" data-group=key data-count=n aria-labelledby="group-heading">
            <h2 id="group-heading">
                <span class="group-count" data-testid="group-count">{count(n)}</span>
                " "
                <code class="signature">{signature}</code>
            </h2>
            <p class="example"><span class="label">"Example: "</span><q>{example}</q></p>
            <dl class="group-facts">
                <div>
                    <dt>"Pipelines"</dt>
                    <dd><ul class="inline-list">{pipelines}</ul></dd>
                </div>
                <div>
                    <dt>"First seen"</dt>
                    <dd><When stamp=first_seen/></dd>
                </div>
                <div>
                    <dt>"Last seen"</dt>
                    <dd><When stamp=last_seen/></dd>
                </div>
            </dl>
            {runs_href.map(|href| view! { <p><a href=href>"Open this group in the runs list"</a></p> })}
            <div class="data-scroll">
                <table class="data-table stack-on-phone" data-testid="group-samples">
                    <caption>
                        {if (n as usize) > shown {
                            format!("The {shown} newest of {} runs", count(n))
                        } else {
                            format!("All {} runs, newest first", count(n))
                        }}
                    </caption>
                    <thead>
                        <tr>
                            <th scope="col">"Run"</th>
                            <th scope="col">"Pipeline"</th>
                            <th scope="col">"Failed at"</th>
                            <th scope="col">"Error"</th>
                        </tr>
                    </thead>
                    <tbody>{rows}</tbody>
                </table>
            </div>
        </section>
    }
    .into_any()
}

/// Failure rate per pipeline in the window, as a table with bars.
#[component]
fn Rates(rates: Vec<FailureRateRow>, window: Window) -> AnyView {
    let body = rates
        .into_iter()
        .map(|r| {
            // An SVG bar (its width a presentation attribute, not an inline style: the CSP allows none).
            let width = format!("{:.1}", (r.rate * 100.0).clamp(0.0, 100.0));
            let name = if r.pipeline_id.is_empty() {
                "(none)".to_string()
            } else {
                r.pipeline_id.clone()
            };
            view! {
                <tr data-pipeline=r.pipeline_id.clone()>
                    <th scope="row">{name}</th>
                    <td class="num">{count(r.total)}</td>
                    <td class="num">{count(r.failed)}</td>
                    <td class="rate-cell">
                        <svg class="rate-bar" aria-hidden="true" viewBox="0 0 100 1" preserveAspectRatio="none">
                            <rect width=width height="1"></rect>
                        </svg>
                        <span class="rate-value">{percent(r.rate)}</span>
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <section aria-labelledby="rates-heading">
            <h2 id="rates-heading">"Failure rate per pipeline"</h2>
            <div class="data-scroll">
                <table class="data-table rates" data-testid="failure-rates">
                    <caption>{format!(
                        "Runs last updated {}, and how many of them failed; highest rate first.",
                        window.phrase()
                    )}</caption>
                    <thead>
                        <tr>
                            <th scope="col">"Pipeline"</th>
                            <th scope="col" class="num">"Runs"</th>
                            <th scope="col" class="num">"Failed"</th>
                            <th scope="col">"Failure rate"</th>
                        </tr>
                    </thead>
                    <tbody>{body}</tbody>
                </table>
            </div>
        </section>
    }
    .into_any()
}
