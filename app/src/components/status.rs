//! A run's status, shown by text and colour (never colour alone).

use leptos::prelude::*;

/// The status name in a coloured badge. Unknown stored values get a neutral colour.
#[component]
pub fn StatusBadge(#[prop(into)] status: String) -> impl IntoView {
    let known = matches!(
        status.as_str(),
        "running" | "paused" | "completed" | "failed" | "cancelled"
    );
    let class = if known {
        format!("status status-{status}")
    } else {
        "status status-other".to_string()
    };
    view! { <span class=class>{status}</span> }
}
