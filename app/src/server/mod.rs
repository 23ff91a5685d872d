//! Server functions: one per resource and action, each a public HTTP endpoint under `/api/<endpoint>`.
//!
//! Endpoints are named (`#[server(endpoint = "...")]`) so their URLs are stable for tests and CSRF checks.
//! Every function that changes something checks its guards itself, on the server ([`security::require_change`]):
//! a server function is a public endpoint, and hiding a button is not security.

pub mod cleanup;
pub mod failures;
#[cfg(feature = "ssr")]
pub mod limits;
pub mod overview;
pub mod pipelines;
pub mod runs;
pub mod runs_delete;
pub mod security;
pub mod session;
pub mod settings;

pub use cleanup::{cleanup_options, preview_cleanup, run_cleanup};
pub use failures::get_failures;
pub use overview::get_overview;
pub use pipelines::get_pipelines;
pub use runs::{get_run, list_runs, run_neighbours};
pub use runs_delete::delete_run;
pub use session::{get_access, login, logout};
pub use settings::get_settings;

#[cfg(feature = "ssr")]
pub use ssr::*;

#[cfg(feature = "ssr")]
mod ssr {
    use flowstate_store::Store;
    use http::request::Parts;
    use leptos::prelude::use_context;

    use crate::error::AppError;
    use crate::model::Settings;

    /// The store handle the binary provided to this request (`leptos_routes_with_context`).
    ///
    /// Returns [`AppError::Internal`] (and logs why) when it is missing: that is a wiring bug, not an input.
    /// `AppError` converts into `ServerFnError`, so `store()?` also works in functions returning that.
    pub fn store() -> Result<Store, AppError> {
        use_context::<Store>().ok_or_else(|| {
            tracing::error!("no Store in the Leptos context: the router must provide it");
            AppError::Internal
        })
    }

    /// How the dashboard was started (read-only, demo, ...), as the binary provided it.
    pub fn settings() -> Settings {
        use_context::<Settings>().unwrap_or_default()
    }

    /// The request being answered (provided by leptos_axum to pages and server functions).
    ///
    /// # Errors
    /// [`AppError::Internal`] (logged) when missing.
    pub fn request_parts() -> Result<Parts, AppError> {
        use_context::<Parts>().ok_or_else(|| {
            tracing::error!("no request Parts in the Leptos context");
            AppError::Internal
        })
    }

    /// True when the request is a plain browser form post (no JavaScript): leptos_axum then answers with a
    /// redirect back to the page, carrying an error in the URL, so the status must not be changed.
    pub fn is_plain_form_post(parts: &Parts) -> bool {
        parts
            .headers
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"))
    }

    /// Gives a server function's error its HTTP status (403, 409, ...) for callers that read statuses (`fetch`,
    /// scripts, tests). Plain form posts keep leptos_axum's redirect back to the page, which shows the error.
    pub fn with_status<T>(result: Result<T, AppError>) -> Result<T, AppError> {
        if let Err(err) = &result {
            let plain = use_context::<Parts>().is_some_and(|p| is_plain_form_post(&p));
            if !plain {
                if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
                    response.set_status(
                        http::StatusCode::from_u16(err.status())
                            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR),
                    );
                }
            }
        }
        result
    }
}
