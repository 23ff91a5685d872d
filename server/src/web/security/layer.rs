//! The security layer in front of the whole router (`axum::middleware::from_fn_with_state(security, layer)`).
//!
//! For every request it:
//! - refuses with 403 a request whose `Host` names neither this machine nor a `--public-url` (DNS rebinding:
//!   reads included, in every mode);
//! - reads the browser's CSRF token from the `flowstate_csrf` cookie, or makes a new one and sets the cookie
//!   on the response; pages read it from the request's [`CsrfToken`] extension to put it in their forms;
//! - records the socket's address as [`ClientIp`] (login attempts are limited per client network);
//! - refuses with **403**, before anything runs, every request that could change something (any method but
//!   GET, HEAD and OPTIONS; POSTs to the read-only server functions of [`READ_ONLY_SERVER_FNS`] excepted) unless
//!   its `Origin` (or `Referer`) is this site's own and it carries the cookie's token, in the `csrf` field of
//!   its url-encoded form or the `x-csrf-token` header. The form is buffered (up to [`MAX_FORM_BYTES`]) to be
//!   read, then passed on unchanged.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::Response;
use flowstate_app::server::cleanup::{CleanupOptions, PreviewCleanup};
use flowstate_app::server::failures::GetFailures;
use flowstate_app::server::overview::GetOverview;
use flowstate_app::server::pipelines::GetPipelines;
use flowstate_app::server::runs::{GetRun, ListRuns, RunNeighbours};
use flowstate_app::server::security::CSRF_FIELD;
use flowstate_app::server::session::GetAccess;
use flowstate_app::server::settings::GetSettings;
use flowstate_app::AppError;
use leptos::server_fn::ServerFn;

use super::cookies;
use super::csrf::{check_csrf, cookie_token, form_field, CsrfToken, CSRF_HEADER};
use super::origin::{check_same_origin, Site};
use super::refusal::refusal;
use super::tokens::random_token;
use super::Security;

/// The largest form body the layer reads to find the CSRF token (changing forms are a few hundred bytes).
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// The server functions that only read, by their own `PATH`. POSTs to these pass the layer without a CSRF token
/// (the hydrated pages call them with `fetch`, and another site gains nothing by calling them: it cannot read
/// the answer). **Every other POST needs a CSRF token and this site's `Origin`**, so a new server function is
/// guarded until it is added here: add only functions that change nothing (the tests list every server function
/// the app registers and fail on one that is in neither this list nor theirs of guarded ones).
pub const READ_ONLY_SERVER_FNS: [&str; 10] = [
    <GetOverview as ServerFn>::PATH,
    <GetFailures as ServerFn>::PATH,
    <ListRuns as ServerFn>::PATH,
    <GetRun as ServerFn>::PATH,
    <GetSettings as ServerFn>::PATH,
    <GetAccess as ServerFn>::PATH,
    <PreviewCleanup as ServerFn>::PATH,
    <CleanupOptions as ServerFn>::PATH,
    <GetPipelines as ServerFn>::PATH,
    <RunNeighbours as ServerFn>::PATH,
];

/// The address of the client's socket, put in the request's extensions by the layer (absent in tests that send
/// requests without a socket). Proxy headers are not trusted for it: they are the client's to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

/// The layer.
pub async fn layer(State(security): State<Arc<Security>>, mut req: Request, next: Next) -> Response {
    let site = security.site(req.headers(), req.uri());
    if let Site::Other(host) = &site {
        tracing::warn!(%host, "request refused: not addressed to this dashboard");
        let reason = security.host_refusal(host);
        return refusal(req.headers(), &AppError::Forbidden { reason });
    }
    let existing = cookie_token(req.headers());
    let fresh = existing.is_none();
    let token = existing.unwrap_or_else(random_token);
    let secure = site.is_https(req.headers(), req.uri());
    req.extensions_mut().insert(CsrfToken(token.clone()));
    if let Some(ConnectInfo(addr)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        req.extensions_mut().insert(ClientIp(addr.ip()));
    }

    let mut response = if needs_check(req.method(), req.uri().path()) {
        match check(req, &site).await {
            Ok(req) => next.run(req).await,
            Err(refused) => refused,
        }
    } else {
        next.run(req).await
    };
    if fresh {
        response
            .headers_mut()
            .append(header::SET_COOKIE, cookies::csrf(&token, secure));
    }
    response
}

/// True for a request that could change something: every method but the safe ones, except POSTs to the
/// server functions that only read. The page cache empties itself after such requests too (`super::super::cache`).
pub fn needs_check(method: &Method, path: &str) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    !(*method == Method::POST && READ_ONLY_SERVER_FNS.contains(&path))
}

/// The origin and CSRF checks; the request back (body unchanged) when they pass, the 403 answer when not.
async fn check(req: Request, site: &Site) -> Result<Request, Response> {
    let (parts, body) = req.into_parts();
    let refuse = |reason: String| {
        tracing::warn!(method = %parts.method, path = parts.uri.path(), %reason, "request refused by the CSRF layer");
        if parts.uri.path().starts_with("/api/") && !reason.contains("another site") {
            tracing::warn!(
                path = parts.uri.path(),
                "if this server function only reads, add it to READ_ONLY_SERVER_FNS \
                 (server/src/web/security/layer.rs); if it changes something, its form needs the hidden `csrf` field"
            );
        }
        refusal(&parts.headers, &AppError::Forbidden { reason })
    };
    if let Err(reason) = check_same_origin(site, &parts.headers, &parts.uri) {
        return Err(refuse(reason));
    }

    let header_token = parts
        .headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let (token, body) = match header_token {
        Some(token) => (Some(token), body),
        None if is_form => {
            let Ok(bytes) = to_bytes(body, MAX_FORM_BYTES).await else {
                return Err(refusal(
                    &parts.headers,
                    &AppError::bad_request("form", format!("it is larger than {MAX_FORM_BYTES} bytes")),
                ));
            };
            (form_field(&bytes, CSRF_FIELD), Body::from(bytes))
        }
        None => (None, body),
    };
    if let Err(reason) = check_csrf(&parts.headers, token.as_deref()) {
        return Err(refuse(reason));
    }
    Ok(Request::from_parts(parts, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every server function the app registers, by path, that changes something: these need the CSRF token.
    const CHANGING: [&str; 4] = ["/api/run_cleanup", "/api/delete_run", "/api/login", "/api/logout"];

    #[test]
    fn only_changing_requests_are_checked() {
        assert!(!needs_check(&Method::GET, "/cleanup"));
        assert!(!needs_check(&Method::POST, "/api/overview"));
        assert!(needs_check(&Method::POST, "/api/run_cleanup"));
        assert!(
            needs_check(&Method::POST, "/api/anything_new"),
            "new endpoints are guarded by default"
        );
        assert!(needs_check(&Method::POST, "/cleanup"));
        assert!(needs_check(&Method::DELETE, "/api/overview"));
    }

    /// The read-only list is the server functions' own paths, and every server function the app registers is
    /// either in it or known to change something (so a new one must be classified here to pass).
    #[test]
    fn every_server_function_is_classified() {
        let read_only: Vec<&str> = READ_ONLY_SERVER_FNS.to_vec();
        assert_eq!(
            read_only,
            [
                "/api/overview",
                "/api/failures",
                "/api/runs",
                "/api/run",
                "/api/settings",
                "/api/access",
                "/api/cleanup_preview",
                "/api/cleanup_options",
                "/api/pipelines",
                "/api/run_neighbours",
            ]
        );
        let mut registered: Vec<&str> = leptos::server_fn::axum::server_fn_paths()
            .map(|(p, _)| p)
            .collect();
        registered.sort_unstable();
        assert!(
            registered.len() >= 12,
            "the app's server functions are registered: {registered:?}"
        );
        for path in &registered {
            assert!(
                read_only.contains(path) != CHANGING.contains(path),
                "{path} must be in exactly one of READ_ONLY_SERVER_FNS and the changing ones"
            );
            assert_eq!(
                needs_check(&Method::POST, path),
                CHANGING.contains(path),
                "{path}"
            );
        }
        for path in read_only.iter().chain(&CHANGING) {
            assert!(
                registered.contains(path),
                "{path} is a registered server function"
            );
        }
    }
}
