//! `/pipelines`: which pipeline fails most, and is it getting worse. Per pipeline over a window (`?window=3h`,
//! any span from `1m` to `365d`, or `?since=<instant>`; 24 h by default): runs, completed, failed, the failure
//! rate of finished runs, execution-time mean and percentiles, memory, the newest run; every number links to the
//! runs behind it. Below, the trend of one pipeline (`?pipeline=`) or all over `?days=7|30|90`, against the
//! period before, drawn on the server with its data as a table and a regression named in words.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::components::{ErrorPage, PageTitle, ScrollTable, UnknownParams, WindowPicker};
use crate::format::{count, duration_ms, percent, run_href, url_encode};
use crate::model::{Chart, Stamp};
use crate::server::pipelines::{
    get_pipelines, PeriodView, PipelineRow, Pipelines, TrendView, DAYS_PARAM, PIPELINE_PARAM, TREND_DAYS,
};
use crate::spans::Window;

/// The Pipelines page.
#[component]
pub fn PipelinesPage() -> impl IntoView {
    let query = use_query_map();
    let params = move || {
        query.with(|q| {
            (
                q.get(Window::PARAM),
                q.get(Window::SINCE_PARAM),
                q.get(DAYS_PARAM),
                q.get(PIPELINE_PARAM),
            )
        })
    };
    let data = Resource::new(params, |(window, since, days, pipeline)| {
        get_pipelines(window, since, days, pipeline)
    });
    view! {
        <UnknownParams known=&[Window::PARAM, Window::SINCE_PARAM, DAYS_PARAM, PIPELINE_PARAM]/>
        <Suspense fallback=|| view! { <p class="loading">"Reading the pipelines…"</p> }>
            {move || Suspend::new(async move {
                match data.await {
                    Ok(p) => view! { <Page data=p/> }.into_any(),
                    Err(error) => view! { <PageTitle text="Pipelines"/><ErrorPage error/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// The page's own address with these choices (defaults left out).
fn page_href(window: Window, days: u32, pipeline: Option<&str>) -> String {
    let mut parts: Vec<String> = Vec::new();
    if !window.is_default() {
        parts.push(window.query());
    }
    if days != TREND_DAYS[0] {
        parts.push(format!("{DAYS_PARAM}={days}"));
    }
    if let Some(p) = pipeline {
        parts.push(format!("{PIPELINE_PARAM}={}", url_encode(p)));
    }
    if parts.is_empty() {
        "/pipelines".into()
    } else {
        format!("/pipelines?{}", parts.join("&"))
    }
}

/// The runs behind a figure: the pipeline's runs last updated since the window's start, with `extra`.
fn runs_href(pipeline: &str, since: &Stamp, extra: &str) -> String {
    format!(
        "/runs?pipeline={}&updated_after={}{extra}",
        url_encode(pipeline),
        url_encode(&since.rfc3339)
    )
}

fn ms(v: Option<f64>) -> String {
    v.map(duration_ms).unwrap_or_else(|| "—".into())
}

fn mb(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() && v >= 100.0 => format!("{} MB", count(v.round() as i64)),
        Some(v) if v.is_finite() => format!("{v:.1} MB"),
        _ => "—".into(),
    }
}

fn rate(v: Option<f64>) -> String {
    v.map(percent).unwrap_or_else(|| "—".into())
}

#[component]
fn Page(data: Pipelines) -> AnyView {
    let Pipelines {
        window,
        since,
        rows,
        relative_error,
        trend,
        read_at,
    } = data;
    let title = match &trend.pipeline {
        Some(p) => format!(
            "Pipelines, {} · trend of {p} over {} days",
            window.label(),
            trend.days
        ),
        None => format!("Pipelines, {} · trend over {} days", window.label(), trend.days),
    };
    let total: i64 = rows.iter().map(|r| r.runs).sum();
    let failed: i64 = rows.iter().map(|r| r.failed).sum();
    let finished: i64 = rows.iter().map(|r| r.finished).sum();
    let overall = (finished > 0).then(|| failed as f64 / finished as f64);
    let days = trend.days;
    let trend_pipeline = trend.pipeline.clone();
    let names: Vec<String> = rows.iter().map(|r| r.pipeline_id.clone()).collect();
    view! {
        <PageTitle text=title/>
        <h1>"Pipelines"</h1>
        <p class="read-at">
            "Runs by their last update since "
            <time datetime=since.rfc3339.clone() data-testid="window-start">{since.utc.clone()}</time>
            {format!(" ({}, from the start of that hour). Read at ", window.label())}
            <time datetime=read_at.clone()>{read_at.replace('T', " ").replace('Z', " UTC")}</time>
        </p>
        <Picker current=window days pipeline=trend_pipeline.clone()/>
        <ul class="pl-cards" data-testid="pipeline-cards">
            <li class="pl-card"><span class="pl-card-label">"Pipelines"</span>
                <strong class="pl-card-value">{count(rows.len() as i64)}</strong></li>
            <li class="pl-card"><span class="pl-card-label">"Runs"</span>
                <strong class="pl-card-value" data-testid="total-runs">{count(total)}</strong></li>
            <li class="pl-card"><span class="pl-card-label">"Failed"</span>
                <strong class="pl-card-value">{count(failed)}</strong></li>
            <li class="pl-card"><span class="pl-card-label">"Failed of finished"</span>
                <strong class="pl-card-value">{rate(overall)}</strong></li>
        </ul>
        <Table rows since relative_error window/>
        <Trend trend window names/>
    }
    .into_any()
}

/// The window picker (the shared [`WindowPicker`], as on the Failures page), keeping the trend's choices.
#[component]
fn Picker(current: Window, days: u32, pipeline: Option<String>) -> AnyView {
    let mut hidden = Vec::new();
    if days != TREND_DAYS[0] {
        hidden.push((DAYS_PARAM, days.to_string()));
    }
    if let Some(p) = &pipeline {
        hidden.push((PIPELINE_PARAM, p.clone()));
    }
    view! {
        <WindowPicker
            action="/pipelines"
            current
            href=move |w| page_href(w, days, pipeline.as_deref())
            hidden
        />
    }
    .into_any()
}

#[component]
fn Table(rows: Vec<PipelineRow>, since: Stamp, relative_error: f64, window: Window) -> AnyView {
    if rows.is_empty() {
        return view! {
            <section aria-labelledby="per-pipeline">
                <h2 id="per-pipeline">"Per pipeline"</h2>
                <p class="empty">{format!("No run was updated {}.", window.phrase())}</p>
            </section>
        }
        .into_any();
    }
    let body = rows
        .into_iter()
        .map(|r| {
            let p = r.pipeline_id.clone();
            let link = |n: String, extra: &str| view! { <a href=runs_href(&p, &since, extra)>{n}</a> }.into_any();
            let slow = "&sort=slowest";
            let heavy = "&sort=heaviest";
            let last = r.last_run.clone().map(|(id, at)| {
                view! {
                    <a class="run-ref" href=run_href(&id)>{id.clone()}</a>
                    {at.map(|s| view! { <br/><time datetime=s.rfc3339>{s.utc}</time> })}
                }
                .into_any()
            });
            let name_href = format!("/runs?pipeline={}", url_encode(&p));
            let shown = if p.is_empty() { "(none)".to_string() } else { p.clone() };
            view! {
                <tr data-pipeline=p.clone()>
                    <th scope="row"><a href=name_href>{shown}</a></th>
                    <td class="num">{link(count(r.runs), "")}</td>
                    <td class="num">{link(count(r.completed), "&status=completed")}</td>
                    <td class="num">{link(count(r.failed), "&status=failed")}</td>
                    <td class="num">{link(count(r.cancelled), "&status=cancelled")}</td>
                    <td class="num">{link(count(r.live), "&status=running,paused")}</td>
                    <td class="num" data-testid="failure-rate">{link(rate(r.failure_rate), "&status=failed")}</td>
                    <td class="num">{link(ms(r.avg_ms), slow)}</td>
                    <td class="num">{link(ms(r.p50_ms), slow)}</td>
                    <td class="num">{link(ms(r.p95_ms), slow)}</td>
                    <td class="num">{link(ms(r.p99_ms), slow)}</td>
                    <td class="num">{link(mb(r.avg_mb), heavy)}</td>
                    <td class="num">{link(mb(r.max_mb), heavy)}</td>
                    <td>{last}</td>
                </tr>
            }
            .into_any()
        })
        .collect_view();
    view! {
        <section aria-labelledby="per-pipeline">
            <h2 id="per-pipeline">"Per pipeline"</h2>
            <ScrollTable label="Pipelines">
                <table class="data-table pipelines-table" data-testid="pipelines-table">
                    <thead>
                        <tr>
                            <th scope="col">"Pipeline"</th>
                            <th scope="col" class="num">"Runs"</th>
                            <th scope="col" class="num">"Completed"</th>
                            <th scope="col" class="num">"Failed"</th>
                            <th scope="col" class="num">"Cancelled"</th>
                            <th scope="col" class="num">"Running/paused"</th>
                            <th scope="col" class="num">"Failed of finished"</th>
                            <th scope="col" class="num">"Mean time"</th>
                            <th scope="col" class="num">"p50"</th>
                            <th scope="col" class="num">"p95"</th>
                            <th scope="col" class="num">"p99"</th>
                            <th scope="col" class="num">"Mean memory"</th>
                            <th scope="col" class="num">"Max memory"</th>
                            <th scope="col">"Newest run"</th>
                        </tr>
                    </thead>
                    <tbody>{body}</tbody>
                </table>
            </ScrollTable>
            <p class="hint">
                {format!(
                    "Most failures first. The failure rate counts finished runs only (completed, failed, cancelled); \
                     running and paused runs are not in it. Percentiles and the maximum memory come from histograms, \
                     within {:.1} % of the exact value; means are exact. The newest run is the pipeline's newest by \
                     creation, whatever the window. Each number opens the runs behind it.",
                    relative_error * 100.0
                )}
            </p>
        </section>
    }
    .into_any()
}

/// A change between periods in words: `+200 %`, `−50 %`, `new`, `—`.
fn change(now: Option<f64>, before: Option<f64>) -> String {
    match (now, before) {
        (Some(n), Some(b)) if b > 0.0 => {
            let c = (n / b - 1.0) * 100.0;
            if c >= 0.0 {
                format!("+{c:.0} %")
            } else {
                format!("−{:.0} %", -c)
            }
        }
        (Some(n), Some(_)) if n > 0.0 => "up from 0".into(),
        (Some(_), Some(_)) => "0".into(),
        _ => "—".into(),
    }
}

#[component]
fn Trend(trend: TrendView, window: Window, names: Vec<String>) -> AnyView {
    let TrendView {
        pipeline,
        days,
        statuses,
        rows,
        current,
        previous,
        rate_regression,
        p95_regression,
        relative_error,
        runs_chart,
        rate_chart,
        p95_chart,
    } = trend;
    let subject = pipeline.clone().unwrap_or_else(|| "all pipelines".into());
    let day_links = TREND_DAYS
        .into_iter()
        .map(|d| {
            let here = d == days;
            view! {
                <li>
                    <a href=page_href(window, d, pipeline.as_deref())
                        aria-current=here.then_some("page")
                        class=if here { "segment segment-current" } else { "segment" }>
                        {format!("{d} days")}
                    </a>
                </li>
            }
        })
        .collect_view();
    let mut choices = names;
    if let Some(p) = &pipeline {
        if !choices.contains(p) {
            choices.push(p.clone());
        }
    }
    let options = choices
        .into_iter()
        .map(|n| {
            let selected = pipeline.as_deref() == Some(n.as_str());
            let shown = if n.is_empty() {
                "(none)".to_string()
            } else {
                n.clone()
            };
            view! { <option value=n selected=selected>{shown}</option> }
        })
        .collect_view();
    let regressions: Vec<String> = [
        rate_regression.then(|| {
            format!(
                "Regression: the failure rate of finished runs rose from {} to {} ({}).",
                rate(previous.failure_rate),
                rate(current.failure_rate),
                change(current.failure_rate, previous.failure_rate)
            )
        }),
        p95_regression.then(|| {
            format!(
                "Regression: the p95 execution time rose from {} to {} ({}).",
                ms(previous.p95_ms),
                ms(current.p95_ms),
                change(current.p95_ms, previous.p95_ms)
            )
        }),
    ]
    .into_iter()
    .flatten()
    .collect();
    let verdict = if regressions.is_empty() {
        view! {
            <p class="note" role="note" data-testid="no-regression">
                {format!("No regression: neither the failure rate nor the p95 rose by half or more on the previous {days} days.")}
            </p>
        }
        .into_any()
    } else {
        view! {
            <div class="note note-warn" role="note" data-testid="regression">
                {regressions.into_iter().map(|r| view! { <p><strong>"⚠ "</strong>{r}</p> }).collect_view()}
            </div>
        }
        .into_any()
    };
    let period_row = |name: &'static str, p: &PeriodView| {
        view! {
            <tr>
                <th scope="row">{name}<br/><span class="muted">{format!("{} – {}", p.from, p.to)}</span></th>
                <td class="num">{count(p.runs)}</td>
                <td class="num">{count(p.finished)}</td>
                <td class="num">{count(p.failed)}</td>
                <td class="num">{rate(p.failure_rate)}</td>
                <td class="num">{ms(p.p95_ms)}</td>
            </tr>
        }
        .into_any()
    };
    let head_cells = statuses
        .iter()
        .map(|s| view! { <th scope="col" class="num">{s.clone()}</th> })
        .collect_view();
    let day_rows = rows
        .iter()
        .map(|r| {
            let cells = r
                .counts
                .iter()
                .map(|n| view! { <td class="num">{count(*n)}</td> })
                .collect_view();
            view! {
                <tr>
                    <th scope="row">{r.day.clone()}</th>
                    <td class="num">{count(r.runs)}</td>
                    {cells}
                    <td class="num">{rate(r.failure_rate)}</td>
                    <td class="num">{ms(r.p95_ms)}</td>
                </tr>
            }
            .into_any()
        })
        .collect_view();
    let legend = statuses
        .iter()
        .map(|s| view! { <li><span class=format!("swatch swatch-{s}")></span>{s.clone()}</li> })
        .collect_view();
    view! {
        <section aria-labelledby="trend-heading" data-testid="trend">
            <h2 id="trend-heading">{format!("Trend of {subject} over {days} days")}</h2>
            <nav class="window-picker" aria-label="Trend period"><ul>{day_links}</ul></nav>
            <form class="window-form" method="get" action="/pipelines" data-testid="trend-form">
                {(!window.is_default()).then(|| view! { <input type="hidden" name=window.param_name() value=window.as_param()/> })}
                {(days != TREND_DAYS[0]).then(|| view! { <input type="hidden" name=DAYS_PARAM value=days.to_string()/> })}
                <label>
                    "Pipeline "
                    <select name=PIPELINE_PARAM>
                        <option value="" selected=pipeline.is_none()>"All pipelines"</option>
                        {options}
                    </select>
                </label>
                <button type="submit">"Show"</button>
            </form>
            {verdict}
            <ScrollTable label="This period against the previous one">
                <table class="data-table" data-testid="periods">
                    <thead>
                        <tr>
                            <th scope="col">"Period"</th>
                            <th scope="col" class="num">"Runs"</th>
                            <th scope="col" class="num">"Finished"</th>
                            <th scope="col" class="num">"Failed"</th>
                            <th scope="col" class="num">"Failed of finished"</th>
                            <th scope="col" class="num">"p95"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {period_row("This period", &current)}
                        {period_row("Previous period", &previous)}
                        <tr>
                            <th scope="row">"Change"</th>
                            <td class="num">{change(Some(current.runs as f64), Some(previous.runs as f64))}</td>
                            <td class="num">{change(Some(current.finished as f64), Some(previous.finished as f64))}</td>
                            <td class="num">{change(Some(current.failed as f64), Some(previous.failed as f64))}</td>
                            <td class="num">
                                {change(current.failure_rate, previous.failure_rate)}
                                {rate_regression.then_some(" (regression)")}
                            </td>
                            <td class="num">
                                {change(current.p95_ms, previous.p95_ms)}
                                {p95_regression.then_some(" (regression)")}
                            </td>
                        </tr>
                    </tbody>
                </table>
            </ScrollTable>
            <figure class="chart" data-testid="trend-runs-chart">
                <figcaption><h3>"Runs per day, by status"</h3></figcaption>
                <div class="chart-legend"><span class="legend-title">"Status:"</span><ul>{legend}</ul></div>
                <ChartBody chart=runs_chart/>
            </figure>
            <figure class="chart" data-testid="trend-rate-chart">
                <figcaption><h3>"Failure rate of finished runs per day"</h3>
                    <p class="hint">"The dashed line is the previous period's rate."</p></figcaption>
                <ChartBody chart=rate_chart/>
            </figure>
            <figure class="chart" data-testid="trend-p95-chart">
                <figcaption><h3>"p95 execution time per day"</h3>
                    <p class="hint">"The dashed line is the previous period's p95."</p></figcaption>
                <ChartBody chart=p95_chart/>
            </figure>
            <h3>"The data, per day"</h3>
            <ScrollTable label="Trend per day">
                <table class="data-table" data-testid="trend-table">
                    <thead>
                        <tr>
                            <th scope="col">"Day (UTC)"</th>
                            <th scope="col" class="num">"Runs"</th>
                            {head_cells}
                            <th scope="col" class="num">"Failed of finished"</th>
                            <th scope="col" class="num">"p95"</th>
                        </tr>
                    </thead>
                    <tbody>{day_rows}</tbody>
                </table>
            </ScrollTable>
            <p class="hint" data-testid="trend-precision">
                {format!(
                    "Counts and failure rates are exact. Each p95 comes from a day's histogram, within {:.1} % of \
                     the exact value.",
                    relative_error * 100.0
                )}
            </p>
        </section>
    }
    .into_any()
}

/// The server's SVG, inlined; the summary in words when no chart could be drawn.
#[component]
fn ChartBody(chart: Chart) -> impl IntoView {
    let summary = chart.summary.clone();
    if chart.svg.is_empty() {
        view! { <p class="empty">{summary}</p> }.into_any()
    } else {
        view! {
            <div class="chart-scroll" inner_html=chart.svg></div>
            <p class="visually-hidden">{summary}</p>
        }
        .into_any()
    }
}
