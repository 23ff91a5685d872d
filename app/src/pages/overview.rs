//! `/`: what is in the database right now.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::{ErrorPage, StatusBadge};
use crate::format::{count, duration_ms, runs_with_status};
use crate::model::Overview;
use crate::server::get_overview;

/// The Overview page: counts per status (each a link to the filtered runs list), total, runs created in the
/// last 24 h, mean execution time, and when the figures were read.
#[component]
pub fn OverviewPage() -> impl IntoView {
    let overview = Resource::new(|| (), |_| get_overview());
    view! {
        <Title text="Overview"/>
        <Suspense fallback=|| view! { <p class="loading">"Reading the figures…"</p> }>
            {move || Suspend::new(async move {
                match overview.await {
                    Ok(figures) => view! { <Figures figures/> }.into_any(),
                    Err(error) => view! { <ErrorPage error/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Figures(figures: Overview) -> impl IntoView {
    let Overview {
        total,
        recent_24h,
        statuses,
        average_execution_ms,
        read_at,
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
    view! {
        <h1>"Overview"</h1>
        <p class="read-at">
            "Figures read at " <time datetime=read_at.clone()>{read_at.replace('T', " ").replace('Z', " UTC")}</time>
        </p>
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
                    <dt>"Average execution time"</dt>
                    <dd>
                        <span class="figure" data-testid="average-execution">
                            {average_execution_ms.map(duration_ms).unwrap_or_else(|| "no data".into())}
                        </span>
                    </dd>
                </div>
            </dl>
        </section>
        <section aria-labelledby="status-heading">
            <h2 id="status-heading">"By status"</h2>
            <ul class="status-counts">{rows}</ul>
        </section>
    }
}
