//! `/`: what is in the database right now.

use crate::components::PageTitle;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::components::{ErrorPage, StatusBadge};
use crate::format::{count, duration_ms, run_href, runs_with_status, url_encode};
use crate::model::{ActivityRow, Chart, Overview, PipelinePercentiles, StuckFigures};
use crate::server::get_overview;
use crate::spans::{StuckThreshold, Window};

/// Seconds between two refreshes of the figures once the page is hydrated.
const REFRESH_SECONDS: u64 = 10;

/// How many stuck runs are listed at most (the server sends the longest idle).
const STUCK_SHOWN: usize = 10;

/// The Overview page: counts per status (each a link to the filtered runs list), total, runs created and failed
/// in the last 24 h, execution times, stuck runs (threshold from `?stuck=`), charts of activity and execution
/// times, and when the figures were read. Once hydrated the figures refresh every 10 s (pausable).
#[component]
pub fn OverviewPage() -> impl IntoView {
    let query = use_query_map();
    let stuck = move || query.with(|q| q.get(StuckThreshold::PARAM));
    let overview = Resource::new(stuck, get_overview);
    view! {
        <PageTitle text="Overview"/>
        <Suspense fallback=|| view! { <p class="loading">"Reading the figures…"</p> }>
            {move || Suspend::new(async move {
                let stuck = query.with_untracked(|q| q.get(StuckThreshold::PARAM));
                match overview.await {
                    Ok(figures) => view! { <LiveFigures initial=figures stuck/> }.into_any(),
                    Err(error) => view! { <ErrorPage error/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// The figures, refreshed in place every [`REFRESH_SECONDS`] once hydrated (unless paused, or the tab is
/// hidden). Without JavaScript this is the page as the server rendered it.
#[component]
fn LiveFigures(initial: Overview, stuck: Option<String>) -> AnyView {
    let figures = RwSignal::new(initial);
    let paused = RwSignal::new(false);
    let hydrated = RwSignal::new(false);
    let busy = RwSignal::new(false);
    let failure = RwSignal::new(None::<String>);

    // Effects run in the browser only: the refresh control appears once the page is hydrated.
    Effect::new(move |_| hydrated.set(true));
    Effect::new(move |_| {
        let stuck = stuck.clone();
        let tick = move || {
            let hidden = document().hidden();
            if hidden || paused.get_untracked() || busy.get_untracked() {
                return;
            }
            busy.set(true);
            let stuck = stuck.clone();
            leptos::task::spawn_local(async move {
                let result = get_overview(stuck).await;
                // The page may have been left meanwhile: its signals are then gone.
                match result {
                    Ok(next) => {
                        let _ = figures.try_set(next);
                        let _ = failure.try_set(None);
                    }
                    Err(error) => {
                        let _ = failure.try_set(Some(error.to_string()));
                    }
                }
                let _ = busy.try_set(false);
            });
        };
        if let Ok(handle) = set_interval_with_handle(tick, std::time::Duration::from_secs(REFRESH_SECONDS)) {
            on_cleanup(move || handle.clear());
        }
    });

    let read_at = move || figures.with(|f| f.read_at.clone());
    view! {
        <div class="overview-head">
            <h1>"Overview"</h1>
            <p class="read-at">
                "Figures read at "
                <time datetime=read_at data-testid="read-at">{move || utc_label(&read_at())}</time>
            </p>
            <Show when=move || hydrated.get()>
                <RefreshControl paused busy failure/>
            </Show>
        </div>
        {move || figures.with(|f| view! { <Figures figures=f.clone()/> })}
    }
    .into_any()
}

/// Pause / resume of the automatic refresh, with its state in words.
#[component]
fn RefreshControl(
    paused: RwSignal<bool>,
    busy: RwSignal<bool>,
    failure: RwSignal<Option<String>>,
) -> AnyView {
    let state = move || {
        if paused.get() {
            "Auto-refresh paused".to_string()
        } else if busy.get() {
            "Refreshing…".to_string()
        } else {
            format!("Auto-refresh on: every {REFRESH_SECONDS} s")
        }
    };
    view! {
        <div class="auto-refresh" role="group" aria-label="Auto-refresh">
            <span class="refresh-state" data-testid="refresh-state" data-paused=move || paused.get().to_string()>
                {state}
            </span>
            <button type="button" class="quiet-button" on:click=move |_| paused.update(|p| *p = !*p)>
                {move || if paused.get() { "Resume auto-refresh" } else { "Pause auto-refresh" }}
            </button>
            {move || failure.get().map(|reason| view! {
                <span class="refresh-error" role="status">"Could not refresh: " {reason}</span>
            })}
        </div>
    }
    .into_any()
}

#[component]
fn Figures(figures: Overview) -> AnyView {
    let Overview {
        total,
        recent_24h,
        statuses,
        average_execution_ms,
        failed_24h,
        percentiles,
        stuck,
        chart_statuses,
        hourly,
        daily,
        by_pipeline,
        charts,
        read_at: _,
    } = figures;
    let rows = statuses
        .into_iter()
        .map(|s| {
            let href = runs_with_status(&s.status);
            let label = format!("{} {} runs", count(s.count), s.status);
            view! {
                <li class="status-count" data-status=s.status.clone()>
                    <a href=href aria-label=label>
                        <StatusBadge status=s.status.clone()/>
                        <span class="figure" data-value=s.count>{count(s.count)}</span>
                    </a>
                </li>
            }
        })
        .collect_view();
    let ms = |v: Option<f64>| v.map(duration_ms).unwrap_or_else(|| "no data".into());
    let failures_href = format!("/failures?{}", Window::default().query());
    let stuck_count = stuck.count;
    let stuck_class = if stuck_count > 0 {
        "figure-card figure-card-warn"
    } else {
        "figure-card"
    };
    view! {
        <section aria-labelledby="totals-heading">
            <h2 id="totals-heading">"Runs"</h2>
            <dl class="figures">
                <div class="figure-card">
                    <dt>"Total"</dt>
                    <dd><a href="/runs" class="figure" data-testid="total" data-value=total>{count(total)}</a></dd>
                </div>
                <div class="figure-card">
                    <dt>"Created in the last 24 h"</dt>
                    <dd><span class="figure" data-testid="recent-24h" data-value=recent_24h>{count(recent_24h)}</span></dd>
                </div>
                <div class="figure-card">
                    <dt>"Failed in the last 24 h"</dt>
                    <dd>
                        <a href=failures_href class="figure" data-testid="failed-24h" data-value=failed_24h
                            aria-label=format!("{} failed in the last 24 h: see the failures", count(failed_24h))>
                            {count(failed_24h)}
                        </a>
                    </dd>
                </div>
                <div class=stuck_class>
                    <dt>{format!("Stuck (idle > {})", stuck.threshold_label)}</dt>
                    <dd>
                        <a href="#stuck" class="figure" data-testid="stuck-count" data-value=stuck_count
                            aria-label=format!("{} stuck runs: see the list", count(stuck_count))>
                            {count(stuck_count)}
                        </a>
                    </dd>
                </div>
            </dl>
        </section>
        <section aria-labelledby="status-heading">
            <h2 id="status-heading">"By status"</h2>
            <ul class="status-counts">{rows}</ul>
        </section>
        <section aria-labelledby="times-heading">
            <h2 id="times-heading">"Execution time"</h2>
            <dl class="figures figures-compact">
                <div class="figure-card">
                    <dt>"Average"</dt>
                    <dd><span class="figure" data-testid="average-execution">{ms(average_execution_ms)}</span></dd>
                </div>
                <div class="figure-card">
                    <dt>"p50 (median)"</dt>
                    <dd><span class="figure" data-testid="p50">{ms(percentiles.p50)}</span></dd>
                </div>
                <div class="figure-card">
                    <dt>"p95"</dt>
                    <dd><span class="figure" data-testid="p95">{ms(percentiles.p95)}</span></dd>
                </div>
                <div class="figure-card">
                    <dt>"p99"</dt>
                    <dd><span class="figure" data-testid="p99">{ms(percentiles.p99)}</span></dd>
                </div>
            </dl>
            <p class="hint">
                {format!(
                    "Over the {} runs that have an execution time (nearest-rank percentiles{}).",
                    count(percentiles.count),
                    precision(percentiles.relative_error),
                )}
            </p>
        </section>
        <StuckSection stuck/>
        <section aria-labelledby="activity-heading">
            <h2 id="activity-heading">"Activity"</h2>
            <StatusLegend statuses=chart_statuses.clone()/>
            <ActivityFigure
                heading="Runs per hour, last 24 hours"
                chart=charts.hourly
                rows=hourly
                statuses=chart_statuses.clone()
                first_column="Hour (UTC)"
                testid="chart-hourly"
            />
            <ActivityFigure
                heading="Runs per day, last 30 days"
                chart=charts.daily
                rows=daily
                statuses=chart_statuses
                first_column="Day (UTC)"
                testid="chart-daily"
            />
        </section>
        <PercentileSection chart=charts.percentiles rows=by_pipeline/>
    }
    .into_any()
}

/// The stuck runs: threshold (with a form to change it), count, and the longest idle with links.
#[component]
fn StuckSection(stuck: StuckFigures) -> AnyView {
    let StuckFigures {
        threshold,
        threshold_label,
        idle_since,
        count: n,
        runs,
    } = stuck;
    let all_href = format!(
        "/runs?status=running&status=paused&updated_before={}",
        url_encode(&idle_since.rfc3339)
    );
    let shown = runs.len().min(STUCK_SHOWN);
    let rows = runs
        .into_iter()
        .take(STUCK_SHOWN)
        .map(|r| {
            let href = run_href(&r.run_id);
            // The same numbering as the run page and the CLI: 1-based, never past the total.
            let step = crate::model::step_text(r.step, r.total_steps);
            view! {
                <tr>
                    <td data-label="Run"><a href=href class="run-ref">{r.run_id.clone()}</a></td>
                    <td data-label="Pipeline">{r.pipeline_id}</td>
                    <td data-label="Status"><StatusBadge status=r.status/></td>
                    <td data-label="Step">{step}</td>
                    <td data-label="Last update">
                        {match r.updated {
                            Some(u) => view! {
                                <time datetime=u.rfc3339>{u.utc}</time>
                                <span class="relative">{format!(" ({})", u.relative)}</span>
                            }.into_any(),
                            None => view! { <span>"unknown"</span> }.into_any(),
                        }}
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <section aria-labelledby="stuck-heading" id="stuck" class="stuck">
            <h2 id="stuck-heading">"Stuck runs"</h2>
            <p>
                "Running or paused runs with no update for more than "
                <strong data-testid="stuck-threshold">{threshold_label.clone()}</strong>
                " (last update before "
                <time datetime=idle_since.rfc3339.clone()>{idle_since.utc.clone()}</time>
                "): "
                <strong data-testid="stuck-total" data-value=n>{count(n)}</strong>
                "."
            </p>
            <form method="get" action="/" class="inline-form">
                <label for="stuck-threshold-input">"Stuck after"</label>
                <input
                    id="stuck-threshold-input"
                    name=StuckThreshold::PARAM
                    value=threshold
                    size="6"
                    pattern="[0-9]+ ?([mM]|[mM][iI][nN]|[hH]|[dD])"
                    aria-describedby="stuck-threshold-hint"
                />
                <button type="submit" class="quiet-button">"Apply"</button>
                <span id="stuck-threshold-hint" class="hint">"A whole number and m, h or d: 30m, 2h, 1d."</span>
            </form>
            {if n == 0 {
                view! { <p class="empty">"No run is stuck."</p> }.into_any()
            } else {
                view! {
                    <div class="data-scroll">
                        <table class="data-table stack-on-phone" data-testid="stuck-runs">
                            <caption>
                                {if (n as usize) > shown {
                                    format!("The {shown} longest idle of {}", count(n))
                                } else {
                                    "Longest idle first".to_string()
                                }}
                            </caption>
                            <thead>
                                <tr>
                                    <th scope="col">"Run"</th>
                                    <th scope="col">"Pipeline"</th>
                                    <th scope="col">"Status"</th>
                                    <th scope="col">"Step"</th>
                                    <th scope="col">"Last update"</th>
                                </tr>
                            </thead>
                            <tbody>{rows}</tbody>
                        </table>
                    </div>
                    <p><a href=all_href>"All stuck runs in the runs list"</a></p>
                }.into_any()
            }}
        </section>
    }
    .into_any()
}

/// The status colours of the stacked charts, in words (colour is never the only cue).
#[component]
fn StatusLegend(statuses: Vec<String>) -> impl IntoView {
    let items = statuses
        .into_iter()
        .map(|s| {
            view! {
                <li>
                    <span class=format!("swatch swatch-{s}") aria-hidden="true"></span>
                    {s}
                </li>
            }
        })
        .collect_view();
    view! {
        <div class="chart-legend">
            <span class="legend-title">"Stacked by status, bottom to top:"</span>
            <ul>{items}</ul>
        </div>
    }
}

/// One stacked activity chart with its data as a table.
#[component]
fn ActivityFigure(
    heading: &'static str,
    chart: Chart,
    rows: Vec<ActivityRow>,
    statuses: Vec<String>,
    first_column: &'static str,
    testid: &'static str,
) -> AnyView {
    let header = statuses
        .iter()
        .map(|s| view! { <th scope="col">{s.clone()}</th> })
        .collect_view();
    let body = rows
        .into_iter()
        .map(|r| {
            let cells = r
                .counts
                .iter()
                .map(|n| view! { <td>{count(*n)}</td> })
                .collect_view();
            view! {
                <tr>
                    <th scope="row"><time datetime=r.start>{r.label}</time></th>
                    {cells}
                    <td>{count(r.total)}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <figure class="chart" data-testid=testid>
            <figcaption><h3>{heading}</h3></figcaption>
            <ChartBody chart=chart.clone()/>
            <details class="chart-data">
                <summary>"The data as a table"</summary>
                <div class="data-scroll">
                    <table class="data-table">
                        <caption>{chart.summary}</caption>
                        <thead>
                            <tr>
                                <th scope="col">{first_column}</th>
                                {header}
                                <th scope="col">"Total"</th>
                            </tr>
                        </thead>
                        <tbody>{body}</tbody>
                    </table>
                </div>
            </details>
        </figure>
    }
    .into_any()
}

/// The server's SVG, inlined; the summary in words when no chart could be drawn.
#[component]
fn ChartBody(chart: Chart) -> impl IntoView {
    if chart.svg.is_empty() {
        view! { <p class="empty">{chart.summary}</p> }.into_any()
    } else {
        view! { <div class="chart-scroll" inner_html=chart.svg></div> }.into_any()
    }
}

/// Execution-time percentiles per pipeline: the dot plot, its legend, and its data.
#[component]
fn PercentileSection(chart: Chart, rows: Vec<PipelinePercentiles>) -> AnyView {
    let ms = |v: Option<f64>| v.map(duration_ms).unwrap_or_else(|| "—".into());
    let body = rows
        .into_iter()
        .map(|r| {
            let p = r.percentiles;
            view! {
                <tr>
                    <th scope="row">{r.pipeline_id}</th>
                    <td>{count(p.count)}</td>
                    <td>{ms(p.p50)}</td>
                    <td>{ms(p.p95)}</td>
                    <td>{ms(p.p99)}</td>
                    <td>{ms(p.max)}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <section aria-labelledby="pipeline-times-heading">
            <h2 id="pipeline-times-heading">"Execution time by pipeline"</h2>
            <figure class="chart" data-testid="chart-percentiles">
                <figcaption>
                    <div class="chart-legend">
                        <span class="legend-title">"Logarithmic time axis. Markers:"</span>
                        <ul>
                            <li><span class="marker marker-p50" aria-hidden="true">"●"</span>"p50 (median)"</li>
                            <li><span class="marker marker-p95" aria-hidden="true">"▲"</span>"p95"</li>
                            <li><span class="marker marker-p99" aria-hidden="true">"✕"</span>"p99"</li>
                        </ul>
                    </div>
                </figcaption>
                <ChartBody chart=chart.clone()/>
                <details class="chart-data">
                    <summary>"The data as a table"</summary>
                    <div class="data-scroll">
                        <table class="data-table">
                            <caption>{chart.summary}</caption>
                            <thead>
                                <tr>
                                    <th scope="col">"Pipeline"</th>
                                    <th scope="col">"Runs timed"</th>
                                    <th scope="col">"p50"</th>
                                    <th scope="col">"p95"</th>
                                    <th scope="col">"p99"</th>
                                    <th scope="col">"Longest"</th>
                                </tr>
                            </thead>
                            <tbody>{body}</tbody>
                        </table>
                    </div>
                </details>
            </figure>
        </section>
    }
    .into_any()
}

/// How close approximate percentiles are: `, each within ±3.1 %` (nothing for exact ones).
fn precision(relative_error: f64) -> String {
    if relative_error > 0.0 {
        format!(", each within ±{:.1} %", relative_error * 100.0)
    } else {
        String::new()
    }
}

/// `2026-11-27T10:35:25Z` → `2026-11-27 10:35:25 UTC`.
fn utc_label(rfc3339: &str) -> String {
    rfc3339.replace('T', " ").replace('Z', " UTC")
}
