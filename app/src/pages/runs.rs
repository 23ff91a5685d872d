//! `/runs`: the runs list. (Placeholder: filters and keyset pages come with issue 3's Runs page.)

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

/// The runs list.
#[component]
pub fn RunsPage() -> impl IntoView {
    let query = use_query_map();
    let status = move || query.read().get("status");
    view! {
        <Title text="Runs"/>
        <h1>"Runs"</h1>
        {move || status().map(|s| view! { <p class="filter-summary">"Status: " <strong data-testid="status-filter">{s}</strong></p> })}
        <p class="placeholder">"The runs list is not built yet."</p>
    }
}
