//! `/failures`: failures grouped by error signature. (Placeholder.)

use leptos::prelude::*;
use leptos_meta::Title;

/// Failure triage.
#[component]
pub fn FailuresPage() -> impl IntoView {
    view! {
        <Title text="Failures"/>
        <h1>"Failures"</h1>
        <p class="placeholder">"The failures page is not built yet."</p>
    }
}
