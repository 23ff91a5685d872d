//! Logging in with the admin token, logging out, and what this browser may do (for pages and forms).

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// What the operator may change from this browser, and the CSRF token its forms carry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    /// `--read-only`: every change is refused.
    pub read_only: bool,
    /// An admin token is configured: changes need a login.
    pub token_required: bool,
    /// This browser is logged in with the admin token.
    pub logged_in: bool,
    /// `None` when changes are allowed; otherwise why not, for the operator.
    pub refusal: Option<String>,
    /// This browser's CSRF token (the hidden `csrf` field of every form that changes something).
    pub csrf: String,
}

impl Access {
    /// True when a change would pass the mode and login guards.
    pub fn can_change(&self) -> bool {
        self.refusal.is_none()
    }

    /// True when logging in would allow changes.
    pub fn needs_login(&self) -> bool {
        self.token_required && !self.logged_in && !self.read_only
    }
}

/// What this browser may do. Reads only.
#[server(endpoint = "access")]
pub async fn get_access() -> Result<Access, AppError> {
    use super::guard::{csrf_token, guard, request_parts};
    let guard = guard()?;
    let parts = request_parts()?;
    let refusal = if guard.read_only() {
        Some("the dashboard was started with --read-only, so it refuses every change".to_string())
    } else {
        guard.authorise(&parts.headers).err()
    };
    Ok(Access {
        read_only: guard.read_only(),
        token_required: guard.token_required(),
        logged_in: guard.logged_in(&parts.headers),
        refusal,
        csrf: csrf_token(),
    })
}

/// The page to go back to after a login: a local path, else `/cleanup`.
pub fn login_target(next: Option<&str>) -> String {
    match next.map(str::trim) {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.starts_with("/\\")
                && !p.contains(['\r', '\n']) =>
        {
            p.to_string()
        }
        _ => "/cleanup".to_string(),
    }
}

/// Logs in with the admin token: on success a new session (a random id in an HttpOnly, SameSite=Strict
/// cookie) and a redirect to `next` (a local path). Attempts are limited per client address; the token is
/// compared in constant time. Guarded by the CSRF token and the origin check like every change.
#[server(endpoint = "login")]
pub async fn login(token: String, csrf: String, next: Option<String>) -> Result<(), AppError> {
    use super::guard::{
        check_csrf, check_same_origin, guard, is_https, request_parts, session_cookie, with_status, ClientIp,
    };
    with_status(
        async move {
            let guard = guard()?;
            let parts = request_parts()?;
            let refused = |reason: String| {
                tracing::warn!(%reason, "login refused");
                AppError::Forbidden { reason }
            };
            check_same_origin(&parts.headers, &parts.uri).map_err(refused)?;
            check_csrf(&parts.headers, Some(&csrf)).map_err(refused)?;
            if !guard.token_required() {
                return Err(AppError::Conflict {
                    reason:
                        "No admin token is configured, so there is nothing to log in to: changes are allowed \
                             because the server listens on this machine only"
                            .into(),
                });
            }
            let client = parts.extensions.get::<ClientIp>().map(|c| c.0);
            if let Err(retry_after_secs) = guard.count_login_attempt(client) {
                tracing::warn!(client = ?client, "login refused: too many attempts");
                return Err(AppError::TooManyRequests { retry_after_secs });
            }
            if !guard.token_matches(&token) {
                tracing::warn!(client = ?client, "login refused: wrong token");
                return Err(AppError::Forbidden {
                    reason: "that is not the admin token".into(),
                });
            }
            let id = guard.start_session();
            let response = use_context::<leptos_axum::ResponseOptions>().ok_or(AppError::Internal)?;
            let cookie = session_cookie(&id, is_https(&parts.headers, &parts.uri));
            response.append_header(
                http::header::SET_COOKIE,
                http::HeaderValue::from_str(&cookie).map_err(|_| AppError::Internal)?,
            );
            tracing::info!(client = ?client, "admin logged in");
            leptos_axum::redirect(&login_target(next.as_deref()));
            Ok(())
        }
        .await,
    )
}

/// Ends this browser's session and removes its cookie, then goes to the overview. Guarded by the CSRF token
/// and the origin check (so another site cannot log the operator out).
#[server(endpoint = "logout")]
pub async fn logout(csrf: String) -> Result<(), AppError> {
    use super::guard::{
        check_csrf, check_same_origin, clear_session_cookie, cookie_value, guard, is_https, request_parts,
        with_status, SESSION_COOKIE,
    };
    with_status(
        async move {
            let guard = guard()?;
            let parts = request_parts()?;
            let refused = |reason: String| AppError::Forbidden { reason };
            check_same_origin(&parts.headers, &parts.uri).map_err(refused)?;
            check_csrf(&parts.headers, Some(&csrf)).map_err(refused)?;
            if let Some(id) = cookie_value(&parts.headers, SESSION_COOKIE) {
                guard.end_session(id);
            }
            let response = use_context::<leptos_axum::ResponseOptions>().ok_or(AppError::Internal)?;
            let cookie = clear_session_cookie(is_https(&parts.headers, &parts.uri));
            response.append_header(
                http::header::SET_COOKIE,
                http::HeaderValue::from_str(&cookie).map_err(|_| AppError::Internal)?,
            );
            leptos_axum::redirect("/login?out=1");
            Ok(())
        }
        .await,
    )
}
