//! The CSRF layer in front of the whole router (the first half of the guards of
//! `flowstate_app::server::guard`; the server functions check again themselves).
//!
//! For every request it:
//! - when changes need no login (no admin token, loopback bind), refuses with 403 a request whose `Host` is not
//!   this machine: a page of another site re-pointed at 127.0.0.1 (DNS rebinding) could otherwise read and
//!   change everything, since it is same-origin with itself;
//! - reads the browser's CSRF token from the `flowstate_csrf` cookie, or makes a new one and sets the cookie
//!   (HttpOnly, SameSite=Strict, Secure over https) on the response; pages read the token from the request's
//!   [`CsrfToken`] extension to put it in their forms;
//! - records the socket's address as [`ClientIp`] (login attempts are limited per address);
//! - refuses with **403**, before anything runs, every request that could change something (any method but
//!   GET, HEAD and OPTIONS; POSTs to the read-only server functions of [`READ_ONLY_ENDPOINTS`] excepted) unless
//!   its `Origin` (or `Referer`) is this server's own and it carries the cookie's token, in the `csrf` field of
//!   its url-encoded form or the `x-csrf-token` header. The form is buffered (up to [`MAX_FORM_BYTES`]) to be
//!   read, then passed on unchanged.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use flowstate_app::server::guard::{
    check_csrf, check_same_origin, cookie_value, csrf_cookie, host_is_local, is_https, is_token_shaped,
    random_token, ClientIp, CsrfToken, Guard, CSRF_COOKIE, CSRF_FIELD, CSRF_HEADER, READ_ONLY_ENDPOINTS,
};
use flowstate_app::theme::Theme;
use flowstate_app::AppError;

/// The largest form body the layer reads to find the CSRF token (changing forms are a few hundred bytes).
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// The layer (`axum::middleware::from_fn_with_state(guard, csrf_layer)`).
pub async fn csrf_layer(State(guard): State<Arc<Guard>>, mut req: Request, next: Next) -> Response {
    // Without an admin token anyone who reaches the server may read and change everything, which is fine only
    // for this machine. A page of another site whose name was re-pointed at 127.0.0.1 (DNS rebinding) reaches
    // it too, but names its own host: refuse it, reads included.
    if guard.local_only() {
        if let Some(host) = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()) {
            if !host_is_local(host) {
                let reason = format!(
                    "this dashboard answers only requests for this machine (such as http://{}/) because no admin \
                     token is configured; the request was for “{host}”",
                    guard.bind()
                );
                tracing::warn!(%host, "request refused: not addressed to this machine");
                return refusal(req.headers(), AppError::Forbidden { reason });
            }
        }
    }
    let existing = cookie_value(req.headers(), CSRF_COOKIE)
        .filter(|t| is_token_shaped(t))
        .map(str::to_string);
    let fresh = existing.is_none();
    let token = existing.unwrap_or_else(random_token);
    let secure = is_https(req.headers(), req.uri());
    req.extensions_mut().insert(CsrfToken(token.clone()));
    if let Some(ConnectInfo(addr)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() {
        req.extensions_mut().insert(ClientIp(addr.ip()));
    }

    let mut response = if needs_check(req.method(), req.uri().path()) {
        match check(req).await {
            Ok(req) => next.run(req).await,
            Err(refusal) => refusal,
        }
    } else {
        next.run(req).await
    };
    if fresh {
        if let Ok(value) = HeaderValue::from_str(&csrf_cookie(&token, secure)) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// True for a request that could change something: every method but the safe ones, except POSTs to the
/// server functions that only read. The page cache empties itself after such requests too (`super::cache`).
pub(crate) fn needs_check(method: &Method, path: &str) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    !(*method == Method::POST && READ_ONLY_ENDPOINTS.contains(&path))
}

/// The origin and CSRF checks; the request back (body unchanged) when they pass, the 403 answer when not.
async fn check(req: Request) -> Result<Request, Response> {
    let (parts, body) = req.into_parts();
    let refuse = |reason: String| {
        tracing::warn!(method = %parts.method, path = parts.uri.path(), %reason, "request refused by the CSRF layer");
        if parts.uri.path().starts_with("/api/") && !reason.contains("another site") {
            tracing::warn!(
                path = parts.uri.path(),
                "if this server function only reads, list its endpoint in READ_ONLY_ENDPOINTS \
                 (app/src/server/guard.rs); if it changes something, its form needs the hidden `csrf` field"
            );
        }
        refusal(&parts.headers, AppError::Forbidden { reason })
    };
    if let Err(reason) = check_same_origin(&parts.headers, &parts.uri) {
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
                    AppError::bad_request("form", format!("it is larger than {MAX_FORM_BYTES} bytes")),
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

/// The first value of `name` in a url-encoded form, decoded.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k)? == name).then(|| percent_decode(v))
        })
        .next()
        .flatten()
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The refusal, with the status of `error`: a small page for a browser's form post, the server functions' JSON
/// error for `fetch`.
fn refusal(headers: &HeaderMap, error: AppError) -> Response {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::FORBIDDEN);
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if !wants_html {
        let body = serde_json::to_string(&error).unwrap_or_else(|_| "{}".into());
        return (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    }
    let theme = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(Theme::from_cookie_header)
        .find(|t| *t != Theme::System)
        .unwrap_or_default();
    let theme_attr = theme
        .attribute()
        .map(|t| format!(" data-theme=\"{t}\""))
        .unwrap_or_default();
    let code = status.as_u16();
    let page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"{theme_attr}><head><meta charset=\"utf-8\"/>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\
         <title>{title} ({code}) · flowstate</title>\
         <link rel=\"stylesheet\" href=\"{css}\"/><link rel=\"icon\" href=\"/favicon.svg\" type=\"image/svg+xml\"/>\
         </head><body><header class=\"site-header\"><a class=\"brand\" href=\"/\">flowstate</a></header>\
         <main id=\"main\"><section class=\"error-page\" role=\"alert\" data-status=\"{code}\">\
         <h1>{title} <span class=\"error-code\">({code})</span></h1><p>{message}</p>\
         <p class=\"hint\">Nothing was changed. Go back, reload the page and try again.</p>\
         <p><a href=\"/\">Back to the overview</a></p></section></main></body></html>",
        css = flowstate_app::STYLESHEET,
        title = error.title(),
        message = escape_html(&error.to_string()),
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        page,
    )
        .into_response()
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn the_form_field_is_found_and_decoded() {
        let body = b"days=30&statuses=completed%2Cfailed&csrf=ab%63d&csrf=second";
        assert_eq!(form_field(body, "csrf").as_deref(), Some("abcd"), "the first one");
        assert_eq!(form_field(body, "statuses").as_deref(), Some("completed,failed"));
        assert_eq!(
            form_field(b"c%73rf=x", "csrf").as_deref(),
            Some("x"),
            "names are decoded too"
        );
        assert_eq!(form_field(b"csrf=%zz", "csrf"), None);
        assert_eq!(form_field(b"days=30", "csrf"), None);
    }

    #[test]
    fn the_refusal_page_escapes_what_the_client_sent() {
        assert_eq!(
            escape_html("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#x27;"
        );
    }
}
