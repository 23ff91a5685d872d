//! The run page's way through the list it was opened from (`?list=/runs?…`): the previous and next runs of that
//! list (same filters, same order) and the way back to it.

use leptos::prelude::*;

use crate::model::ListNeighbours;

/// "‹ Previous run", "Next run ›" and "Back to the list" for the list the run was opened from.
#[component]
pub fn RunNav(neighbours: ListNeighbours) -> impl IntoView {
    let ListNeighbours {
        list_href,
        list_label,
        prev,
        next,
        listed,
    } = neighbours;
    let step = |run: Option<(String, String)>,
                label: &'static str,
                rel: &'static str,
                testid: &'static str| match run {
        Some((id, href)) => view! {
            <a href=href rel=rel class="pager-link" data-testid=testid title=id>{label}</a>
        }
        .into_any(),
        None => view! {
            <span class="pager-link pager-off" aria-disabled="true" data-testid=testid>{label}</span>
        }
        .into_any(),
    };
    view! {
        <nav class="run-nav" aria-label="Runs of the list" data-testid="run-nav">
            {step(prev, "‹ Previous run", "prev", "run-prev")}
            {step(next, "Next run ›", "next", "run-next")}
            <a href=list_href class="pager-link" data-testid="run-list">{format!("Back to the list ({list_label})")}</a>
            {(!listed).then(|| view! { <span class="hint">"This run is not in that list (any more)."</span> })}
        </nav>
    }
}
