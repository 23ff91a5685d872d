//! `/runs/{run_id}`: one run. (Placeholder.)

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

/// One run's details.
#[component]
pub fn RunPage() -> impl IntoView {
    let params = use_params_map();
    let run_id = move || params.read().get("run_id").unwrap_or_default();
    view! {
        <Title text="Run"/>
        <h1>"Run " <code>{run_id}</code></h1>
        <p class="placeholder">"The run page is not built yet."</p>
    }
}
