//! Server functions: one per resource and action, each a public HTTP endpoint under `/api/<endpoint>`.
//!
//! Endpoints are named (`#[server(endpoint = "...")]`) so their URLs are stable for tests and CSRF checks.
//! Every function that changes something checks its guards itself, on the server: a server function is a public
//! endpoint, and hiding a button is not security.

pub mod cleanup;
pub mod failures;
pub mod guard;
#[cfg(feature = "ssr")]
pub mod limits;
pub mod overview;
pub mod runs;
pub mod runs_delete;
pub mod session;
pub mod settings;

pub use cleanup::{cleanup_options, preview_cleanup, run_cleanup};
pub use failures::get_failures;
pub use overview::get_overview;
pub use runs::{get_run, list_runs};
pub use runs_delete::delete_run;
pub use session::{get_access, login, logout};
pub use settings::get_settings;

#[cfg(feature = "ssr")]
pub use ssr::*;

#[cfg(feature = "ssr")]
mod ssr {
    use flowstate_store::Store;
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
}
