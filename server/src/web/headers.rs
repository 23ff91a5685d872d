//! The security headers of every response (pages, error pages, refusals, static files, server functions,
//! `/healthz`), set by one layer outside everything else.
//!
//! - `Content-Security-Policy` ([`content_security_policy`]): scripts only from this site and the inline scripts
//!   carrying this response's **nonce**, no inline styles at all, no framing (`frame-ancestors 'none'`), forms
//!   posting only here, no `<base>`, no plugins.
//! - `X-Frame-Options: DENY` (the same for browsers without CSP level 2), `X-Content-Type-Options: nosniff`,
//!   `Referrer-Policy: same-origin` (same-origin requests keep their Referer, which the CSRF check reads; other
//!   sites get none).
//!
//! # The nonce
//!
//! Leptos' server rendering writes inline scripts: the hydration script of [`leptos::prelude::HydrationScripts`]
//! (which loads `/pkg/flowstate.js` and the wasm) and one `<script>` per resolved resource after `</html>`.
//! Each request gets a new random nonce ([`CspNonce`], 128 bits from the operating system) in its extensions;
//! the router's Leptos context hands it to Leptos (`Nonce::from_value`), which writes it on every one of those
//! scripts, and this layer names it in the policy of the same response. A script injected into a page cannot
//! know it, so it does not run. `'wasm-unsafe-eval'` lets the page compile its own WebAssembly (and nothing
//! else: `eval` stays forbidden).
//!
//! # Styles
//!
//! `style-src 'self'`: only `/pkg/flowstate.css`. The pages write no `<style>` and no `style="…"` attribute
//! (the charts' colours are SVG presentation attributes, the failure-rate bars SVG `width`s), so none is
//! allowed; `server/tests/web_security.rs` checks every page for them.

use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use rand::rngs::OsRng;
use rand::RngCore;

/// This response's CSP nonce, in the request's extensions for the page renderer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CspNonce(pub String);

impl CspNonce {
    /// 128 random bits from the operating system, as 32 lowercase hex digits (valid in a CSP nonce source).
    pub fn new() -> Self {
        let mut bytes = [0u8; 16];
        OsRng.fill_bytes(&mut bytes);
        CspNonce(bytes.iter().map(|b| format!("{b:02x}")).collect())
    }
}

impl Default for CspNonce {
    fn default() -> Self {
        Self::new()
    }
}

/// The Content-Security-Policy of a response whose inline scripts carry `nonce`.
pub fn content_security_policy(nonce: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; style-src 'self'; \
         img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

/// The layer (`axum::middleware::from_fn(security_headers)`): a new nonce for the request, the headers on its
/// response, whatever answered it.
pub async fn security_headers(mut req: Request, next: Next) -> Response {
    let nonce = CspNonce::new();
    let policy = content_security_policy(&nonce.0);
    req.extensions_mut().insert(nonce);
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    if let Ok(policy) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy);
    }
    let fixed: [(HeaderName, &'static str); 3] = [
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_random_and_fit_a_policy() {
        let a = CspNonce::new();
        assert_eq!(a.0.len(), 32);
        assert!(a.0.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, CspNonce::new());
        let policy = content_security_policy(&a.0);
        assert!(policy.contains(&format!("'nonce-{}'", a.0)));
        assert!(policy.contains("frame-ancestors 'none'"));
        assert!(!policy.contains("unsafe-inline"));
        assert!(HeaderValue::from_str(&policy).is_ok());
    }
}
