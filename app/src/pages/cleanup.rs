//! `/cleanup`: the guarded cleanup. (Placeholder.)

use leptos::prelude::*;
use leptos_meta::Title;

/// Cleanup of old runs.
#[component]
pub fn CleanupPage() -> impl IntoView {
    view! {
        <Title text="Cleanup"/>
        <h1>"Cleanup"</h1>
        <p class="placeholder">"The cleanup page is not built yet."</p>
    }
}
