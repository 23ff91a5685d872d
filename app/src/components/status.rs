//! A run's status, shown by text and colour (never colour alone).

use flowstate_model::Status;
use leptos::prelude::*;

/// The status name in a coloured badge. Unknown stored values (and NULL) get the neutral `other` colour.
#[component]
pub fn StatusBadge(#[prop(into)] status: String) -> impl IntoView {
    let class = format!("status status-{}", Status::from_name(&status).group());
    view! { <span class=class>{status}</span> }
}
