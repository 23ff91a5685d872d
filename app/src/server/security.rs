//! What the pages and server functions know of the dashboard's HTTP security: a **handle** the binary puts in
//! the Leptos context, and nothing else.
//!
//! The security itself (sessions, the CSRF double submit, the origin and `Host` checks, the cookies, the login
//! limit, the refusal page) lives in one place, the binary's `server/src/web/security/`: its layer refuses a
//! changing request before any server function runs, and it implements [`Security`] so that every server
//! function that changes something asks again, itself ([`require_change`], defence in depth: a server function
//! mounted without the layer stays guarded). This crate holds no secret, parses no cookie and compares no token.
//!
//! Compiled for both targets: the name of the forms' hidden CSRF field. The rest is server-only.

/// The form field carrying the CSRF token: every form that changes something has
/// `<input type="hidden" name="csrf" value={Access::csrf}>`.
///
/// [`Access::csrf`]: super::session::Access::csrf
pub const CSRF_FIELD: &str = "csrf";

#[cfg(feature = "ssr")]
pub use ssr::*;

#[cfg(feature = "ssr")]
mod ssr {
    use std::sync::Arc;

    use http::request::Parts;
    use http::HeaderValue;
    use leptos::prelude::use_context;

    use crate::error::AppError;
    use crate::server::session::Access;

    /// Who made a change, as the audit log records it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Actor {
        /// Logged in with the admin token.
        Admin,
        /// No token is configured and the request came from this machine.
        Local,
    }

    impl Actor {
        /// The name in the audit log.
        pub fn as_str(self) -> &'static str {
            match self {
                Actor::Admin => "admin",
                Actor::Local => "local",
            }
        }
    }

    /// The guards of every change, implemented by the binary (`flowstate_server::web::security::Security`).
    /// Each method gets the request being answered; each refusal is an [`AppError`] saying why, in words for the
    /// operator (already logged).
    pub trait Security: Send + Sync + 'static {
        /// Every guard of a change, in order: not `--read-only`; the request names an allowed host and comes
        /// from this site (`Origin`/`Referer`); `csrf` (the form's hidden field) equals the browser's CSRF
        /// cookie; the operator is authorised. `action` names the change in the log. Returns who is changing.
        ///
        /// # Errors
        /// [`AppError::Forbidden`] naming the guard that refused.
        fn require_change(&self, request: &Parts, action: &str, csrf: &str) -> Result<Actor, AppError>;

        /// What this browser may do, and the CSRF token its forms carry.
        fn access(&self, request: &Parts) -> Access;

        /// Checks a login with `token` (origin, CSRF, the attempt limit, the token itself) and starts a session.
        /// Returns the `Set-Cookie` value of the new session.
        ///
        /// # Errors
        /// [`AppError::Forbidden`] (wrong token, another site, no CSRF token), [`AppError::TooManyRequests`],
        /// [`AppError::Conflict`] when no token is configured (saying what is true of changes instead).
        fn login(&self, request: &Parts, token: &str, csrf: &str) -> Result<HeaderValue, AppError>;

        /// Ends this browser's session (origin and CSRF checked first). Returns the `Set-Cookie` value that
        /// removes the session cookie.
        ///
        /// # Errors
        /// [`AppError::Forbidden`] naming the guard that refused.
        fn logout(&self, request: &Parts, csrf: &str) -> Result<HeaderValue, AppError>;
    }

    /// The binary's [`Security`], as the router provides it to every page and server function.
    #[derive(Clone)]
    pub struct SecurityHandle(pub Arc<dyn Security>);

    impl std::fmt::Debug for SecurityHandle {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("SecurityHandle")
        }
    }

    /// The handle the binary provided to this request.
    ///
    /// # Errors
    /// [`AppError::Internal`] (logged) when missing: a wiring bug, and then nothing may change.
    pub fn security() -> Result<Arc<dyn Security>, AppError> {
        use_context::<SecurityHandle>().map(|h| h.0).ok_or_else(|| {
            tracing::error!("no SecurityHandle in the Leptos context: the router must provide it; refusing");
            AppError::Internal
        })
    }

    /// [`Security::require_change`] for the request being answered. Call it first in every server function that
    /// changes anything, before reading its other arguments.
    ///
    /// # Errors
    /// [`AppError::Forbidden`] saying which guard refused, [`AppError::Internal`] when the guards are not wired.
    pub fn require_change(action: &str, csrf: &str) -> Result<Actor, AppError> {
        security()?.require_change(&super::super::request_parts()?, action, csrf)
    }
}
