//! The error page: words for the operator, and the HTTP status set on the server's response.

use crate::components::PageTitle;
use leptos::prelude::*;

use crate::error::AppError;

/// Shows `error` and, when rendered on the server, sets the response's status to match (400, 404, 500, ...).
///
/// Use it inside a page's `Suspense` for the `Err` of its resource; with `SsrMode::Async` the status is set
/// before the response leaves.
#[component]
pub fn ErrorPage(error: AppError) -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(
            http::StatusCode::from_u16(error.status()).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR),
        );
    }
    let status = error.status();
    let title = error.title();
    let hint = match &error {
        AppError::BadRequest { .. } => Some("Fix the value in the address bar or the form and try again."),
        AppError::NotFound { .. } => {
            Some("It may have been deleted by a cleanup, or the address is mistyped.")
        }
        AppError::Busy | AppError::Transport { .. } => Some("Reload the page to try again."),
        _ => None,
    };
    view! {
        <PageTitle text=format!("{title} ({status})")/>
        <section class="error-page" role="alert" data-status=status>
            <h1>{title} <span class="error-code">{format!(" ({status})")}</span></h1>
            <p>{error.to_string()}</p>
            {hint.map(|h| view! { <p class="hint">{h}</p> })}
            <p>
                <a href="/">"Back to the overview"</a>
            </p>
        </section>
    }
}

/// The page for a path no route matches (404).
#[component]
pub fn NotFoundPage() -> impl IntoView {
    let path = leptos_router::hooks::use_location().pathname.get_untracked();
    view! { <ErrorPage error=AppError::not_found(format!("page at “{path}”"))/> }
}
