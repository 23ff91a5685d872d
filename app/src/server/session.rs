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
    let parts = super::request_parts()?;
    Ok(super::security::security()?.access(&parts))
}

/// Where a login goes when no `next` was given: the cleanup page (logging in is for changing things).
pub const LOGIN_DEFAULT_TARGET: &str = "/cleanup";

/// The page to go back to after a login: `next` when it is a path of this site, [`LOGIN_DEFAULT_TARGET`] when
/// there is none, and `/` for anything else (see [`same_site_path`]). The login page and the login server
/// function both use it, so the form, its "Continue" link and the redirect agree.
pub fn login_target(next: Option<&str>) -> String {
    match next {
        None | Some("") => LOGIN_DEFAULT_TARGET.to_string(),
        Some(next) => same_site_path(next).unwrap_or_else(|| "/".to_string()),
    }
}

/// `raw` as a path of this site (path, query and fragment, normalised and percent-encoded as a `Location` header
/// can carry it), or `None` when a browser could read it as another site or another scheme.
///
/// `raw` must start with one `/`, hold no control character (a tab, CR or LF, which browsers drop: `/\t/host` is
/// read as `//host`) and no backslash (read as `/`), and it must parse with the URL parser against a fixed base
/// (`http://x/`) to that same origin, with a path that does not start with `//` once parsed (dot segments
/// resolved) or once percent-decoded (`/%2F/host`, `/%09/host`, `/%5C/host`). Anything else: `None`.
pub fn same_site_path(raw: &str) -> Option<String> {
    use percent_encoding::percent_decode_str;
    use url::Url;

    if !raw.starts_with('/') || raw.starts_with("//") || raw.chars().any(|c| c.is_control() || c == '\\') {
        return None;
    }
    let base = Url::parse("http://x/").ok()?;
    let url = base.join(raw).ok()?;
    if url.origin() != base.origin() || !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    let path = url.path();
    let decoded = percent_decode_str(path).decode_utf8_lossy();
    if path.starts_with("//")
        || decoded.starts_with("//")
        || decoded.chars().any(|c| c.is_control() || c == '\\')
    {
        return None;
    }
    let mut target = path.to_string();
    if let Some(query) = url.query() {
        target.push('?');
        target.push_str(query);
    }
    if let Some(fragment) = url.fragment() {
        target.push('#');
        target.push_str(fragment);
    }
    Some(target)
}

/// Logs in with the admin token: on success a new session (a random id in an HttpOnly, SameSite=Strict
/// cookie) and a redirect to `next` (see [`login_target`]). Attempts are limited; the token is compared in
/// constant time; guarded by the CSRF token and the origin check like every change (all in the binary's
/// [`super::security::Security`]).
#[server(endpoint = "login")]
pub async fn login(token: String, csrf: String, next: Option<String>) -> Result<(), AppError> {
    super::with_status(
        async move {
            let parts = super::request_parts()?;
            let cookie = super::security::security()?.login(&parts, &token, &csrf)?;
            let response = use_context::<leptos_axum::ResponseOptions>().ok_or(AppError::Internal)?;
            response.append_header(http::header::SET_COOKIE, cookie);
            leptos_axum::redirect(&login_target(next.as_deref()));
            Ok(())
        }
        .await,
    )
}

/// Ends this browser's session and removes its cookie, then goes to the login page. Guarded by the CSRF token
/// and the origin check (so another site cannot log the operator out).
#[server(endpoint = "logout")]
pub async fn logout(csrf: String) -> Result<(), AppError> {
    super::with_status(
        async move {
            let parts = super::request_parts()?;
            let cookie = super::security::security()?.logout(&parts, &csrf)?;
            let response = use_context::<leptos_axum::ResponseOptions>().ok_or(AppError::Internal)?;
            response.append_header(http::header::SET_COOKIE, cookie);
            leptos_axum::redirect("/login?out=1");
            Ok(())
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_goes_back_only_to_a_path_of_this_site() {
        for (next, target) in [
            ("/cleanup", "/cleanup"),
            ("/", "/"),
            ("/runs?status=failed&limit=2", "/runs?status=failed&limit=2"),
            (
                "/cleanup?days=30&status=failed&preview=1",
                "/cleanup?days=30&status=failed&preview=1",
            ),
            ("/runs/run%2F1?full=all#context", "/runs/run%2F1?full=all#context"),
            ("/runs?error=%2F%2Fhost", "/runs?error=%2F%2Fhost"),
            ("/runs?error=a b", "/runs?error=a%20b"),
            ("/runs/é", "/runs/%C3%A9"),
            ("/x/../runs", "/runs"),
        ] {
            assert_eq!(login_target(Some(next)), target, "{next:?}");
        }
        assert_eq!(login_target(None), LOGIN_DEFAULT_TARGET);
        assert_eq!(login_target(Some("")), LOGIN_DEFAULT_TARGET);
        for hostile in [
            "/\t/other.host/",
            "\t/other.host",
            "/\r\nSet-Cookie: x=y",
            "/\n/other.host",
            "//other.host/",
            "///other.host/",
            "/\\other.host/",
            "\\\\other.host",
            "/%09/other.host/",
            "/%0d%0a/other.host/",
            "/%2F/other.host/",
            "/%2f%2fother.host",
            "/%5C/other.host/",
            "/%5c%5cother.host",
            "/.//other.host/",
            "/./%2Fother.host/",
            "https://other.host/",
            "http://x/",
            "HTTP://other.host",
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            " /runs",
            "/runs\u{0085}",
            "other.host",
            "?next=/",
            "#/",
            "/\u{7f}/other.host",
        ] {
            assert_eq!(login_target(Some(hostile)), "/", "{hostile:?}");
        }
    }
}
