//! Previous / next links of a keyset-paged list.

use leptos::prelude::*;

/// "Newest", "Newer" and "Older" links; a missing address shows the step as unavailable (text, not a link).
#[component]
pub fn Pager(
    /// The first page, when this is not it.
    newest: Option<String>,
    /// The previous (newer) page.
    newer: Option<String>,
    /// The next (older) page.
    older: Option<String>,
) -> impl IntoView {
    let step = |href: Option<String>, label: &'static str, rel: Option<&'static str>| match href {
        Some(href) => view! { <a href=href rel=rel class="pager-link">{label}</a> }.into_any(),
        None => view! { <span class="pager-link pager-off" aria-disabled="true">{label}</span> }.into_any(),
    };
    view! {
        <nav class="pager" aria-label="Pages">
            <ul>
                <li>{step(newest, "« Newest", None)}</li>
                <li>{step(newer, "‹ Newer", Some("prev"))}</li>
                <li>{step(older, "Older ›", Some("next"))}</li>
            </ul>
        </nav>
    }
}
