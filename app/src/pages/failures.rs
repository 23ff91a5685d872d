//! `/failures`: failures of a time window grouped by error signature, and failure rates per pipeline.
//! `?window=3h` (any span from `1m` to `365d`) or `?since=<instant>` picks the window (24 h by default);
//! `?group=<key>` shows one group with more samples.

use crate::components::PageTitle;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::components::{ErrorPage, ScrollTable, UnknownParams, WindowPicker};
use crate::format::{count, percent, run_href, url_encode};
use crate::model::{FailureGroupView, FailureRateRow, Failures, Stamp, VersionRateRow};
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
                q.get("pipeline"),
                q.get("version"),
            )
        })
    };
    let failures = Resource::new(params, |(window, since, group, pipeline, version)| {
        get_failures(window, since, group, pipeline, version)
    });
    view! {
        <PageTitle text="Failures"/>
        <UnknownParams known=&[Window::PARAM, Window::SINCE_PARAM, "group", "pipeline", "version"]/>
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

/// The address of the Failures page for `window` and the scope `scope` (`&pipeline=..&version=..`, or empty),
/// optionally of one group.
fn failures_href(window: Window, scope: &str, group: Option<&str>) -> String {
    match group {
        Some(key) => format!("/failures?{}{scope}&group={}", window.query(), url_encode(key)),
        None => format!("/failures?{}{scope}", window.query()),
    }
}

/// `&pipeline=..&version=..` of the page's filter.
fn scope_query(pipeline: Option<&str>, version: Option<&str>) -> String {
    let mut out = String::new();
    if let Some(p) = pipeline {
        out.push_str(&format!("&pipeline={}", url_encode(p)));
    }
    if let Some(v) = version {
        out.push_str(&format!("&version={}", url_encode(v)));
    }
    out
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
        pipeline,
        version,
        versions,
        read_at,
    } = report;
    let drill_down = group.is_some();
    let group_count = groups.len();
    let scope = scope_query(pipeline.as_deref(), version.as_deref());
    // The title names the window, the filter and the group: several tabs of this page stay apart.
    let mut title = format!("Failures · {}", window.label());
    if let Some(p) = &pipeline {
        title.push_str(&format!(" · pipeline {p}"));
    }
    if let Some(v) = &version {
        title.push_str(&format!(" · version {v}"));
    }
    if let Some(g) = &group {
        title.push_str(&format!(" · group {}", g.key));
    }
    let scope_words = match (&pipeline, &version) {
        (Some(p), Some(v)) => format!(" of pipeline {p}, version {v}"),
        (Some(p), None) => format!(" of pipeline {p}"),
        (None, Some(v)) => format!(" of version {v}"),
        (None, None) => String::new(),
    };
    view! {
        <PageTitle text=title/>
        <h1>"Failures"</h1>
        <p class="read-at">
            "Failed runs by their last update. Read at "
            <time datetime=read_at.clone()>{read_at.replace('T', " ").replace('Z', " UTC")}</time>
        </p>
        <Pickers current=window scope=scope.clone() pipeline=pipeline.clone() version=version.clone()/>
        <p class="failures-summary" data-testid="failures-summary">
            <strong data-testid="total-failed" data-value=total_failed>{count(total_failed)}</strong>
            {format!(
                " failed run{}{scope_words} {} (since ",
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
            Some(group) => view! { <GroupDetail group window scope=scope.clone()/> }.into_any(),
            // The rates first: one short table that answers "which pipeline fails most" before the long list of
            // groups.
            None => view! {
                {pipeline.clone().map(|p| view! { <Versions versions pipeline=p current=version.clone()/> })}
                {pipeline.is_none().then(|| view! { <Rates rates window/> })}
                <Groups groups window scope=scope.clone()/>
            }.into_any(),
        }}
    }
    .into_any()
}

/// The window selector (the shared [`WindowPicker`], keeping the page's filter), then the filter's own form.
#[component]
fn Pickers(current: Window, scope: String, pipeline: Option<String>, version: Option<String>) -> AnyView {
    let mut hidden = Vec::new();
    if let Some(p) = &pipeline {
        hidden.push(("pipeline", p.clone()));
    }
    if let Some(v) = &version {
        hidden.push(("version", v.clone()));
    }
    view! {
        <WindowPicker action="/failures" current href=move |w| failures_href(w, &scope, None) hidden/>
        <form class="window-form scope-form" method="get" action="/failures" data-testid="scope-form">
            <input type="hidden" name=current.param_name() value=current.as_param()/>
            <label>
                "Pipeline "
                <input type="text" name="pipeline" value=pipeline.clone().unwrap_or_default() size="14"
                    placeholder="every pipeline"/>
            </label>
            <label>
                "Version "
                <input type="text" name="version" value=version.clone().unwrap_or_default() size="8"
                    placeholder="every version"/>
            </label>
            <button type="submit">"Filter"</button>
            {(pipeline.is_some() || version.is_some()).then(|| view! {
                " " <a href=failures_href(current, "", None)>"Every pipeline"</a>
            })}
        </form>
    }
    .into_any()
}

/// The chosen pipeline's versions in the window: runs, finished, failed, the rate of finished runs, each linked
/// to its own failures: "did the deploy break it?".
#[component]
fn Versions(versions: Vec<VersionRateRow>, pipeline: String, current: Option<String>) -> AnyView {
    let empty = versions.is_empty();
    let rows = versions
        .into_iter()
        .map(|v| {
            let here = current.as_deref() == Some(v.version.as_str());
            let width = format!("{:.1}", (v.rate * 100.0).clamp(0.0, 100.0));
            let name = if v.version.is_empty() { "(none)".to_string() } else { v.version.clone() };
            view! {
                <tr data-version=v.version.clone() data-finished=v.finished data-failed=v.failed
                    class=if here { "version-current" } else { "" }>
                    <th scope="row"><a href=v.failures_href aria-current=here.then_some("page")>{name}</a></th>
                    <td class="num" data-label="Runs">{count(v.total)}</td>
                    <td class="num" data-label="Finished">{count(v.finished)}</td>
                    <td class="num" data-label="Failed"><a href=v.failed_href>{count(v.failed)}</a></td>
                    <td class="rate-cell" data-label="Failure rate">
                        <svg class="rate-bar" aria-hidden="true" viewBox="0 0 100 1" preserveAspectRatio="none">
                            <rect width=width height="1"></rect>
                        </svg>
                        <span class="rate-value">{percent(v.rate)}</span>
                    </td>
                    <td data-label="Newest run"><When stamp=v.last_seen/></td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <section aria-labelledby="versions-heading">
            <h2 id="versions-heading">{format!("Failures per version of {pipeline}")}</h2>
            {empty.then(|| view! { <p class="empty">"No run of this pipeline in the window."</p> })}
            <ScrollTable label="Failures per version">
                <table class="data-table rates" data-testid="version-rates">
                    <caption>
                        "Runs last updated in the window per pipeline_version, newest version first; the rate is \
                         the share of finished runs that failed."
                    </caption>
                    <thead>
                        <tr>
                            <th scope="col">"Version"</th>
                            <th scope="col" class="num">"Runs"</th>
                            <th scope="col" class="num">"Finished"</th>
                            <th scope="col" class="num">"Failed"</th>
                            <th scope="col">"Failure rate"</th>
                            <th scope="col">"Newest run"</th>
                        </tr>
                    </thead>
                    <tbody>{rows}</tbody>
                </table>
            </ScrollTable>
        </section>
    }
    .into_any()
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
fn Groups(groups: Vec<FailureGroupView>, window: Window, scope: String) -> impl IntoView {
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
        .map(|g| view! { <GroupCard group=g window scope=scope.clone()/> })
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
            view! {
                <li>
                    <a href=p.href.clone()>{p.pipeline_id.clone()}</a>
                    <span class="count">{format!(" ({})", count(p.count))}</span>
                </li>
            }
        })
        .collect_view()
}

/// One group in the list: count, signature, example, pipelines, first and last seen, samples, links.
#[component]
fn GroupCard(group: FailureGroupView, window: Window, scope: String) -> AnyView {
    let detail_href = failures_href(window, &scope, Some(&group.key));
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
fn GroupDetail(group: FailureGroupView, window: Window, scope: String) -> AnyView {
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
        <p><a href=failures_href(window, &scope, None)>{format!("← All groups of the {}", window.label())}</a></p>
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
                <tr data-pipeline=r.pipeline_id.clone() data-finished=r.finished data-failed=r.failed>
                    <th scope="row"><a href=r.failures_href title="Its failures, per version">{name}</a></th>
                    <td class="num" data-label="Runs"><a href=r.runs_href>{count(r.total)}</a></td>
                    <td class="num" data-label="Finished">{count(r.finished)}</td>
                    <td class="num" data-label="Failed"><a href=r.failed_href>{count(r.failed)}</a></td>
                    <td class="rate-cell" data-label="Failure rate">
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
            <ScrollTable label="Failure rate per pipeline">
                <table class="data-table rates" data-testid="failure-rates">
                    <caption>{format!(
                        "Runs last updated {}; the rate is the share of finished runs (completed, failed or \
                         cancelled) that failed: running and paused runs have no outcome yet. Highest rate first.",
                        window.phrase()
                    )}</caption>
                    <thead>
                        <tr>
                            <th scope="col">"Pipeline"</th>
                            <th scope="col" class="num">"Runs"</th>
                            <th scope="col" class="num">"Finished"</th>
                            <th scope="col" class="num">"Failed"</th>
                            <th scope="col">"Failure rate"</th>
                        </tr>
                    </thead>
                    <tbody>{body}</tbody>
                </table>
            </ScrollTable>
        </section>
    }
    .into_any()
}
